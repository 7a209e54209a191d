"""A SQLite store's source states through sqlite3 alone: what a `poll` whose sources answer 304 reads and writes.

Cron runs `poll` every few minutes, and mostly every source answers 304. Such a pass needs the states
(read in one statement), the categories owed a publish, the writer lock, and to save the states (one
statement); importing SQLAlchemy and building the schema's tables cost more than all of that together
(~0.15 s of CPU). So `poll` on a SQLite file opens this first, and the full SqlStorage (sql.py) is
opened at the first call that needs more: a source with a new document, a failure, a publish.

The statements write exactly what sql.py writes for these columns: the row mapping is sources.py's, a
datetime is UTC text without an offset (UtcDateTime on SQLite, SQLAlchemy's `YYYY-MM-DD HH:MM:SS.ffffff`)
and a JSON column is `json.dumps` text (None as 'null'). tests/test_storage_lite.py holds both paths
to the same rows. A store at another schema version, a `sqlite:///` URL or PostgreSQL go to sql.py.
No business logic.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from aggregator.models import SourceState
from aggregator.storage.errors import wrap_storage_errors
from aggregator.storage.lock import hold_file_lock
from aggregator.storage.sources import STATE_COLUMNS, state_from_row, state_row
from aggregator.storage.pragmas import SQLITE_BUSY_TIMEOUT_SECONDS, set_up_connection

if TYPE_CHECKING:
    from aggregator.storage.sql import Storage

#: the schema version whose `sources` and `publish_owed` tables this module reads and writes; a store at
#: any other version is opened by sql.py (which migrates it). Equal to len(schema.MIGRATIONS) (a test says so)
SCHEMA_VERSION = 11

_JSON_COLUMNS = frozenset({"last_error", "skipped_items"})
_DATETIME_COLUMNS = frozenset({"next_poll_at", "last_success_at", "last_polled_at"})
_COLUMNS = ("name", *STATE_COLUMNS)
_SELECT_STATES = f"SELECT {', '.join(_COLUMNS)} FROM sources"
_UPSERT_STATES = (
    f"INSERT INTO sources ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    f"ON CONFLICT (name) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in STATE_COLUMNS)}"
)


def open_lite_storage(store: str, open_full: Callable[[], Storage]) -> Storage | None:
    """The store at `store` (a settings.store value) with its states served by sqlite3, the rest by
    `open_full()` at first need; None unless `store` is the path of an existing SQLite file at
    SCHEMA_VERSION (the caller then opens it the usual way, which creates or migrates it)."""
    if "://" in store or not Path(store).is_file():
        return None
    path = Path(store)
    try:
        # mode=rw: never create a file here (creating and migrating is sql.py's)
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True,
                                     timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        version = connection.execute("SELECT version FROM schema_version").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            connection.close()
            return None
        set_up_connection(connection.execute)  # as sql.py sets up every connection
    except sqlite3.Error:  # no schema_version table, not a database, locked: sql.py says what is wrong
        connection.close()
        return None
    # the methods a Storage has and LiteStorage does not are served by the full store (__getattr__)
    return cast("Storage", LiteStorage(path, connection, open_full))


class LiteStorage:
    """States, publish debts and the writer lock through sqlite3; everything else through `open_full()`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, open_full: Callable[[], Storage]) -> None:
        self.url = str(path)
        self._path = path
        self._connection = connection
        self._open_full = open_full
        self._full: Storage | None = None

    def __getattr__(self, name: str) -> Any:
        """Any other Storage method: the full store, opened now if it is not yet."""
        if name.startswith("_"):
            raise AttributeError(name)
        if self._full is None:
            self._full = self._open_full()
        return getattr(self._full, name)

    def close(self) -> None:
        self._connection.close()
        if self._full is not None:
            self._full.close()

    def writer_lock(self, wait_seconds: float) -> contextlib.AbstractContextManager[None]:
        return hold_file_lock(self._path.with_name(self._path.name + ".lock"), self.url, wait_seconds)

    def get_source_states(self) -> dict[str, SourceState]:
        with wrap_storage_errors("could not read source states"):
            rows = self._connection.execute(_SELECT_STATES + " ORDER BY name").fetchall()
        return {row[0]: state_from_row(_from_sqlite(row)) for row in rows}

    def get_source_state(self, name: str) -> SourceState | None:
        with wrap_storage_errors(f"could not read the state of source {name}"):
            row = self._connection.execute(_SELECT_STATES + " WHERE name = ?", (name,)).fetchone()
        return None if row is None else state_from_row(_from_sqlite(row))

    def save_source_state(self, state: SourceState) -> None:
        self.save_source_states([state])

    def save_source_states(self, states: Sequence[SourceState]) -> None:
        """One transaction, one statement for every row (BEGIN IMMEDIATE, as sql.py's writers)."""
        if not states:
            return
        rows = [_to_sqlite(state_row(state)) for state in states]
        with wrap_storage_errors(f"could not save the state of {len(states)} sources"):
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(_UPSERT_STATES, rows)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def owed_categories(self) -> dict[str, datetime]:
        with wrap_storage_errors("could not read the categories owed a publish"):
            rows = self._connection.execute("SELECT category, owed_since FROM publish_owed").fetchall()
        return {category: _datetime_from_sqlite(owed_since) for category, owed_since in rows}


def _to_sqlite(row: dict[str, Any]) -> tuple[Any, ...]:
    values = []
    for column in _COLUMNS:
        value = row[column]
        if column in _JSON_COLUMNS:
            value = json.dumps(value)
        elif column in _DATETIME_COLUMNS and value is not None:
            value = _datetime_to_sqlite(value)
        values.append(value)
    return tuple(values)


def _from_sqlite(row: Sequence[Any]) -> dict[str, Any]:
    values = dict(zip(_COLUMNS, row, strict=True))
    for column in _JSON_COLUMNS:
        if values[column] is not None:
            values[column] = json.loads(values[column])
    for column in _DATETIME_COLUMNS:
        if values[column] is not None:
            values[column] = _datetime_from_sqlite(values[column])
    return values


def _datetime_to_sqlite(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"store: naive datetime {value!r}; every datetime must be aware")
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"


def _datetime_from_sqlite(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)
