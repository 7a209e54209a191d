"""Search over the archive on both backends: trigram substring matching, short queries, order, limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from aggregator.importers.jekyll_posts import read_legacy_post
from aggregator.models import Item, ItemChange
from aggregator.storage import Storage, open_storage
from aggregator.storage.search import MAX_QUERY_CHARS, SearchTimeoutError, time_limit
from aggregator.storage.search_index import plain_text
from tests.conftest import fresh_store_url

T0 = datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)
TEXTS = [
    ("南通港吞吐量创新高", "<p>南通港今年货物吞吐量创历史新高，集装箱运输增长明显。</p>"),
    ("中天科技全面启动绿色低碳制造行动", "<p>聚焦可持续发展，中天科技发布<b>绿色低碳</b>制造行动方案。</p>"),
    ("海门端午龙舟赛开赛", "<p>端午节当天，海门龙舟赛吸引上万市民观看。100% 真实</p>"),
    ("Helios 能源云平台上线", "<p>赫利乌斯能源云平台(HELIOS)服务绿色低碳园区。</p>"),
    ("如皋长寿文化节开幕", "<p>长寿之乡如皋举办文化节，南通市民踊跃参加。</p>"),
]
QUERIES = ["绿色低碳", "南通", "港", "helios", "HELIOS", "龙舟赛", "100%", "不存在的词", "市民", "云平台(HE"]


def make_items(count: int = len(TEXTS)) -> list[Item]:
    return [
        Item(
            article_id=f"NW{202201240000000000 + n}", title=TEXTS[n % len(TEXTS)][0],
            url=f"https://finance.eastmoney.com/a/{n}.html", html=TEXTS[n % len(TEXTS)][1],
            published=T0 + timedelta(minutes=n // 2), updated=T0 + timedelta(minutes=n // 2),
            categories=frozenset({"nantongribao"}), sources=frozenset({"nt"}), content_hash=f"h{n}",
        )
        for n in range(count)
    ]


def store(storage: Storage, items: list[Item]) -> None:
    storage.apply_update([ItemChange("insert", i, "nt", i.content_hash) for i in items], None)


def ids(storage: Storage, query: str, page: int = 1, per_page: int = 20) -> list[str]:
    return [h.article_id for h in storage.search(query, page=page, per_page=per_page, time_limit_seconds=5).hits]


def test_a_three_character_phrase_finds_the_items_that_contain_it_newest_first(storage: Storage) -> None:
    store(storage, make_items(10))
    assert ids(storage, "绿色低碳") == ["NW202201240000000008", "NW202201240000000006",
                                      "NW202201240000000003", "NW202201240000000001"]
    hit = storage.search("龙舟赛", page=1, per_page=5, time_limit_seconds=5).hits[0]
    assert hit.title == "海门端午龙舟赛开赛" and "龙舟赛" in hit.snippet and hit.listed_at == T0 + timedelta(minutes=3)


def test_one_and_two_character_queries_are_answered_by_the_bounded_fallback(storage: Storage) -> None:
    store(storage, make_items(10))
    assert ids(storage, "港") == ["NW202201240000000005", "NW202201240000000000"]
    assert ids(storage, "南通") == ["NW202201240000000009", "NW202201240000000005",
                                  "NW202201240000000004", "NW202201240000000000"]


def test_matching_ignores_ascii_case_and_treats_wildcards_literally(storage: Storage) -> None:
    store(storage, make_items(5))
    assert ids(storage, "helios") == ids(storage, "HeLiOs") == ["NW202201240000000003"]
    assert ids(storage, "100%") == ["NW202201240000000002"]
    assert ids(storage, "0%") == ["NW202201240000000002"]


def test_tags_are_not_text_and_updates_and_pagination_follow_the_store(storage: Storage) -> None:
    items = make_items(10)
    store(storage, items)
    assert ids(storage, "<b>") == [] and ids(storage, "b>绿") == []
    assert ids(storage, "绿色低碳", page=2, per_page=3) == ["NW202201240000000001"]
    page = storage.search("绿色低碳", page=1, per_page=3, time_limit_seconds=5)
    assert page.has_more and len(page.hits) == 3
    changed = [i for i in items if i.article_id == "NW202201240000000008"][0]
    import dataclasses

    edited = dataclasses.replace(changed, title="改写后的标题", html="<p>全新正文</p>", content_hash="new")
    storage.apply_update([ItemChange("update", edited, "nt", "new")], None)
    assert "NW202201240000000008" not in ids(storage, "绿色低碳")
    assert ids(storage, "改写后") == ["NW202201240000000008"]


def test_an_overlong_query_is_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="search: query longer than"):
        storage.search("长" * (MAX_QUERY_CHARS + 1), page=1, per_page=10, time_limit_seconds=5)


def test_both_backends_give_the_same_ids_for_the_same_queries(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    results = {}
    for backend in ("sqlite", "postgresql"):
        with fresh_store_url(backend, tmp_path / backend, request) as url:
            storage = open_storage(url)
            try:
                store(storage, make_items(40))
                results[backend] = {q: (ids(storage, q, per_page=7), ids(storage, q, page=2, per_page=7)) for q in QUERIES}
            finally:
                storage.close()
    assert results["sqlite"] == results["postgresql"]
    assert results["sqlite"]["绿色低碳"][0]


def test_the_seed_article_is_found_by_a_three_character_phrase(storage: Storage, seed_post: Path) -> None:
    post = read_legacy_post(seed_post)
    assert not isinstance(post, type(None))
    raw = post.to_raw_item()  # type: ignore[union-attr]
    item = Item(article_id="NW202201242257831752", title=raw.title, url=raw.url, html=raw.html,
                published=raw.published, updated=raw.published or T0, categories=frozenset({"nantongribao"}),
                sources=frozenset({"nt"}), content_hash="seed")
    store(storage, [*make_items(5), item])
    assert ids(storage, "碳达峰") == ["NW202201242257831752"]
    assert ids(storage, "中天科") == ["NW202201242257831752", "NW202201240000000001"]


def test_a_statement_past_the_time_limit_is_cancelled(storage: Storage, store_url: str) -> None:
    slow = ("SELECT pg_sleep(2)" if store_url.startswith("postgresql") else
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n")
    started = time.monotonic()
    with pytest.raises(SearchTimeoutError, match="search: query ran longer than 0.05 s"):
        with storage._engine.connect() as connection, connection.begin():  # type: ignore[attr-defined]
            with time_limit(connection, 0.05):
                connection.execute(text(slow))
    assert time.monotonic() - started < 1.5
    assert ids(storage, "绿色低碳") == []  # the connection is usable again


def test_plain_text_drops_markup_and_collapses_space() -> None:
    assert plain_text("<p>一  <b>二</b></p>\n<p>三</p>") == "一 二 三"
    assert plain_text("") == ""
