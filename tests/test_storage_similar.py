"""Tests for aggregator.storage.similar: stories placed through the band index, on real SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import text

from aggregator.models import Item, ItemChange
from aggregator.similar.clusters import sign_item
from aggregator.storage import SignedItem, Storage, StoryCounts, StoryRequest, open_storage

STORY = (
    "<p>农业农村部副部长邓小刚8日表示，近日国务院印发《“十四五”推进农业农村现代化规划》。规划提出，到2025年，"
    "农业基础更加稳固，乡村振兴战略全面推进，农业农村现代化取得重要进展。</p>"
    "<p>梯次推进有条件的地区率先基本实现农业农村现代化，脱贫地区实现巩固拓展脱贫攻坚成果同乡村振兴有效衔接。"
    "力争到2035年，乡村全面振兴取得决定性进展，农业农村现代化基本实现。</p>"
)
OTHER_STORY = (
    "<p>截至收盘，沪指涨0.52%，报3589.31点；深证成指涨0.87%，报14866.67点；创业板指涨1.21%。"
    "沪深两市成交额11234亿元，北向资金全天净买入45.60亿元。板块方面，消费电子、半导体等板块涨幅居前。</p>"
)


def make_item(article_id: str, html: str, now: datetime, category: str, title: str = "推进农业农村现代化") -> Item:
    return Item(
        article_id=article_id, title=title, url=f"https://finance.eastmoney.com/a/{article_id}.html", html=html,
        published=now, updated=now, categories=frozenset({category}), sources=frozenset({f"src-{category}"}),
        content_hash=article_id, first_seen=now,
    )


def store_and_sign(storage: Storage, items: list[Item], now: datetime, window: timedelta = timedelta(days=7)) -> list[str]:
    storage.apply_update([ItemChange("insert", item, min(item.sources), "r") for item in items], None)
    signed = [SignedItem(i.article_id, i.categories, i.first_seen or now, sign_item(i.title, i.html)) for i in items]
    return [a.story_id for a in storage.assign_stories(signed, threshold=0.5, window=window, now=now)]


def test_reprint_with_another_source_line_joins_the_first_items_story(storage: Storage, now: datetime) -> None:
    first = make_item("NW1", STORY + "<p>（文章来源：南通日报）</p>", now, "nantongribao")
    reprint = make_item("NW2", STORY + "<p>（文章来源：泉州晚报）</p><p>责任编辑：王芳</p>", now + timedelta(hours=1),
                        "quanzhouwanbao", title="重磅！推进农业农村现代化")
    other = make_item("NW3", OTHER_STORY, now + timedelta(hours=2), "quanzhouwanbao", title="沪指涨0.52%")

    assert store_and_sign(storage, [first], now) == ["NW1"]
    assert store_and_sign(storage, [reprint, other], now + timedelta(hours=2)) == ["NW1", "NW3"]

    members = storage.story_members("NW2")
    assert [(m.article_id, m.member_index, m.matched_id) for m in members] == [("NW1", 0, None), ("NW2", 1, "NW1")]
    assert members[1].similarity is not None and members[1].similarity >= 0.5
    assert members[1].categories == {"quanzhouwanbao"}
    counts = storage.story_counts()
    assert (counts.stories, counts.merged_items, counts.signed_items) == (1, 1, 3)
    per_source = storage.story_counts_per_source()
    assert per_source["src-quanzhouwanbao"] == StoryCounts(stories=1, merged_items=1, signed_items=1)
    assert per_source["src-nantongribao"] == StoryCounts(stories=1, merged_items=0, signed_items=1)


def test_story_that_grows_names_every_members_category(storage: Storage, now: datetime) -> None:
    items = [make_item(f"NW{n}", STORY + f"<p>（文章来源：{paper}）</p>", now, slug)
             for n, (paper, slug) in enumerate([("南通日报", "nantongribao"), ("重庆日报", "chongqingribao")])]
    store_and_sign(storage, items[:1], now)
    storage.apply_update([ItemChange("insert", items[1], "src", "r")], None)
    signed = SignedItem("NW1", items[1].categories, now, sign_item(items[1].title, items[1].html))

    (assignment,) = storage.assign_stories([signed], threshold=0.5, window=timedelta(days=7), now=now)

    assert assignment.is_merge and assignment.story_categories == {"nantongribao", "chongqingribao"}


def test_items_of_one_batch_find_each_other_and_a_retry_changes_nothing(storage: Storage, now: datetime) -> None:
    items = [make_item("NW1", STORY, now, "a"), make_item("NW2", STORY + "<p>责任编辑：张伟</p>", now, "b")]
    assert store_and_sign(storage, items, now) == ["NW1", "NW1"]
    signed = [SignedItem(i.article_id, i.categories, now, sign_item(i.title, i.html)) for i in items]
    assert storage.assign_stories(signed, threshold=0.5, window=timedelta(days=7), now=now) == []
    assert storage.story_counts().merged_items == 1


def test_item_outside_the_window_starts_a_story_of_its_own(storage: Storage, now: datetime) -> None:
    store_and_sign(storage, [make_item("NW1", STORY, now, "a")], now)
    later = now + timedelta(days=8)
    assert store_and_sign(storage, [make_item("NW2", STORY, later, "b")], later) == ["NW2"]
    assert storage.story_counts().stories == 0


def test_stories_of_a_page_and_earlier_members_in_a_category(storage: Storage, now: datetime) -> None:
    items = [make_item("NW1", STORY, now, "a"), make_item("NW2", STORY, now, "b"), make_item("NW3", STORY, now, "a"),
             make_item("NW4", OTHER_STORY, now, "a")]
    store_and_sign(storage, items, now)

    views = storage.stories_of(["NW2", "NW3", "NW4"])
    assert set(views) == {"NW2", "NW3"}
    view = views["NW2"]
    assert (view.story_id, view.member_count, [m.article_id for m in view.members]) == ("NW1", 3, ["NW1", "NW2", "NW3"])
    assert storage.earlier_members_in(["NW1", "NW3", "NW4"], "a") == {"NW3"}  # the items of feed a
    assert storage.earlier_members_in(["NW2"], "a") == {"NW2"}
    assert storage.earlier_members_in(["NW2"], "b") == set()  # NW1 is not in b


def test_reopened_store_sees_the_same_stories(store_url: str, now: datetime) -> None:
    store = open_storage(store_url)
    try:
        store_and_sign(store, [make_item("NW1", STORY, now, "a"), make_item("NW2", STORY, now, "b")], now)
    finally:
        store.close()
    reopened = open_storage(store_url)
    try:
        assert [m.article_id for m in reopened.story_members("NW1")] == ["NW1", "NW2"]
        later = now + timedelta(hours=3)
        assert store_and_sign(reopened, [make_item("NW3", STORY, later, "c")], later) == ["NW1"]
    finally:
        reopened.close()


def test_items_and_their_stories_commit_together_and_a_refused_item_gets_no_story(
    storage: Storage, now: datetime
) -> None:
    first = make_item("NW1", STORY, now, "a")
    reprint = make_item("NW2", STORY + "<p>责任编辑：张伟</p>", now, "b")
    refused = dataclasses.replace(make_item("NW3", STORY, now, "c"), updated=now.replace(tzinfo=None))
    request = StoryRequest(
        tuple(SignedItem(i.article_id, i.categories, now, sign_item(i.title, i.html)) for i in (first, refused, reprint)),
        threshold=0.5, window=timedelta(days=7), now=now,
    )

    applied = storage.apply_update(
        [ItemChange("insert", item, "src", "r") for item in (first, refused, reprint)], None, stories=request)

    assert [r.change.item.article_id for r in applied.refused] == ["NW3"]
    assert [(a.article_id, a.story_id) for a in applied.stories] == [("NW1", "NW1"), ("NW2", "NW1")]
    assert applied.stories[1].story_categories == {"a", "b"}
    assert [m.article_id for m in storage.story_members("NW2")] == ["NW1", "NW2"]
    assert storage.story_members("NW3") == []


def test_signatures_are_numbered_in_seen_order_and_their_band_rows_leave_with_the_window(
    storage: Storage, now: datetime
) -> None:
    def numbers() -> tuple[list[tuple[int, str]], set[int]]:
        # the engine is private: the test looks under the API at the band index
        with storage._engine.connect() as connection:  # type: ignore[attr-defined]
            signed = connection.execute(text("SELECT number, article_id FROM item_signatures ORDER BY number")).all()
            banded = set(connection.execute(text("SELECT DISTINCT number FROM signature_bands")).scalars())
        return [tuple(row) for row in signed], banded

    store_and_sign(storage, [make_item("NW3", STORY, now, "a"), make_item("NW1", OTHER_STORY, now, "a"),
                             make_item("NW2", STORY, now - timedelta(hours=1), "a")], now)
    assert numbers() == ([(1, "NW2"), (2, "NW1"), (3, "NW3")], {1, 2, 3})  # seen_at, then article_id

    later = now + timedelta(days=7) - timedelta(minutes=30)  # NW2 has left the window, NW1 and NW3 not yet
    stale = make_item("NW4", OTHER_STORY, now - timedelta(days=8), "b")  # signed long after it was seen
    assert store_and_sign(storage, [make_item("NW5", STORY, later, "b"), stale], later) == ["NW3", "NW1"]
    assert numbers() == ([(1, "NW2"), (2, "NW1"), (3, "NW3"), (4, "NW4"), (5, "NW5")], {2, 3, 5})


def test_purged_items_leave_their_stories_and_the_band_index(storage: Storage, now: datetime) -> None:
    """Retention with detection on: the purge removes signatures and band rows with the items (a foreign key
    refused it before), a story left empty goes, and a story's remaining members are numbered again."""
    day = timedelta(days=1)
    old = [make_item(f"NW{n}", STORY + f"<p>（文章来源：报{n}）</p>", now - (9 - n) * day, f"c{n}") for n in range(3)]
    alone = make_item("NW9", OTHER_STORY, now - 9 * day, "c9", title="沪指涨0.52%")
    store_and_sign(storage, [alone, *old], now - 9 * day, window=timedelta(days=30))
    assert [m.article_id for m in storage.story_members("NW2")] == ["NW0", "NW1", "NW2"]

    purged = storage.purge_items_before(now - 7 * day - timedelta(hours=1))  # NW0, NW1 (listed day -9, -8), NW9

    assert set(purged.article_ids) == {"NW0", "NW1", "NW9"}
    members = storage.story_members("NW2")
    assert [(m.article_id, m.member_index) for m in members] == [("NW2", 0)]
    counts = storage.story_counts()
    assert (counts.stories, counts.merged_items, counts.signed_items) == (0, 0, 1)
    with storage._engine.connect() as connection:  # type: ignore[attr-defined]
        bands = connection.execute(text("SELECT count(*) FROM signature_bands")).scalar_one()
        story_rows = connection.execute(text("SELECT story_id, member_count FROM stories ORDER BY story_id")).all()
    assert bands == 32  # NW2's own
    assert [tuple(row) for row in story_rows] == [("NW0", 1)]  # the story keeps its id; NW9's is gone

    reprint = make_item("NW5", STORY + "<p>（文章来源：报5）</p>", now, "c5")
    assert store_and_sign(storage, [reprint], now, window=timedelta(days=30)) == ["NW0"]
    assert [(m.article_id, m.member_index) for m in storage.story_members("NW5")] == [("NW2", 0), ("NW5", 1)]
