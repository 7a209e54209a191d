"""enrich.py against loopback APIs shaped like the legacy ones: detail bodies, article pages, list pages."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config.load import Config, SourceConfig, parse_config
from aggregator.enrich import complete_items, fetch_list_pages
from aggregator.fetch.client import HttpFetcher
from aggregator.models import Fetched, RawItem, UpdateOutcome
from aggregator.parse import parse
from aggregator.storage import Storage, open_storage
from aggregator.update import Updater
from tests.conftest import DATA_DIR
from tests.fixture_server import FixtureServer, Route

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
DETAIL_PATH = "/NewsData/GetNewsText.do"
PAGES_DIR = DATA_DIR / "html_list" / "pages"
JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
#: a body long enough for trafilatura to take it for an article
ARTICLE_TEXT = (
    "1月20日，中天科技发布“绿色低碳制造行动方案”，以科技创新为主导，以绿色低碳制造为主攻方向，"
    "通过能源替代、原料替代、节能减排、节材降耗、循环利用等措施，全面促进企业绿色低碳发展。"
)


def _config(server: FixtureServer, tmp_path: Path, source_lines: list[str], timeout: str = "2s") -> Config:
    text = "\n".join([
        "[settings]", "allow_private_networks = true", 'per_host_delay = "1ms"', "per_host_concurrency = 4",
        f'timeout = "{timeout}"', f'store = "{tmp_path / "store.db"}"', "",
        "[categories.a]", 'title = "A"', "", "[[sources]]",
        *(line.replace("{url}", server.url("/list")) for line in source_lines),
    ])
    return parse_config(text, tmp_path / "feeds.toml", {})


def _eastmoney_source(server: FixtureServer, tmp_path: Path, timeout: str = "2s") -> tuple[Config, SourceConfig]:
    config = _config(server, tmp_path, [
        'name = "eastmoney-regional"', 'kind = "json"', 'url = "{url}"', 'preset = "eastmoney"',
        'categories = "auto"', f'detail_url = "{server.url(DETAIL_PATH)}?id={{id}}"',
    ], timeout)
    return config, config.sources[0]


def _run_complete(config: Config, source: SourceConfig, items: Sequence[RawItem], concurrency: int = 4) -> list[RawItem]:
    async def run() -> list[RawItem]:
        async with HttpFetcher(config.settings) as fetcher:
            return await complete_items(fetcher, source, items, concurrency=concurrency)

    return asyncio.run(run())


def _poll(config: Config, storage: Storage, source: SourceConfig, now: datetime = NOW) -> UpdateOutcome:
    """One pass of `source` through update.Updater: the real fetcher, loopback server, real storage."""
    async def run() -> UpdateOutcome:
        async with HttpFetcher(config.settings) as fetcher:
            return await Updater(config, storage, fetcher, clock=lambda: now).update_source(source)

    return asyncio.run(run())


def _list_records(*codes: str) -> bytes:
    records = [
        {"infoCode": code, "title": f"标题 {code}", "datetime": "2022-01-24 00:48:09", "medianame": "南通日报",
         "digest": f"【标题 {code}】摘要 {code}"}
        for code in codes
    ]
    return json.dumps({"record": records}, ensure_ascii=False).encode()


def _detail(code: str) -> Route:
    body = json.dumps({"rc": 1, "text": f"<p>正文 {code}</p>"}, ensure_ascii=False).encode()
    return Route(body, content_type=JSON_TYPE)


def _parsed_items(config: Config, source: SourceConfig, server: FixtureServer) -> list[RawItem]:
    async def run() -> list[RawItem]:
        async with HttpFetcher(config.settings) as fetcher:
            fetched = await fetcher.fetch_url(source, server.url("/list"))
        return list(parse(fetched, source, config.settings.timezone).items)

    return asyncio.run(run())


def test_detail_failure_timeout_or_error_page_loses_only_that_articles_body(
    feed_server: FixtureServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.routes["/list"] = Route(_list_records("NW1", "NW2", "NW3", "NW4"), content_type=JSON_TYPE)
    feed_server.routes[f"{DETAIL_PATH}?id=NW1"] = _detail("NW1")
    feed_server.routes[f"{DETAIL_PATH}?id=NW2"] = Route(b"upstream error", status=500, content_type="text/plain")
    feed_server.routes[f"{DETAIL_PATH}?id=NW3"] = Route(b'{"text": "<p>late</p>"}', delay_seconds=2.0,
                                                        content_type=JSON_TYPE)
    feed_server.routes[f"{DETAIL_PATH}?id=NW4"] = Route(b"<html><body>502 Bad Gateway</body></html>",
                                                        content_type="text/html")
    config, source = _eastmoney_source(feed_server, tmp_path, timeout="300ms")
    items = _parsed_items(config, source, feed_server)
    with caplog.at_level(logging.WARNING, logger="aggregator.enrich"):
        completed = _run_complete(config, source, items)
    assert [(i.explicit_id, i.html, i.summary) for i in completed] == [
        ("NW1", "<p>正文 NW1</p>", "摘要 NW1"),
        ("NW2", "", "摘要 NW2"),
        ("NW3", "", "摘要 NW3"),
        ("NW4", "", "摘要 NW4"),
    ]
    lost = sorted(r.getMessage() for r in caplog.records)
    assert len(lost) == 3
    assert all(m.startswith("enrich: source=eastmoney-regional article=NW") for m in lost)
    assert "article=NW2 detail fetch failed, keeping the list summary" in lost[0]
    assert "article=NW3 detail fetch failed" in lost[1]
    assert "article=NW4 detail fetch unreadable" in lost[2] and "not JSON" in lost[2]


def test_empty_list_makes_no_request(feed_server: FixtureServer, tmp_path: Path) -> None:
    config, source = _eastmoney_source(feed_server, tmp_path)
    assert _run_complete(config, source, []) == []
    assert not feed_server.requests


def test_record_without_an_id_has_no_detail_to_fetch(feed_server: FixtureServer, tmp_path: Path) -> None:
    config, source = _eastmoney_source(feed_server, tmp_path)
    item = RawItem(title="no id", summary="kept")
    assert _run_complete(config, source, [item]) == [item]
    assert not feed_server.requests


def test_at_most_concurrency_items_are_fetched_at_once(feed_server: FixtureServer, tmp_path: Path) -> None:
    codes = [f"NW{n}" for n in range(6)]
    for code in codes:
        feed_server.routes[f"{DETAIL_PATH}?id={code}"] = Route(b'{"text": "<p>x</p>"}', delay_seconds=0.1)
    config, source = _eastmoney_source(feed_server, tmp_path)
    completed = _run_complete(config, source, [RawItem(explicit_id=c) for c in codes], concurrency=2)
    assert [i.html for i in completed] == ["<p>x</p>"] * 6
    assert max(feed_server.max_concurrent_by_host.values()) == 2


def test_html_source_article_page_body_comes_from_body_selector(feed_server: FixtureServer, tmp_path: Path) -> None:
    feed_server.routes["/a/1.html"] = Route((PAGES_DIR / "article_with_body.html").read_bytes(), content_type=HTML_TYPE)
    config = _config(feed_server, tmp_path, [
        'name = "ntrb"', 'kind = "html"', 'url = "{url}"', 'categories = ["a"]',
        'item_selector = "li"', 'body_selector = "div.content"',
    ])
    [item] = _run_complete(config, config.sources[0], [RawItem(url=feed_server.url("/a/1.html"), title="t")])
    assert item.html.startswith('<div class="content"><p>1月20日，中天科技发布')


def _full_content_config(server: FixtureServer, tmp_path: Path) -> Config:
    return _config(server, tmp_path, ['name = "rss"', 'url = "{url}"', 'categories = ["a"]', "full_content = true"])


def test_full_content_extracts_the_main_text_of_the_article_page(feed_server: FixtureServer, tmp_path: Path) -> None:
    page = (
        "<html><head><title>中天科技</title></head><body><nav><a href='/'>首页</a> <a href='/x'>经济</a></nav>"
        f"<article><h1>聚焦可持续发展</h1><p>{ARTICLE_TEXT}</p><p>{ARTICLE_TEXT}</p></article>"
        "<footer>版权所有 南通日报社</footer></body></html>"
    )
    feed_server.routes["/article"] = Route(page.encode(), content_type=HTML_TYPE)
    config = _full_content_config(feed_server, tmp_path)
    item = RawItem(url=feed_server.url("/article"), title="t", html="<p>feed teaser</p>")
    [completed] = _run_complete(config, config.sources[0], [item])
    assert ARTICLE_TEXT in completed.html
    assert "版权所有" not in completed.html and "首页" not in completed.html


def test_full_content_keeps_the_feed_summary_when_extraction_fails(
    feed_server: FixtureServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.routes["/empty"] = Route(b"<html><body><div></div></body></html>", content_type=HTML_TYPE)
    config = _full_content_config(feed_server, tmp_path)
    items = [
        RawItem(url=feed_server.url("/empty"), title="t", summary="feed summary"),
        RawItem(url=feed_server.url("/gone"), title="t", summary="other summary"),
    ]
    with caplog.at_level(logging.WARNING, logger="aggregator.enrich"):
        completed = _run_complete(config, config.sources[0], items)
    assert completed == items
    assert "full-text extraction found no body, keeping the list summary" in caplog.text
    assert "full-text extraction failed, keeping the list summary" in caplog.text


def _paged_source(server: FixtureServer, tmp_path: Path, max_pages: int) -> SourceConfig:
    for n in (1, 2, 3):
        server.routes[f"/list_{n}.html"] = Route((PAGES_DIR / f"list_{n}.html").read_bytes(), content_type=HTML_TYPE)
    config = _config(server, tmp_path, [
        'name = "paged"', 'kind = "html"', f'url = "{server.url("/list_1.html")}"', 'categories = ["a"]',
        'item_selector = "ul.news-list > li"', 'link_selector = "a.title"', 'next_page_selector = ".pager a.next"',
        f"max_pages = {max_pages}",
    ])
    return config.sources[0]


def _follow(source: SourceConfig, tmp_path: Path) -> list[Fetched]:
    """The first list page and the ones fetch_list_pages adds."""
    settings = parse_config('[settings]\nallow_private_networks = true\nper_host_delay = "1ms"\n',
                            tmp_path / "f.toml", {}).settings

    async def run() -> list[Fetched]:
        async with HttpFetcher(settings) as fetcher:
            first = await fetcher.fetch_url(source, source.url)
            return [first, *await fetch_list_pages(fetcher, source, first)]

    return asyncio.run(run())


def test_list_pages_are_followed_until_a_page_links_back(feed_server: FixtureServer, tmp_path: Path) -> None:
    pages = _follow(_paged_source(feed_server, tmp_path, max_pages=10), tmp_path)
    assert [p.url.rsplit("/", 1)[1] for p in pages] == ["list_1.html", "list_2.html", "list_3.html"]
    assert feed_server.hits["/list_1.html"] == 1


def test_list_pages_stop_at_max_pages(feed_server: FixtureServer, tmp_path: Path) -> None:
    pages = _follow(_paged_source(feed_server, tmp_path, max_pages=2), tmp_path)
    assert [p.url.rsplit("/", 1)[1] for p in pages] == ["list_1.html", "list_2.html"]
    assert "/list_3.html" not in feed_server.hits


def test_a_failing_next_page_keeps_the_pages_read_so_far(
    feed_server: FixtureServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _paged_source(feed_server, tmp_path, max_pages=5)
    feed_server.routes["/list_2.html"] = Route(b"not found", status=404)
    with caplog.at_level(logging.WARNING, logger="aggregator.enrich"):
        pages = _follow(source, tmp_path)
    assert [p.url.rsplit("/", 1)[1] for p in pages] == ["list_1.html"]
    assert "enrich: source=paged list page" in caplog.text and "keeping 1 page(s)" in caplog.text


def test_an_unreadable_next_page_keeps_the_pages_read_so_far(
    feed_server: FixtureServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _paged_source(feed_server, tmp_path, max_pages=5)
    feed_server.routes["/list_3.html"] = Route(b"   ", content_type=HTML_TYPE)
    with caplog.at_level(logging.WARNING, logger="aggregator.enrich"):
        pages = _follow(source, tmp_path)
    assert [p.url.rsplit("/", 1)[1] for p in pages] == ["list_1.html", "list_2.html"]
    assert "list_3.html not read, keeping 2 page(s): parse: the HTML page is empty" in caplog.text


# --- end to end through update.Updater: the loopback server and a real store (SQLite and PostgreSQL) ---


def test_repoll_of_an_unchanged_list_refetches_only_the_failed_detail_and_duplicates_are_fetched_once(
    feed_server: FixtureServer, tmp_path: Path, storage: Storage
) -> None:
    seed, other = "NW202201242257831752", "NW202205252390829633"
    feed_server.routes["/list"] = Route(_list_records(seed, seed, other), content_type=JSON_TYPE)
    feed_server.routes[f"{DETAIL_PATH}?id={seed}"] = _detail("seed")
    feed_server.routes[f"{DETAIL_PATH}?id={other}"] = Route(b"gone", status=404)
    config, source = _eastmoney_source(feed_server, tmp_path)
    first = _poll(config, storage, source)
    second = _poll(config, storage, source)
    item = storage.get_item(seed)
    failed = storage.get_item(other)
    assert (first.status, first.inserted, second.status, second.unchanged) == ("new", 2, "unchanged", 2)
    # one per distinct article on the first poll; the second poll retries only the one that failed
    assert feed_server.hits[DETAIL_PATH] == 3
    assert [p for p, *_ in feed_server.requests if p.startswith(DETAIL_PATH)][2:] == [f"{DETAIL_PATH}?id={other}"]
    assert item is not None and "正文 seed" in item.html and item.categories == {"nantongribao"}
    assert item.published == datetime(2022, 1, 24, 0, 48, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert failed is not None and f"摘要 {other}" in failed.html
    assert storage.category_titles() == {"nantongribao": "南通日报新闻"}


def test_detail_fetches_keep_the_per_host_limits_of_feeds(feed_server: FixtureServer, tmp_path: Path) -> None:
    codes = [f"NW20220124225783175{n}" for n in range(4)]
    feed_server.routes["/list"] = Route(_list_records(*codes), content_type=JSON_TYPE)
    for code in codes:
        feed_server.routes[f"{DETAIL_PATH}?id={code}"] = Route(b'{"text": "<p>x</p>"}', delay_seconds=0.05)
    config, source = _eastmoney_source(feed_server, tmp_path)
    settings = config.settings.model_copy(update={"per_host_concurrency": 1, "per_host_delay": timedelta(seconds=0.1)})
    config = config.model_copy(update={"settings": settings})
    storage = open_storage(str(tmp_path / "polite.db"))
    try:
        assert _poll(config, storage, source).inserted == 4
    finally:
        storage.close()
    assert max(feed_server.max_concurrent_by_host.values()) == 1
    starts = [started for path, _, _, started in feed_server.requests]
    # The server stamps a request when it gets to it, which on a loaded machine lags the client's send
    # by a varying amount: no two requests arrive together, and the whole run spans the delays.
    assert all(later - earlier >= 0.05 for earlier, later in itertools.pairwise(starts)), starts
    assert starts[-1] - starts[0] >= 0.1 * (len(starts) - 1) - 0.03, starts


@pytest.mark.parametrize(
    ("body", "content_type", "status", "stage"),
    [
        (b'{"rc": 1, "record": []}', JSON_TYPE, "unchanged", None),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "error", "parse"),
    ],
    ids=["empty-list", "html-error-page"],
)
def test_list_endpoint_that_is_empty_or_not_json(
    feed_server: FixtureServer, tmp_path: Path, storage: Storage, body: bytes, content_type: str, status: str,
    stage: str | None,
) -> None:
    feed_server.routes["/list"] = Route(body, content_type=content_type)
    config, source = _eastmoney_source(feed_server, tmp_path)
    outcome = _poll(config, storage, source)
    assert (outcome.status, outcome.inserted) == (status, 0)
    assert (outcome.error.stage if outcome.error else None) == stage
    if outcome.error:
        assert outcome.error.message.startswith("parse: the response is not JSON (text/html)")
        assert storage.get_source_states()[source.name].failures == 1
    assert feed_server.hits[DETAIL_PATH] == 0


def _article_page(title: str) -> Route:
    page = f"<html><body><div class='nav'>首页</div><div class='content'><p>{title} 正文</p></div></body></html>"
    return Route(page.encode(), content_type=HTML_TYPE)


def test_paged_html_source_stores_the_items_of_every_page_with_their_article_bodies(
    feed_server: FixtureServer, tmp_path: Path, storage: Storage
) -> None:
    source = _paged_source(feed_server, tmp_path, max_pages=2)
    source = source.model_copy(update={"body_selector": "div.content", "date_selector": "span.date"})
    config = _config(feed_server, tmp_path, ['name = "unused"', 'url = "{url}"', 'categories = ["a"]'])
    for page in (1, 2, 3):
        for n in (1, 2):
            feed_server.routes[f"/a/{page}0{n}.html"] = _article_page(f"第{page}页 条目{n}")
    first = _poll(config, storage, source)
    second = _poll(config, storage, source)
    assert (first.inserted, second.status, second.unchanged) == (4, "unchanged", 4)
    assert [feed_server.hits[f"/list_{n}.html"] for n in (1, 2, 3)] == [2, 2, 0]  # max_pages = 2
    article_hits = {path: hits for path, hits in feed_server.hits.items() if path.startswith("/a/")}
    assert article_hits == {"/a/101.html": 1, "/a/102.html": 1, "/a/201.html": 1, "/a/202.html": 1}
    items = storage.list_items("a", limit=10)
    assert sorted((i.url, i.html) for i in items) == [
        (feed_server.url(f"/a/{page}0{n}.html"), f"<div><p>第{page}页 条目{n} 正文</p></div>") for page in (1, 2) for n in (1, 2)
    ]
    published = {i.url: i.published for i in items}
    assert published[feed_server.url("/a/201.html")] == datetime(2022, 1, 22, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_full_content_through_a_poll_extracts_the_article_and_keeps_the_summary_when_it_fails(
    feed_server: FixtureServer, tmp_path: Path, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    page = f"<html><body><nav>首页</nav><article><p>{ARTICLE_TEXT}</p><p>{ARTICLE_TEXT}</p></article></body></html>"
    feed_server.routes["/article/1"] = Route(page.encode(), content_type=HTML_TYPE)
    feed_server.routes["/article/2"] = Route(b"<html><body></body></html>", content_type=HTML_TYPE)
    entries = "".join(
        f"<item><title>t{n}</title><link>{feed_server.url(f'/article/{n}')}</link>"
        f"<description>feed summary {n}</description></item>" for n in (1, 2)
    )
    feed_server.routes["/list"] = Route(f"<rss version='2.0'><channel><title>c</title>{entries}</channel></rss>".encode())
    config = _full_content_config(feed_server, tmp_path)
    with caplog.at_level(logging.WARNING, logger="aggregator.enrich"):
        outcome = _poll(config, storage, config.sources[0])
    assert outcome.inserted == 2
    by_url = {i.url: i for i in storage.list_items("a", limit=10)}
    extracted, fallback = by_url[feed_server.url("/article/1")], by_url[feed_server.url("/article/2")]
    assert ARTICLE_TEXT in extracted.html and "首页" not in extracted.html
    assert fallback.html == "feed summary 2"
    assert "article/2 full-text extraction found no body, keeping the feed content" in caplog.text
