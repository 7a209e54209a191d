"""The writer lock: one aggregator process writes to a store at a time, and a dead holder frees it.

A cron `poll` and the daemon on the same store must never both write. Both locks used here die
with their holder, kill -9 included: an flock(2) belongs to the open file description, which the
kernel closes with the process; a PostgreSQL session advisory lock ends with its session
(https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.errors import StoreLockedError
from aggregator.storage.errors import wrap_storage_errors

if TYPE_CHECKING:  # SQLAlchemy is imported by the PostgreSQL lock only: a SQLite writer takes a file lock
    from sqlalchemy import Connection, Engine

#: how often a waiting process retries
_RETRY_SECONDS = 0.05

#: PostgreSQL application_name of the lock's session, so a waiter can name the holder's pid
_HOLDER_NAME = "aggregator writer pid {pid}"
_HOLDER_PID = re.compile(r"^aggregator writer pid (\d+)$")


@contextlib.contextmanager
def hold_file_lock(lock_path: Path, store: str, wait_seconds: float) -> Iterator[None]:
    """flock(LOCK_EX) on `lock_path`, retried until `wait_seconds` pass; the file names the holder's pid."""
    with wrap_storage_errors(f"could not open the writer lock file {lock_path}"):
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while not _try_flock(fd):
            if time.monotonic() >= deadline:
                raise StoreLockedError(_locked_message(_read_pid(fd), store))
            time.sleep(_RETRY_SECONDS)
        with wrap_storage_errors(f"could not write the writer lock file {lock_path}"):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            # the file stays: unlinking a lock file races with a process that has just opened it
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_advisory_lock(engine: Engine, store: str, wait_seconds: float) -> Iterator[None]:
    """pg_try_advisory_lock on a dedicated session, retried until `wait_seconds` pass."""
    from sqlalchemy import exc, text

    with wrap_storage_errors(f"could not take the writer lock of {store}"):
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        with wrap_storage_errors(f"could not take the writer lock of {store}"):
            key = advisory_key(connection, "writer")
            connection.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": _HOLDER_NAME.format(pid=os.getpid())},
            )
            deadline = time.monotonic() + wait_seconds
            while not connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
            ).scalar_one():
                if time.monotonic() >= deadline:
                    raise StoreLockedError(_locked_message(_advisory_holder_pid(connection, key), store))
                time.sleep(_RETRY_SECONDS)
        try:
            yield
        finally:
            # a failed unlock means the session is broken, and its locks died with it
            with contextlib.suppress(exc.DBAPIError):
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        # never hand a session with our application_name (or a lock, if unlock failed) back to the pool
        connection.invalidate()
        connection.close()


def advisory_key(connection: Connection, purpose: str) -> int:
    """A 64-bit advisory lock key for this store (database + schema) and purpose.

    Advisory locks are per database, and tests keep several stores in one database as schemas.
    """
    from sqlalchemy import text

    database, schema = connection.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.blake2b(f"aggregator:{purpose}:{database}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_pid(fd: int) -> int | None:
    content = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(content) if content.isdigit() else None


def _advisory_holder_pid(connection: Connection, key: int) -> int | None:
    from sqlalchemy import text

    # pg_locks shows a bigint key as classid = high 32 bits, objid = low 32 bits, objsubid = 1
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    query = text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid)"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    name = connection.execute(query, {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}).scalar()
    match = _HOLDER_PID.match(name or "")
    return int(match.group(1)) if match else None


def _locked_message(pid: int | None, store: str) -> str:
    holder = f"pid {pid}" if pid is not None else "pid unknown"
    return f"store: another aggregator process ({holder}) is writing to {store}; try again later"
