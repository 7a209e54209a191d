"""storage/lite.py: a SQLite store's source states through sqlite3 alone, the same rows as sql.py's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.models import ErrorInfo, SourceState
from aggregator.storage import Storage, open_storage
from aggregator.storage.lite import SCHEMA_VERSION, open_lite_storage
from aggregator.storage.schema import MIGRATIONS

SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture
def store_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "aggregator.db"
    open_storage(str(path)).close()  # created and migrated by sql.py, as `poll` leaves it
    yield path


def _lite(path: Path) -> Storage:
    lite = open_lite_storage(str(path), lambda: open_storage(str(path)))
    assert lite is not None
    return lite


def _state(name: str, now: datetime) -> SourceState:
    return SourceState(
        name=name, etag='W/"abc"', last_modified="Tue, 24 Nov 2026 05:00:00 GMT",
        next_poll_at=datetime(2026, 11, 24, 14, 15, 30, 123456, tzinfo=SHANGHAI), failures=3,
        last_error=ErrorInfo("FetchError", "fetch: HTTP 503", "fetch", datetime(2026, 11, 24, 13, 0, tzinfo=SHANGHAI),
                             "Traceback …\n"),
        last_success_at=now - timedelta(days=1), last_polled_at=now, last_status=503,
        moved_to="https://example.org/new.xml", moved_count=2, retired_url="https://example.org/gone.xml",
        config_url="https://example.org/feed.xml", skipped_items={"no_article_id": 2},
    )


def test_the_schema_version_it_knows_is_the_latest(store_path: Path) -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS)


def test_states_saved_by_either_path_read_back_equal_and_as_the_same_rows(store_path: Path, now: datetime) -> None:
    full, lite = open_storage(str(store_path)), _lite(store_path)
    try:
        full.save_source_states([_state("by-sql", now), SourceState("bare-sql")])
        lite.save_source_states([_state("by-lite", now), SourceState("bare-lite")])
        for reader in (full, lite):
            states = reader.get_source_states()
            assert states["by-lite"] == _state("by-lite", now) == states["by-sql"].replace(name="by-lite")
            assert states["bare-lite"] == SourceState("bare-lite")
            assert states["by-lite"].next_poll_at == datetime(2026, 11, 24, 6, 15, 30, 123456, tzinfo=UTC)
        assert lite.get_source_state("by-sql") == full.get_source_state("by-sql")
        assert lite.get_source_state("nowhere") is None
    finally:
        full.close()
        lite.close()
    with sqlite3.connect(store_path) as connection:
        rows = {row[0]: row[1:] for row in connection.execute("SELECT * FROM sources")}
    assert rows["by-lite"] == rows["by-sql"]
    assert rows["bare-lite"] == rows["bare-sql"]


def test_a_later_save_replaces_every_field(store_path: Path, now: datetime) -> None:
    lite = _lite(store_path)
    try:
        lite.save_source_state(_state("s", now))
        lite.save_source_state(SourceState("s", etag="e2"))
        assert lite.get_source_states() == {"s": SourceState("s", etag="e2")}
    finally:
        lite.close()


def test_anything_beyond_states_opens_the_full_store(store_path: Path, now: datetime) -> None:
    lite = _lite(store_path)
    try:
        assert lite.owed_categories() == {}
        assert lite.count_items() == 0
        assert lite.items_per_source() == {}
    finally:
        lite.close()


@pytest.mark.parametrize("store", ["missing.db", "sqlite:///{dir}/aggregator.db", "not-a-database.db"],
                         ids=["missing-file", "sqlite-url", "not-a-database"])
def test_declines_what_sql_py_must_open_create_or_report(tmp_path: Path, store: str) -> None:
    (tmp_path / "not-a-database.db").write_bytes(b"hello")
    (tmp_path / "aggregator.db").touch()
    url = store.format(dir=tmp_path) if "://" in store else str(tmp_path / store)
    assert open_lite_storage(url, lambda: pytest.fail("not opened")) is None
    assert not (tmp_path / "missing.db").exists()


def test_declines_a_store_at_another_schema_version(store_path: Path) -> None:
    with sqlite3.connect(store_path) as connection:
        connection.execute("UPDATE schema_version SET version = version - 1")
    assert open_lite_storage(str(store_path), lambda: pytest.fail("not opened")) is None


def test_a_naive_datetime_is_refused_as_a_bug(store_path: Path) -> None:
    lite = _lite(store_path)
    try:
        with pytest.raises(ValueError, match="naive"):
            lite.save_source_state(SourceState("s", next_poll_at=datetime(2026, 1, 1)))
        assert lite.get_source_states() == {}
    finally:
        lite.close()
