"""Tests for aggregator.storage.schema: ordered migrations applied once, atomically, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, inspect, text

from aggregator.errors import StorageError
from aggregator.storage import SqlStorage, connect_storage, open_storage
from aggregator.storage.schema import MIGRATIONS, Migration
from tests.test_storage import change, make_item


@pytest.fixture
def raw_store(store_url: str) -> Iterator[SqlStorage]:
    """The store with no migration applied yet."""
    store = connect_storage(store_url)
    try:
        yield store
    finally:
        store.close()


class CountingMigration:
    """A test migration that creates one table and counts how often it ran."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.runs = 0

    def __call__(self, connection: Connection) -> None:
        self.runs += 1
        Table(self.table, MetaData(), Column("id", Integer, primary_key=True)).create(connection)


def table_names(store: SqlStorage) -> set[str]:
    # the engine is private; the test looks under the API at what the migrations built
    with store._engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_new_store_is_created_at_the_current_version(store_url: str) -> None:
    store = open_storage(store_url)
    try:
        assert isinstance(store, SqlStorage)
        assert store.schema_version() == len(MIGRATIONS)
        search_tables = {"search_documents"} | (
            {"search_index", "search_index_config", "search_index_data", "search_index_docsize", "search_index_idx"}
            if "sqlite" in store_url or "://" not in store_url else set()
        )
        assert table_names(store) == {
            "schema_version", "sources", "items", "item_categories", "item_sources", "category_titles", *search_tables,
            "category_stats",
            "item_signatures", "signature_bands", "stories", "story_categories",
            "publish_owed", "publish_claims", "workers", "cluster_leases", "cluster_config", "host_pace",
            "host_slots", "published_documents",
        }
    finally:
        store.close()


def test_unmigrated_store_reports_version_0(raw_store: SqlStorage) -> None:
    assert raw_store.schema_version() == 0


def test_store_created_at_version_1_opens_at_the_current_version(
    raw_store: SqlStorage, store_url: str, now: datetime
) -> None:
    assert raw_store.migrate(MIGRATIONS[:1]) == 1

    reopened = open_storage(store_url)
    try:
        assert reopened.schema_version() == len(MIGRATIONS)  # type: ignore[attr-defined]
        reopened.apply_update([change("insert", make_item("NW1", now))], None)
        assert reopened.count_items() == 1
    finally:
        reopened.close()


def test_later_migration_is_applied_once_in_order_and_never_again(raw_store: SqlStorage) -> None:
    second = CountingMigration("added_in_v2")
    migrations: list[Migration] = [*MIGRATIONS, second]

    assert raw_store.migrate(MIGRATIONS) == len(MIGRATIONS)
    assert raw_store.migrate(migrations) == len(migrations)
    assert raw_store.migrate(migrations) == len(migrations)

    assert second.runs == 1
    assert raw_store.schema_version() == len(migrations)
    assert "added_in_v2" in table_names(raw_store)


def test_opening_a_store_at_the_current_version_runs_no_migration(raw_store: SqlStorage) -> None:
    first = CountingMigration("first")
    raw_store.migrate([first])
    before = table_names(raw_store)

    raw_store.migrate([first])

    assert first.runs == 1
    assert table_names(raw_store) == before


def test_failing_migration_leaves_the_store_at_its_previous_version(raw_store: SqlStorage) -> None:
    partial = CountingMigration("half_done")

    def fails_after_partial_work(connection: Connection) -> None:
        partial(connection)
        raise RuntimeError("migration bug")

    raw_store.migrate(MIGRATIONS)
    with pytest.raises(RuntimeError, match="migration bug"):
        raw_store.migrate([*MIGRATIONS, fails_after_partial_work])

    assert raw_store.schema_version() == len(MIGRATIONS)
    # DDL is transactional on both backends: the half-done table went with the rollback
    assert "half_done" not in table_names(raw_store)


def test_store_written_by_a_newer_program_is_refused(raw_store: SqlStorage, store_url: str) -> None:
    raw_store.migrate([*MIGRATIONS, CountingMigration("from_the_future")])

    current = len(MIGRATIONS)
    message = rf"^store: schema version {current + 1} is newer than this program knows \({current}\); upgrade"
    with pytest.raises(StorageError, match=message):
        open_storage(store_url)


def test_upsert_statement_is_built_once_per_backend_and_shape(raw_store: SqlStorage) -> None:
    """Building `excluded` copies every column: a poll of 304s saving 200 states must not rebuild it each time."""
    from aggregator.storage.schema import sources, upsert

    with raw_store._engine.connect() as connection:
        first = upsert(connection, sources, ["name"], ["etag", "failures"])
        assert upsert(connection, sources, ("name",), ("etag", "failures")) is first
        assert upsert(connection, sources, ["name"], ["etag"]) is not first


def test_sqlite_search_index_merges_sixteen_segments_at_a_time(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "store.db"))
    try:
        assert isinstance(store, SqlStorage)
        with store._engine.connect() as connection:
            automerge = connection.exec_driver_sql("SELECT v FROM search_index_config WHERE k = 'automerge'").scalar()
        assert automerge == 16
    finally:
        store.close()


def test_store_of_the_previous_version_gets_its_category_stats_counted(
    raw_store: SqlStorage, store_url: str, now: datetime
) -> None:
    """The version before category_stats is today's schema without the table: its items are counted once."""
    from tests.test_storage import counted_by_scanning

    raw_store.migrate(MIGRATIONS)
    raw_store.apply_update([change("insert", make_item(f"NW{n}", now)) for n in range(3)], None)
    with raw_store._engine.begin() as connection:
        connection.execute(text("DROP TABLE category_stats"))
        connection.execute(text(f"UPDATE schema_version SET version = {version_before('_add_category_stats')}"))

    reopened = open_storage(store_url)
    try:
        assert reopened.category_stats() == counted_by_scanning(reopened)
        assert reopened.category_stats()["nantongribao"].item_count == 3
    finally:
        reopened.close()


def test_store_of_the_version_before_listed_at_gets_its_memberships_dated(
    raw_store: SqlStorage, store_url: str, now: datetime
) -> None:
    """Memberships stored before item_categories.listed_at get their item's listing date, and the category
    head reads in the same order as before."""
    hour = timedelta(hours=1)
    raw_store.migrate(MIGRATIONS)
    raw_store.apply_update([
        change("insert", make_item("NW1", now, published=now - hour)),
        change("insert", make_item("NW2", now - 2 * hour)),
        change("insert", make_item("NW3", now, published=now + hour)),
    ], None)
    with raw_store._engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_item_categories_newest_first"))
        connection.execute(text("ALTER TABLE item_categories DROP COLUMN listed_at"))
        connection.execute(text(f"UPDATE schema_version SET version = {version_before('_list_memberships_by_date')}"))

    reopened = open_storage(store_url)
    try:
        assert [item.article_id for item in reopened.list_items("nantongribao", limit=10)] == ["NW3", "NW1", "NW2"]
        with reopened._engine.connect() as connection:  # type: ignore[attr-defined]
            missing = connection.execute(text("SELECT count(*) FROM item_categories WHERE listed_at IS NULL"))
            assert missing.scalar_one() == 0
    finally:
        reopened.close()


def version_before(migration_name: str) -> int:
    """The schema version a store had before the named migration ran."""
    return [migration.__name__ for migration in MIGRATIONS].index(migration_name)
