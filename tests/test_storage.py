"""Tests for aggregator.storage: item and source-state semantics on a real SQLite file and real PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from aggregator.errors import StorageError
from aggregator.models import ChangeAction, ErrorInfo, Item, ItemChange, SourceState
from aggregator.storage import CategoryStats, Storage, open_storage
from tests.conftest import REPO_ROOT, fresh_store_url


def make_item(
    article_id: str,
    now: datetime,
    *,
    categories: tuple[str, ...] = ("nantongribao",),
    sources: tuple[str, ...] = ("eastmoney-nantong",),
    title: str = "title",
    published: datetime | None = None,
    content_hash: str = "c1",
    first_seen: datetime | None = None,
) -> Item:
    return Item(
        article_id=article_id,
        title=title,
        url=f"https://finance.eastmoney.com/a/{article_id}.html",
        html=f"<p>{title}</p>",
        published=published,
        updated=now,
        categories=frozenset(categories),
        sources=frozenset(sources),
        content_hash=content_hash,
        summary="summary",
        author="author",
        first_seen=first_seen or now,
    )


def change(action: ChangeAction, item: Item, raw_hash: str = "r1", source: str | None = None) -> ItemChange:
    return ItemChange(action=action, item=item, source_name=source or min(item.sources), raw_hash=raw_hash)


def test_inserted_item_reads_back_whole(storage: Storage, now: datetime) -> None:
    item = make_item("NW202201242257831752", now, published=now - timedelta(hours=1))
    storage.apply_update([change("insert", item)], None)

    assert storage.get_item(item.article_id) == item
    assert storage.get_item("NW0") is None


def test_item_seen_on_two_sources_is_stored_once_with_both_raw_hashes(
    storage: Storage, now: datetime
) -> None:
    first = make_item("NW1", now, categories=("nantongribao",), sources=("nantong-json",))
    storage.apply_update([change("insert", first, "raw-a")], None)
    linked = make_item("NW1", now, categories=("jiangsu",), sources=("jiangsu-rss",))
    storage.apply_update([change("link", linked, "raw-b")], None)

    assert storage.count_items() == 1
    stored = storage.get_stored_items(["NW1"])["NW1"]
    assert stored.raw_hashes == {"nantong-json": "raw-a", "jiangsu-rss": "raw-b"}
    assert stored.categories == {"nantongribao", "jiangsu"}
    item = storage.get_item("NW1")
    assert item is not None
    assert item.sources == {"nantong-json", "jiangsu-rss"}
    assert item.categories == {"nantongribao", "jiangsu"}


def test_categories_and_sources_are_never_removed_by_later_changes(storage: Storage, now: datetime) -> None:
    storage.apply_update(
        [change("insert", make_item("NW1", now, categories=("a", "b"), sources=("s1",)))], None
    )
    narrower = make_item(
        "NW1", now + timedelta(hours=1), categories=("c",), sources=("s2",), content_hash="c2"
    )
    storage.apply_update([change("update", narrower, source="s2")], None)

    item = storage.get_item("NW1")
    assert item is not None
    assert item.categories == {"a", "b", "c"}
    assert item.sources == {"s1", "s2"}


def test_update_replaces_content_and_moves_updated_but_keeps_first_seen(
    storage: Storage, now: datetime
) -> None:
    storage.apply_update([change("insert", make_item("NW1", now, title="old"))], None)
    later = now + timedelta(hours=2)
    edited = make_item("NW1", later, title="new", content_hash="c2", first_seen=later)
    storage.apply_update([change("update", edited, "r2")], None)

    item = storage.get_item("NW1")
    assert item is not None
    assert (item.title, item.html, item.content_hash) == ("new", "<p>new</p>", "c2")
    assert item.updated == later
    assert item.first_seen == now
    assert storage.get_stored_items(["NW1"])["NW1"].raw_hashes == {"eastmoney-nantong": "r2"}


def test_link_adds_source_and_category_without_touching_content_or_updated(
    storage: Storage, now: datetime
) -> None:
    original = make_item("NW1", now, title="original", sources=("s1",))
    storage.apply_update([change("insert", original)], None)
    # a link carries the item as the other source saw it; only membership may change
    seen_again = make_item("NW1", now + timedelta(days=1), title="other", categories=("x",), sources=("s2",))
    storage.apply_update([change("link", seen_again, "r9")], None)

    item = storage.get_item("NW1")
    assert item is not None
    assert (item.title, item.updated, item.content_hash) == ("original", now, "c1")
    assert item.categories == {"nantongribao", "x"}
    assert storage.get_stored_items(["NW1"])["NW1"].raw_hashes == {"s1": "r1", "s2": "r9"}


def test_unchanged_change_writes_nothing(storage: Storage, now: datetime) -> None:
    storage.apply_update([change("insert", make_item("NW1", now, sources=("s1",)))], None)
    ignored = make_item("NW1", now + timedelta(days=1), title="ignored", categories=("x",), sources=("s2",))
    storage.apply_update(
        [change("unchanged", ignored, "r9"), change("unchanged", make_item("NW2", now))], None
    )

    assert storage.count_items() == 1
    assert storage.get_item("NW1") == make_item("NW1", now, sources=("s1",))
    assert storage.get_stored_items(["NW1"])["NW1"].raw_hashes == {"s1": "r1"}


def test_raw_hash_of_a_source_is_replaced_by_its_latest(storage: Storage, now: datetime) -> None:
    item = make_item("NW1", now, sources=("s1",))
    storage.apply_update([change("insert", item, "r1")], None)
    storage.apply_update([change("link", item, "r2")], None)

    assert storage.get_stored_items(["NW1"])["NW1"].raw_hashes == {"s1": "r2"}


def test_insert_of_an_item_already_stored_replaces_its_content(storage: Storage, now: datetime) -> None:
    """Two processes that planned against the same old view converge instead of failing."""
    storage.apply_update([change("insert", make_item("NW1", now, title="first", sources=("s1",)))], None)
    again = make_item("NW1", now + timedelta(minutes=5), title="second", sources=("s2",), content_hash="c2")
    storage.apply_update([change("insert", again, "r2")], None)

    item = storage.get_item("NW1")
    assert item is not None
    assert (item.title, item.sources, item.first_seen) == ("second", frozenset({"s1", "s2"}), now)
    assert storage.count_items() == 1


def test_link_of_an_item_missing_from_the_store_inserts_it(storage: Storage, now: datetime) -> None:
    item = make_item("NW1", now)
    storage.apply_update([change("link", item)], None)

    assert storage.get_item("NW1") == item


def test_same_item_twice_in_one_batch_is_stored_once_with_the_later_content(
    storage: Storage, now: datetime
) -> None:
    first = make_item("NW1", now, title="first", sources=("s1",))
    second = make_item("NW1", now + timedelta(minutes=1), title="second", sources=("s2",), content_hash="c2")
    storage.apply_update([change("insert", first, "r1"), change("update", second, "r2")], None)

    item = storage.get_item("NW1")
    assert item is not None
    assert (item.title, item.sources) == ("second", frozenset({"s1", "s2"}))
    assert storage.list_items_in_order(None, start=0, limit=10) == [item]


def test_list_items_is_newest_first_by_published_else_first_seen_then_article_id(
    storage: Storage, now: datetime
) -> None:
    items = [
        make_item("NW1", now, published=now - timedelta(days=3)),
        make_item("NW2", now, published=None, first_seen=now - timedelta(days=1)),
        make_item("NW3", now, published=now - timedelta(days=2)),
        make_item("NW4", now, published=now - timedelta(days=2)),
        make_item("NW5", now, published=now),
    ]
    storage.apply_update([change("insert", item) for item in items], None)

    listed = [item.article_id for item in storage.list_items(None, limit=10)]
    assert listed == ["NW5", "NW2", "NW4", "NW3", "NW1"]
    assert [item.article_id for item in storage.list_items(None, limit=2)] == ["NW5", "NW2"]
    assert storage.list_items(None, limit=0) == []


def test_list_items_of_a_category_holds_only_its_members(storage: Storage, now: datetime) -> None:
    storage.apply_update(
        [
            change("insert", make_item("NW1", now, categories=("a",), published=now)),
            change("insert", make_item("NW2", now, categories=("b",), published=now)),
            change(
                "insert", make_item("NW3", now, categories=("a", "b"), published=now - timedelta(hours=1))
            ),
        ],
        None,
    )

    assert [item.article_id for item in storage.list_items("a", limit=10)] == ["NW1", "NW3"]
    assert [item.article_id for item in storage.list_items("b", limit=1)] == ["NW2"]
    assert storage.list_items("missing", limit=10) == []


def test_category_head_follows_an_items_new_date_and_matches_the_all_items_order(
    storage: Storage, now: datetime
) -> None:
    """A category's newest items come from its own index (item_categories.listed_at), kept equal to the
    items' listing date through updates, links and first_seen fallbacks."""
    hour = timedelta(hours=1)
    storage.apply_update([
        change("insert", make_item("NW1", now, categories=("a",), published=now - 3 * hour)),
        change("insert", make_item("NW2", now, categories=("a", "b"), published=now - 2 * hour)),
        change("insert", make_item("NW3", now - hour, categories=("a",))),  # no date: listed at first_seen
        change("insert", make_item("NW4", now, categories=("a",), published=now - 2 * hour)),  # ties NW2: id decides
    ], None)
    assert [item.article_id for item in storage.list_items("a", limit=10)] == ["NW3", "NW4", "NW2", "NW1"]

    storage.apply_update([change("update", make_item("NW1", now, categories=("a",), published=now + hour,
                                                     content_hash="c2"))], None)
    storage.apply_update([change("link", make_item("NW3", now, categories=("b",), sources=("s2",)), "r2")], None)

    head = [item.article_id for item in storage.list_items("a", limit=10)]
    assert head == ["NW1", "NW3", "NW4", "NW2"]
    assert head == [item.article_id for item in storage.list_items(None, limit=10)]
    assert [item.article_id for item in storage.list_items("b", limit=10)] == ["NW3", "NW2"]
    assert [item.article_id for item in storage.list_items("a", limit=2)] == ["NW1", "NW3"]


def test_category_head_is_read_in_index_order_without_sorting_the_category(tmp_path: Path, now: datetime) -> None:
    """SQLite's plan for a category's newest items: the (category, listed_at) index, no sort of every member."""
    from sqlalchemy import event

    from aggregator.storage.items import select_items

    store = open_storage(str(tmp_path / "plan.db"))
    try:
        store.apply_update([change("insert", make_item(f"NW{n}", now)) for n in range(3)], None)
        executed: list[tuple[str, object]] = []
        with store._engine.connect() as connection:  # type: ignore[attr-defined]
            event.listen(connection, "before_cursor_execute",
                         lambda _c, _cursor, statement, parameters, *_: executed.append((statement, parameters)))
            select_items(connection, "nantongribao", 2)
            head, parameters = next((statement, parameters) for statement, parameters in executed
                                    if "ORDER BY item_categories.listed_at" in statement)
            plan = " | ".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + head, parameters))
    finally:
        store.close()
    assert "ix_item_categories_newest_first" in plan
    assert "TEMP B-TREE" not in plan


def test_archive_order_stays_stable_when_categories_are_added_later(storage: Storage, now: datetime) -> None:
    storage.apply_update(
        [change("insert", make_item(f"NW{n}", now, categories=("a",))) for n in (1, 2, 3)]
        + [change("insert", make_item("NW4", now, categories=("b",)))],
        None,
    )
    before = [item.article_id for item in storage.list_items_in_order("b", start=0, limit=10)]
    # NW1 joins b later, with a far newer published date: it goes to the end of b, not before NW4
    joined = make_item("NW1", now, categories=("b",), published=now + timedelta(days=30))
    storage.apply_update([change("link", joined, source="other")], None)
    storage.apply_update([change("insert", make_item("NW5", now, categories=("a", "b")))], None)

    assert before == ["NW4"]
    assert [item.article_id for item in storage.list_items_in_order("b", start=0, limit=10)] == [
        "NW4",
        "NW1",
        "NW5",
    ]
    assert [item.article_id for item in storage.list_items_in_order("a", start=0, limit=10)] == [
        "NW1",
        "NW2",
        "NW3",
        "NW5",
    ]
    all_order = [item.article_id for item in storage.list_items_in_order(None, start=0, limit=10)]
    assert all_order == ["NW1", "NW2", "NW3", "NW4", "NW5"]


def test_list_items_in_order_pages_from_a_zero_based_start(storage: Storage, now: datetime) -> None:
    storage.apply_update(
        [
            change("insert", make_item(f"NW{n:02d}", now, categories=("a",) if n % 2 else ("b",)))
            for n in range(10)
        ],
        None,
    )

    assert [i.article_id for i in storage.list_items_in_order(None, start=3, limit=4)] == [
        "NW03",
        "NW04",
        "NW05",
        "NW06",
    ]
    assert [i.article_id for i in storage.list_items_in_order("a", start=0, limit=2)] == ["NW01", "NW03"]
    assert [i.article_id for i in storage.list_items_in_order("a", start=2, limit=10)] == [
        "NW05",
        "NW07",
        "NW09",
    ]
    assert storage.list_items_in_order("a", start=5, limit=10) == []


def test_counts_category_stats_and_items_per_source(storage: Storage, now: datetime) -> None:
    later = now + timedelta(hours=3)
    storage.apply_update(
        [
            change("insert", make_item("NW1", now, categories=("a",), sources=("s1",))),
            change("insert", make_item("NW2", later, categories=("a", "b"), sources=("s1",))),
        ],
        None,
    )
    storage.apply_update([change("link", make_item("NW1", now, sources=("s2",)), "r2")], None)

    assert (storage.count_items(), storage.count_items("a"), storage.count_items("b")) == (2, 2, 1)
    assert storage.count_items("missing") == 0
    assert storage.category_stats() == {
        "a": CategoryStats("a", 2, later),
        "b": CategoryStats("b", 1, later),
        "nantongribao": CategoryStats("nantongribao", 1, now),
    }
    assert storage.items_per_source() == {"s1": 2, "s2": 1}


def counted_by_scanning(storage: Storage) -> dict[str, CategoryStats]:
    """The category statistics as a scan of every membership computes them: the oracle of the kept counts."""
    with storage._engine.connect() as connection:  # type: ignore[attr-defined]
        rows = connection.execute(text(
            "SELECT c.category, count(*), max(i.updated) FROM item_categories c"
            " JOIN items i ON i.article_id = c.article_id GROUP BY c.category"))
        return {category: CategoryStats(category, count, parse_stored_time(updated))
                for category, count, updated in rows}


def parse_stored_time(value: datetime | str) -> datetime:
    """A raw `updated` as the driver returns it (SQLite: text) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def test_category_stats_are_kept_through_inserts_updates_links_and_purges(storage: Storage, now: datetime) -> None:
    """Kept per write, never counted by a scan of the memberships (which grew with the store)."""
    day = timedelta(days=1)
    storage.apply_update([
        change("insert", make_item(f"NW{n}", now - n * day, categories=("a", "b") if n % 2 else ("a",),
                                   published=now - n * day))
        for n in range(1, 7)
    ], None)
    assert storage.category_stats() == counted_by_scanning(storage)
    assert storage.category_stats()["a"] == CategoryStats("a", 6, now - day)

    storage.apply_update([change("update", make_item("NW4", now + day, categories=("a",), content_hash="c2"))], None)
    storage.apply_update([change("link", make_item("NW6", now, categories=("c",), sources=("s2",)), "r2")], None)
    assert storage.category_stats() == counted_by_scanning(storage)
    assert storage.category_stats()["a"].last_updated == now + day
    assert storage.category_stats()["c"] == CategoryStats("c", 1, now - 6 * day)  # NW6's stored date

    purged = storage.purge_items_before(now - 4 * day + timedelta(hours=1))
    assert set(purged.article_ids) == {"NW4", "NW5", "NW6"}
    assert storage.category_stats() == counted_by_scanning(storage)
    assert "c" not in storage.category_stats()
    assert storage.category_stats()["a"] == CategoryStats("a", 3, now - day)


def test_source_state_round_trips_every_field_as_aware_utc(storage: Storage, now: datetime) -> None:
    shanghai = timezone(timedelta(hours=8))
    error_at = datetime(2026, 11, 24, 13, 0, tzinfo=shanghai)
    state = SourceState(
        name="eastmoney-nantong",
        etag='W/"abc"',
        last_modified="Tue, 24 Nov 2026 05:00:00 GMT",
        next_poll_at=datetime(2026, 11, 24, 14, 15, 30, 123456, tzinfo=shanghai),
        failures=3,
        last_error=ErrorInfo("FetchError", "fetch: HTTP 503", "fetch", error_at, "Traceback …\n"),
        last_success_at=now - timedelta(days=1),
        last_polled_at=now,
        last_status=503,
        moved_to="https://example.org/new.xml",
        moved_count=2,
        retired_url="https://example.org/gone.xml",
        config_url="https://example.org/feed.xml",
    )
    storage.save_source_state(state)

    loaded = storage.get_source_states()["eastmoney-nantong"]
    assert loaded == state
    assert loaded.next_poll_at is not None and loaded.next_poll_at.tzinfo == UTC
    assert loaded.next_poll_at == datetime(2026, 11, 24, 6, 15, 30, 123456, tzinfo=UTC)
    assert loaded.last_error is not None and loaded.last_error.at.tzinfo == UTC


def test_saving_a_source_state_replaces_the_previous_one(storage: Storage, now: datetime) -> None:
    storage.save_source_state(
        SourceState("s1", etag="e1", failures=2, last_error=ErrorInfo("E", "m", "fetch", now))
    )
    storage.save_source_state(SourceState("s2"))
    storage.apply_update([], SourceState("s1", etag="e2"))

    assert storage.get_source_states() == {"s1": SourceState("s1", etag="e2"), "s2": SourceState("s2")}


def test_apply_update_failing_midway_leaves_nothing_written(storage: Storage, now: datetime) -> None:
    storage.save_source_state(SourceState("s1", etag="before"))
    changes = [change("insert", make_item(f"NW{n}", now)) for n in range(5)]
    # the items are written first; the state after them holds a naive datetime, a bug that aborts the poll
    broken_state = SourceState("s1", etag="after", next_poll_at=datetime(2026, 11, 24, 6, 0))

    with pytest.raises(StatementError, match="naive datetime"):
        storage.apply_update(changes, broken_state)

    assert storage.count_items() == 0
    assert storage.get_stored_items([f"NW{n}" for n in range(5)]) == {}
    assert storage.items_per_source() == {}
    assert storage.get_source_states() == {"s1": SourceState("s1", etag="before")}


def test_get_stored_items_reads_more_ids_than_one_batch_holds(storage: Storage, now: datetime) -> None:
    ids = [f"NW{n:05d}" for n in range(1200)]
    storage.apply_update([change("insert", make_item(article_id, now)) for article_id in ids], None)

    stored = storage.get_stored_items([*ids, "NW-missing"])
    assert sorted(stored) == ids
    assert all(s.raw_hashes == {"eastmoney-nantong": "r1"} for s in stored.values())
    assert [i.article_id for i in storage.list_items_in_order(None, start=1195, limit=10)] == ids[1195:]


def test_concurrent_writers_keep_archive_positions_dense(store_url: str, now: datetime) -> None:
    """Even two handles writing at once without the writer lock never share or skip a position."""
    handles = [open_storage(store_url) for _ in range(2)]
    failures: list[BaseException] = []

    def write(handle: Storage, prefix: str) -> None:
        try:
            for batch in range(10):
                ids = [f"{prefix}{batch:02d}{n:02d}" for n in range(20)]
                handle.apply_update(
                    [change("insert", make_item(i, now, categories=("a",))) for i in ids], None
                )
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which fails the test
            failures.append(e)

    threads = [
        threading.Thread(target=write, args=(h, p)) for h, p in zip(handles, ("NWA", "NWB"), strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        in_order = handles[0].list_items_in_order("a", start=0, limit=1000)
        assert len(in_order) == handles[0].count_items("a") == 400
        assert len({item.article_id for item in in_order}) == 400
        assert handles[0].list_items_in_order(None, start=399, limit=10) == in_order[399:]
    finally:
        for handle in handles:
            handle.close()


def test_store_keeps_its_content_across_reopening(store_url: str, now: datetime) -> None:
    first = open_storage(store_url)
    first.apply_update([change("insert", make_item("NW1", now))], SourceState("s1", failures=1))
    first.close()
    second = open_storage(store_url)
    try:
        assert second.get_item("NW1") == make_item("NW1", now)
        assert second.get_source_states() == {"s1": SourceState("s1", failures=1)}
    finally:
        second.close()


def test_sqlite_file_path_and_sqlite_url_open_the_same_store(tmp_path: Path, now: datetime) -> None:
    path = tmp_path / "deep" / "er" / "aggregator.db"
    by_path = open_storage(str(path))
    by_path.apply_update([change("insert", make_item("NW1", now))], None)
    by_path.close()
    by_url = open_storage(f"sqlite:///{path}")
    try:
        assert by_url.count_items() == 1
    finally:
        by_url.close()


def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "aggregator.db"
    open_storage(str(path)).close()

    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_unwritable_sqlite_path_raises_storage_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("a file where the store's folder should be")

    with pytest.raises(StorageError, match=r"^store: could not create the folder of .*file\.txt"):
        open_storage(str(not_a_folder / "aggregator.db"))


def test_sqlite_path_that_is_a_folder_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"^store: could not open .*: OperationalError: unable to open"):
        open_storage(str(tmp_path))


def test_unreachable_postgresql_raises_storage_error_without_the_password() -> None:
    url = "postgresql://aggregator:secret@127.0.0.1:1/test?connect_timeout=3"

    with pytest.raises(
        StorageError, match=r"^store: could not open postgresql\+psycopg://aggregator:\*\*\*@"
    ) as e:
        open_storage(url)
    assert "secret" not in str(e.value)


@pytest.mark.parametrize(
    "url",
    ["mysql://user@host/db", "sqlite://", "sqlite:///:memory:", "postgresql+asyncpg://u@h/db"],
    ids=["other-database", "sqlite-memory-empty", "sqlite-memory", "other-postgresql-driver"],
)
def test_unsupported_store_url_is_refused(url: str) -> None:
    with pytest.raises(StorageError, match="^store: "):
        open_storage(url)


def test_postgresql_store_lives_in_the_schema_named_by_its_url(
    pg_url: str, request: pytest.FixtureRequest
) -> None:
    import psycopg

    with fresh_store_url("postgresql", Path(), request) as url:
        schema = url.rpartition("%3D")[2]
        open_storage(url).close()
        with psycopg.connect(pg_url, connect_timeout=5) as connection:
            tables = connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s ORDER BY table_name",
                (schema,),
            ).fetchall()
    assert [name for (name,) in tables] == [
        "category_stats",
        "category_titles",
        "cluster_config",
        "cluster_leases",
        "host_pace",
        "host_slots",
        "item_categories",
        "item_signatures",
        "item_sources",
        "items",
        "publish_claims",
        "publish_owed",
        "published_documents",
        "schema_version",
        "search_documents",
        "signature_bands",
        "sources",
        "stories",
        "story_categories",
        "workers",
    ]


def test_postgresql_session_time_zone_does_not_leak_into_datetimes(
    pg_url: str, request: pytest.FixtureRequest, now: datetime
) -> None:
    with fresh_store_url("postgresql", Path(), request) as url:
        store = open_storage(f"{url}%20-cTimeZone%3DAsia%2FShanghai")
        try:
            store.apply_update([change("insert", make_item("NW1", now))], SourceState("s1", next_poll_at=now))
            item = store.get_item("NW1")
            state = store.get_source_states()["s1"]
        finally:
            store.close()

    assert item is not None and item.updated == now and item.updated.tzinfo == UTC
    assert state.next_poll_at == now and state.next_poll_at.tzinfo == UTC


def test_importing_storage_leaves_psycopg_unimported() -> None:
    code = "import sys, aggregator.storage; print('psycopg' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_category_titles_learnt_from_sources_keep_their_first_title(storage: Storage) -> None:
    assert storage.category_titles() == {}
    storage.add_category_titles({"nantongribao": "南通日报新闻"})
    storage.add_category_titles({"nantongribao": "别的标题", "quanzhouwanbao": "泉州晚报新闻"})
    assert storage.category_titles() == {"nantongribao": "南通日报新闻", "quanzhouwanbao": "泉州晚报新闻"}


def test_a_poll_writes_the_titles_of_its_new_categories_with_its_items_and_state(
    storage: Storage, now: datetime
) -> None:
    item = make_item("NW202201242257831752", now, categories=("jinrongjie",))
    storage.apply_update([change("insert", item)], SourceState("em", last_status=200), {"jinrongjie": "金融界新闻"})
    storage.apply_update([], SourceState("em", last_status=304), {"jinrongjie": "别的标题"})
    assert storage.category_titles() == {"jinrongjie": "金融界新闻"}
    assert storage.get_item(item.article_id) == item
    state = storage.get_source_state("em")
    assert state is not None and state.last_status == 304


def test_one_source_state_is_read_by_name(storage: Storage, now: datetime) -> None:
    assert storage.get_source_state("a") is None
    storage.save_source_state(SourceState(name="a", etag='"e"', failures=2, next_poll_at=now))
    storage.save_source_state(SourceState(name="b"))
    assert storage.get_source_state("a") == storage.get_source_states()["a"]
    state = storage.get_source_state("a")
    assert state is not None and (state.etag, state.failures, state.next_poll_at) == ('"e"', 2, now)


# --- fault isolation (issue 10) -------------------------------------------------------------------------


def test_a_change_the_database_refuses_is_left_out_and_the_rest_of_the_poll_is_stored(
    storage: Storage, now: datetime
) -> None:
    good = make_item("NW1", now)
    naive = dataclasses.replace(make_item("NW2", now, categories=("yangzhou",)), updated=now.replace(tzinfo=None))
    state = SourceState(name="eastmoney-nantong", etag='"v2"', last_polled_at=now)
    refused = storage.apply_update([change("insert", good), change("insert", naive)], state).refused
    assert [r.change.item.article_id for r in refused] == ["NW2"]
    assert refused[0].reason.startswith("store: ") and "naive datetime" in refused[0].reason
    assert storage.get_item("NW1") is not None and storage.get_item("NW2") is None
    saved = storage.get_source_state("eastmoney-nantong")
    assert saved is not None and saved.etag == '"v2"'
    assert set(storage.owed_categories()) == {"nantongribao"}


def test_categories_owed_a_publish_are_cleared_only_up_to_when_the_publish_began(
    storage: Storage, now: datetime
) -> None:
    storage.apply_update([change("insert", make_item("NW1", now, categories=("a", "b")))], None)
    owed = storage.owed_categories()
    assert set(owed) == {"a", "b"}
    storage.clear_owed(["a", "b"], min(owed.values()) - timedelta(seconds=1))  # began before the change
    assert set(storage.owed_categories()) == {"a", "b"}
    storage.clear_owed(["a"], datetime.now(UTC))
    assert set(storage.owed_categories()) == {"b"}
