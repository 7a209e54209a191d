"""update.Updater in-process against real storage (SQLite and PostgreSQL).

Tests about decisions (what a 304, a failure, a 410, a redirect, a changed URL do) get their answers
from tests/fakes.py's FakeFetcher; tests about the whole path (two sources, categories, article
bodies, links) go through the real fetcher and the loopback server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import sqlalchemy.exc

from sqlalchemy import update

from aggregator import dedupe
from aggregator.config.load import Config, parse_config
from aggregator.errors import StorageError
from aggregator.fetch.client import HttpFetcher
from aggregator.models import Fetched, UpdateOutcome
from aggregator.parse import parse
from aggregator.publish.run import publish_categories
from aggregator.storage import SqlStorage, Storage
from aggregator.storage.schema import item_sources
from aggregator.schedule import MOVED_AFTER_POLLS, select_due
from aggregator.update import Updater
from tests.corpus_feeds import Post, read_post, rss
from tests.fakes import FakeFetcher
from tests.fixture_server import FixtureServer, Route

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def _config(server: FixtureServer, tmp_path: Path, sources: list[tuple[str, str, str]]) -> Config:
    lines = ["[settings]", "allow_private_networks = true", 'per_host_delay = "1ms"', 'timeout = "3s"',
             'interval = "10m"', "", "[categories.a]", 'title = "A"', "", "[categories.b]", 'title = "B"', ""]
    for name, path, category in sources:
        lines += ["[[sources]]", f'name = "{name}"', f'url = "{server.url(path)}"', f'categories = ["{category}"]', ""]
    return parse_config("\n".join(lines), tmp_path / "feeds.toml", {})


def _poll(config: Config, storage: Storage, now: datetime = NOW) -> list[UpdateOutcome]:
    async def run() -> list[UpdateOutcome]:
        async with HttpFetcher(config.settings) as fetcher:
            return await Updater(config, storage, fetcher, clock=lambda: now).update_sources(config.sources)

    return sorted(asyncio.run(run()), key=lambda o: o.source_name)


@pytest.fixture
def seed(seed_post: Path) -> Post:
    return read_post(seed_post)


def test_article_reaching_us_through_two_sources_is_stored_once_in_both_categories(
    feed_server: FixtureServer, storage: Storage, seed: Post, tmp_path: Path
) -> None:
    emnews_link = "http://finance.eastmoney.com/news/1344,202201242257831752.html"
    feed_server.routes["/one"] = Route(rss("one", [seed]))
    feed_server.routes["/two"] = Route(rss("two", [Post(**{**seed.__dict__, "link": emnews_link})]))
    config = _config(feed_server, tmp_path, [("one", "/one", "a"), ("two", "/two", "b")])
    outcomes = _poll(config, storage)
    assert sum(o.inserted for o in outcomes) == 1
    assert storage.count_items() == 1
    item = storage.get_item("NW202201242257831752")
    assert item is not None
    assert item.categories == {"a", "b"} and item.sources == {"one", "two"}
    assert "EM_StockImg" not in item.html and "display:none" not in item.html


# --- decisions: the FakeFetcher answers, real storage records ---------------------------------------


def _fake_config(tmp_path: Path, sources: list[tuple[str, str]]) -> Config:
    lines = ["[settings]", 'interval = "10m"', "", "[categories.a]", 'title = "A"', ""]
    for name, url in sources:
        lines += ["[[sources]]", f'name = "{name}"', f'url = "{url}"', 'categories = ["a"]', ""]
    return parse_config("\n".join(lines), tmp_path / "feeds.toml", {})


def _poll_fake(config: Config, storage: Storage, fetcher: FakeFetcher, now: datetime = NOW) -> list[UpdateOutcome]:
    updater = Updater(config, storage, fetcher, clock=lambda: now)
    return sorted(asyncio.run(updater.update_sources(config.sources)), key=lambda o: o.source_name)


ONE = "https://ntrb.example.cn/one.xml"


def test_unchanged_repoll_writes_nothing_and_is_reported_unchanged(
    storage: Storage, seed: Post, tmp_path: Path
) -> None:
    fetcher = FakeFetcher()
    fetcher.serve(ONE, rss("one", [seed]))
    config = _fake_config(tmp_path, [("one", ONE)])
    [first] = _poll_fake(config, storage, fetcher)
    [second] = _poll_fake(config, storage, fetcher, NOW + timedelta(minutes=15))
    assert (first.status, first.inserted) == ("new", 1)
    assert (second.status, second.inserted, second.updated, second.unchanged) == ("unchanged", 0, 0, 1)
    assert second.changed_categories == frozenset()


def test_an_item_stored_when_parsers_cleaned_titles_is_cleaned_once_more_and_not_republished(
    storage: Storage, tmp_path: Path
) -> None:
    code = "NW202201242257831001"
    document = (
        '<rss version="2.0"><channel><title>one</title><item>'
        f"<guid>{code}</guid><title>&lt;b&gt;如东风电项目&lt;/b&gt;   并网发电</title>"
        "<description>&lt;p&gt;全容量并网。&lt;/p&gt;</description><author>记者  张三</author>"
        "</item></channel></rss>"
    ).encode()
    fetcher = FakeFetcher()
    fetcher.serve(ONE, document)
    config = _fake_config(tmp_path, [("one", ONE)])
    _poll_fake(config, storage, fetcher)
    storage.settle_publish_claims(storage.claim_owed_categories("publisher"), published=True)
    stored = storage.get_item(code)
    # what the store holds from before the upgrade: the raw hash of the title and author parse cleaned
    answer = fetcher.answers[ONE]
    assert isinstance(answer, Fetched)
    [raw] = parse(answer, config.sources[0], "Asia/Shanghai").items
    cleaned_then = dataclasses.replace(raw, title="如东风电项目 并网发电", author="记者 张三")
    _set_raw_hash(storage, code, "one", dedupe.raw_hash(cleaned_then))

    [upgraded] = _poll_fake(config, storage, fetcher, NOW + timedelta(minutes=15))
    assert (upgraded.status, upgraded.updated, upgraded.unchanged) == ("unchanged", 0, 1)
    assert upgraded.changed_categories == frozenset() and storage.owed_categories() == {}
    assert storage.get_item(code) == stored is not None and stored.title == "如东风电项目 并网发电"
    # the raw hash is refreshed: the next poll finds what the source sent already stored and cleans nothing
    assert storage.get_stored_items([code])[code].raw_hashes == {"one": dedupe.raw_hash(raw)}


def _set_raw_hash(storage: Storage, article_id: str, source: str, raw_hash: str) -> None:
    assert isinstance(storage, SqlStorage)
    with storage.engine.begin() as connection:
        connection.execute(update(item_sources).where(item_sources.c.article_id == article_id,
                                                      item_sources.c.source == source).values(raw_hash=raw_hash))


def test_validators_go_back_to_the_source_and_a_304_keeps_them(storage: Storage, seed: Post, tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    fetcher.serve(ONE, rss("one", [seed]), {"etag": '"v1"', "last-modified": "Mon, 23 Nov 2026 06:00:00 GMT"})
    config = _fake_config(tmp_path, [("one", ONE)])
    _poll_fake(config, storage, fetcher)
    fetcher.not_modified(ONE)
    [outcome] = _poll_fake(config, storage, fetcher, NOW + timedelta(minutes=15))
    assert (outcome.status, outcome.http_status, outcome.next_poll_at) == ("not_modified", 304, NOW + timedelta(minutes=25))
    assert [(c.etag, c.last_modified) for c in fetcher.calls] == [
        (None, None), ('"v1"', "Mon, 23 Nov 2026 06:00:00 GMT")]
    state = storage.get_source_state("one")
    assert state is not None and (state.etag, state.last_status) == ('"v1"', 304)


def test_a_changed_url_in_feeds_toml_starts_the_source_afresh(storage: Storage, seed: Post, tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    fetcher.serve(ONE, rss("one", [seed]), {"etag": '"v1"'})
    _poll_fake(_fake_config(tmp_path, [("one", ONE)]), storage, fetcher)
    moved = "https://ntrb.example.cn/two.xml"
    fetcher.serve(moved, rss("one", [seed]))
    _poll_fake(_fake_config(tmp_path, [("one", moved)]), storage, fetcher, NOW + timedelta(minutes=15))
    assert [(c.url, c.etag) for c in fetcher.calls] == [(ONE, None), (moved, None)]


def test_failing_source_is_recorded_and_backed_off_while_others_succeed(
    storage: Storage, seed: Post, tmp_path: Path
) -> None:
    ok, bad, down = (f"https://ntrb.example.cn/{name}.xml" for name in ("ok", "bad", "down"))
    fetcher = FakeFetcher()
    fetcher.serve(ok, rss("ok", [seed]))
    fetcher.serve(bad, b"<html>not a feed</html>", {"content-type": "text/html"})
    fetcher.fail(down, 503, retry_after_seconds=7200)
    config = _fake_config(tmp_path, [("ok", ok), ("bad", bad), ("down", down)])
    outcomes = {o.source_name: o for o in _poll_fake(config, storage, fetcher)}
    assert outcomes["ok"].status == "new"
    assert outcomes["bad"].status == "error" and outcomes["bad"].error is not None
    assert outcomes["bad"].error.stage == "parse"
    assert outcomes["down"].error is not None and outcomes["down"].http_status == 503
    states = storage.get_source_states()
    assert states["down"].failures == 1
    assert states["down"].next_poll_at is not None and states["down"].next_poll_at >= NOW + timedelta(hours=2)
    assert states["bad"].last_error is not None and states["bad"].last_error.message.startswith("parse:")
    assert sorted(s.name for s in select_due(config.sources, states, NOW + timedelta(minutes=30))) == ["bad", "ok"]


def test_gone_source_is_retired_until_its_url_changes(storage: Storage, tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    fetcher.fail(ONE, 410)
    config = _fake_config(tmp_path, [("gone", ONE)])
    [outcome] = _poll_fake(config, storage, fetcher)
    assert outcome.status == "retired"
    later = NOW + timedelta(days=30)
    assert select_due(config.sources, storage.get_source_states(), later) == []
    [again] = _poll_fake(config, storage, fetcher, later)
    assert again.status == "retired" and len(fetcher.calls) == 1, "a retired source is not fetched"
    moved = _fake_config(tmp_path, [("gone", "https://ntrb.example.cn/new-home.xml")])
    assert [s.name for s in select_due(moved.sources, storage.get_source_states(), later)] == ["gone"]


def test_permanent_redirect_is_followed_for_good_after_repeated_polls(
    storage: Storage, seed: Post, tmp_path: Path
) -> None:
    new = "https://ntrb.example.cn/new.xml"
    fetcher = FakeFetcher()
    fetcher.serve(ONE, rss("new", [seed]), moved_to=new)
    fetcher.serve(new, rss("new", [seed]))
    config = _fake_config(tmp_path, [("s", ONE)])
    for poll in range(MOVED_AFTER_POLLS + 1):
        _poll_fake(config, storage, fetcher, NOW + timedelta(hours=poll))
    state = storage.get_source_states()["s"]
    assert state.moved_to == new
    assert fetcher.urls() == [ONE] * MOVED_AFTER_POLLS + [new]


def test_auto_source_files_items_under_their_media_and_keeps_colliding_media_apart(
    feed_server: FixtureServer, storage: Storage, tmp_path: Path
) -> None:
    records = [
        ("NW202201242257831752", "南通日报", "中天科技全面启动绿色低碳制造行动"),
        ("NW202201242257831753", "金融界", "金融界的新闻"),
        ("NW202201242257831754", "金融街", "金融街的新闻"),
    ]
    listing = {"records": [{"infoCode": code, "title": title, "showtime": "2022-01-24 00:48:09", "medianame": medium}
                           for code, medium, title in records]}
    feed_server.routes["/list"] = Route(json.dumps(listing, ensure_ascii=False).encode(),
                                        content_type="application/json")
    for code, _, title in records:
        feed_server.routes[f"/detail/{code}"] = Route(
            json.dumps({"text": f"<p>{title}正文</p>"}, ensure_ascii=False).encode(), content_type="application/json")
    text = "\n".join([
        "[settings]", "allow_private_networks = true", 'per_host_delay = "1ms"', "",
        "[categories.nantongribao]", 'title = "南通日报新闻"', "",
        "[[sources]]", 'name = "em"', 'kind = "json"', 'preset = "eastmoney"', 'categories = "auto"',
        f'url = "{feed_server.url("/list")}"', f'detail_url = "{feed_server.url("/detail/{id}")}"', "",
    ])
    config = parse_config(text, tmp_path / "feeds.toml", {})
    [outcome] = _poll(config, storage)
    assert outcome.inserted == 3, outcome
    categories = {code: storage.get_item(code).categories for code, _, _ in records}  # type: ignore[union-attr]
    assert categories["NW202201242257831752"] == {"nantongribao"}
    jinrongjie = categories["NW202201242257831753"] | categories["NW202201242257831754"]
    assert len(jinrongjie) == 2 and "jinrongjie" in jinrongjie
    titles = storage.category_titles()
    assert "nantongribao" not in titles, "categories of feeds.toml keep their configured title"
    assert sorted(titles.values()) == ["金融界新闻", "金融街新闻"]
    item = storage.get_item("NW202201242257831752")
    assert item is not None and item.html == "<p>中天科技全面启动绿色低碳制造行动正文</p>"
    config = config.model_copy(update={"settings": config.settings.model_copy(update={"output_dir": tmp_path / "out"})})
    publish_categories(storage, config, None)
    jinrongjie_feed = feedparser.parse((tmp_path / "out" / "jinrongjie.atom").read_bytes())
    assert jinrongjie_feed.feed.title in ("金融界新闻", "金融街新闻")


def _eastmoney_source(server: FixtureServer, tmp_path: Path, extra: list[str]) -> Config:
    text = "\n".join([
        "[settings]", "allow_private_networks = true", 'per_host_delay = "1ms"', 'timeout = "3s"', "",
        "[categories.a]", 'title = "A"', "",
        "[[sources]]", 'name = "em"', 'kind = "json"', 'preset = "eastmoney"', *extra,
        f'url = "{server.url("/list")}"', f'detail_url = "{server.url("/detail/{id}")}"', "",
    ])
    return parse_config(text, tmp_path / "feeds.toml", {})


def _listing(*records: tuple[str, str, str]) -> Route:
    body = {"records": [{"infoCode": code, "title": title, "showtime": "2022-01-24 00:48:09", "medianame": medium,
                         "digest": f"{title}摘要"} for code, medium, title in records]}
    return Route(json.dumps(body, ensure_ascii=False).encode(), content_type="application/json")


def test_category_from_medium_adds_the_medium_to_the_configured_categories(
    feed_server: FixtureServer, storage: Storage, tmp_path: Path
) -> None:
    feed_server.routes["/list"] = _listing(("NW202201242257831752", "南通日报", "标题"))
    feed_server.routes["/detail/NW202201242257831752"] = Route(b'{"text": "<p>x</p>"}', content_type="application/json")
    config = _eastmoney_source(feed_server, tmp_path, ['categories = ["a"]', 'category_from = "medium"'])
    _poll(config, storage)
    item = storage.get_item("NW202201242257831752")
    assert item is not None and item.categories == {"a", "nantongribao"}


def test_article_whose_body_could_not_be_fetched_is_retried_on_the_next_poll(
    feed_server: FixtureServer, storage: Storage, tmp_path: Path
) -> None:
    code = "NW202201242257831752"
    feed_server.routes["/list"] = _listing((code, "南通日报", "标题"))
    feed_server.routes[f"/detail/{code}"] = Route(b"busy", status=503, content_type="text/plain")
    config = _eastmoney_source(feed_server, tmp_path, ['categories = ["a"]'])
    [first] = _poll(config, storage)
    item = storage.get_item(code)
    assert first.inserted == 1 and item is not None and "标题摘要" in item.html, "the digest stands in meanwhile"
    feed_server.routes[f"/detail/{code}"] = Route('{"text": "<p>全文</p>"}'.encode(), content_type="application/json")
    [second] = _poll(config, storage, NOW + timedelta(minutes=15))
    assert second.updated == 1
    item = storage.get_item(code)
    assert item is not None and item.html == "<p>全文</p>"
    [third] = _poll(config, storage, NOW + timedelta(minutes=30))
    assert third.status == "unchanged"
    assert feed_server.hits[f"/detail/{code}"] == 2, "a complete article is not fetched again"


def test_item_links_lose_tracking_parameters_and_relative_body_urls_resolve_against_the_item(
    feed_server: FixtureServer, storage: Storage, seed: Post, tmp_path: Path
) -> None:
    post = Post(**{**seed.__dict__, "link": "https://news.example.cn/2022/01/a.html?id=7&utm_source=rss",
                   "html": '<p><a href="../b.html">上一篇</a><img src="pic.jpg"></p>'})
    feed_server.routes["/one"] = Route(rss("one", [post]))
    config = _config(feed_server, tmp_path, [("one", "/one", "a")])
    _poll(config, storage)
    [item] = storage.list_items("a", limit=5)
    assert item.url == "https://news.example.cn/2022/01/a.html?id=7"
    assert '<a href="https://news.example.cn/2022/b.html">上一篇</a>' in item.html
    assert '<img src="https://news.example.cn/2022/01/pic.jpg">' in item.html


# --- same story, many papers (issue 14): items and their stories commit together -------------------


def test_a_poll_killed_by_a_failing_story_write_stores_nothing_and_the_next_poll_groups_every_item(
    storage: Storage, seed: Post, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reprint = dataclasses.replace(
        seed, title="重磅！" + seed.title, link="http://finance.eastmoney.com/news/1345,202201242257999001.html",
        html=seed.html.replace("（文章来源：南通日报）", "（文章来源：泉州晚报）") + "<p>责任编辑：王芳</p>")
    fetcher = FakeFetcher()
    fetcher.serve(ONE, rss("one", [seed, reprint]))
    config = _fake_config(tmp_path, [("one", ONE)])

    def lost_connection(self: object, connection: object) -> None:
        raise sqlalchemy.exc.OperationalError("INSERT INTO stories …", {}, ConnectionError("server closed the connection"))

    with monkeypatch.context() as patch:
        patch.setattr("aggregator.storage.similar._Batch.write", lost_connection)
        with pytest.raises(StorageError):
            _poll_fake(config, storage, fetcher)
    # the failed story write took the poll's items and state with it: nothing stored without its story
    assert storage.count_items() == 0
    assert storage.get_source_state("one") is None
    assert storage.owed_categories() == {}

    [outcome] = _poll_fake(config, storage, fetcher)  # a restarted poll

    assert (outcome.status, outcome.inserted, outcome.merged) == ("new", 2, 1)
    stored = [item.article_id for item in storage.list_items(None, limit=10)]
    assert len(stored) == 2
    assert all(len(storage.story_members(article_id)) == 2 for article_id in stored)


def test_a_reprint_in_another_category_republishes_the_category_of_the_story_it_joins(
    storage: Storage, seed: Post, tmp_path: Path
) -> None:
    reprint = dataclasses.replace(
        seed, link="http://finance.eastmoney.com/news/1345,202201242257999002.html",
        html=seed.html.replace("（文章来源：南通日报）", "（文章来源：重庆日报）"))
    fetcher = FakeFetcher()
    fetcher.serve(ONE, rss("one", [seed]))
    fetcher.serve("https://cqrb.example.cn/two.xml", rss("two", [reprint]))
    lines = ["[settings]", 'interval = "10m"', "", "[categories.a]", 'title = "A"', "", "[categories.b]", 'title = "B"',
             "", "[[sources]]", 'name = "one"', f'url = "{ONE}"', 'categories = ["a"]', "",
             "[[sources]]", 'name = "two"', 'url = "https://cqrb.example.cn/two.xml"', 'categories = ["b"]']
    config = parse_config("\n".join(lines), tmp_path / "feeds.toml", {})
    first = Updater(config, storage, fetcher, clock=lambda: NOW)
    [one] = asyncio.run(first.update_sources(config.sources[:1]))
    later = Updater(config, storage, fetcher, clock=lambda: NOW + timedelta(hours=1))
    [two] = asyncio.run(later.update_sources(config.sources[1:]))

    assert (one.merged, one.changed_categories) == (0, {"a"})
    assert (two.merged, two.changed_categories) == (1, {"a", "b"})
