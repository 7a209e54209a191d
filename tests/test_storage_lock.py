"""Tests for aggregator.storage.lock: one writing process per store, freed when the holder dies."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.errors import StoreLockedError
from aggregator.models import SourceState
from aggregator.storage import Storage, open_storage
from tests.conftest import REPO_ROOT, fresh_store_url
from tests.test_storage import change, make_item

#: a separate process that takes the writer lock, says so, and holds it until killed
HOLDER_SCRIPT = """
import sys, time
from aggregator.storage import open_storage
storage = open_storage(sys.argv[1])
with storage.writer_lock(wait_seconds=10):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def other(store_url: str) -> Iterator[Storage]:
    """A second handle on the same store, as another process would have (own connections, own lock file)."""
    store = open_storage(store_url)
    try:
        yield store
    finally:
        store.close()


def store_label(store_url: str) -> str:
    """How lock messages name the store: the file, or the psycopg URL."""
    if store_url.startswith("postgresql://"):
        return store_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return store_url


def test_second_writer_waits_then_is_told_who_holds_the_lock(
    storage: Storage, other: Storage, store_url: str
) -> None:
    with storage.writer_lock(wait_seconds=1):
        started = time.monotonic()
        with pytest.raises(StoreLockedError) as raised, other.writer_lock(wait_seconds=0.3):
            pytest.fail("two writers held the lock at once")
        waited = time.monotonic() - started

    assert str(raised.value) == (
        f"store: another aggregator process (pid {os.getpid()}) is writing to {store_label(store_url)};"
        " try again later"
    )
    assert 0.3 <= waited < 5


def test_writer_lock_is_free_again_once_the_holder_leaves_its_block(storage: Storage, other: Storage) -> None:
    with storage.writer_lock(wait_seconds=1):
        pass
    with other.writer_lock(wait_seconds=0):
        pass
    with storage.writer_lock(wait_seconds=0):
        pass


def test_writer_lock_is_released_when_the_block_raises(storage: Storage, other: Storage) -> None:
    with pytest.raises(ZeroDivisionError), storage.writer_lock(wait_seconds=1):
        1 / 0  # noqa: B018 - the block fails on purpose

    with other.writer_lock(wait_seconds=0):
        pass


def test_waiting_writer_gets_the_lock_when_the_holder_releases_it_in_time(
    storage: Storage, other: Storage
) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with storage.writer_lock(wait_seconds=1):
            holding.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        with other.writer_lock(wait_seconds=10):
            waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(timeout=10)

    assert 0.2 <= waited < 5


def test_holder_may_write_while_it_holds_the_lock(storage: Storage, now: datetime) -> None:
    with storage.writer_lock(wait_seconds=1):
        storage.apply_update([change("insert", make_item("NW1", now))], SourceState("s1"))

    assert storage.count_items() == 1


def test_lock_of_a_killed_process_is_released(storage: Storage, store_url: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, store_url], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            ready, _, _ = select.select([holder.stdout], [], [], 20)
            assert ready and holder.stdout.readline().strip() == "locked"

            locked = pytest.raises(StoreLockedError, match=rf"\(pid {holder.pid}\) is writing to")
            with locked, storage.writer_lock(wait_seconds=0.2):
                pytest.fail("took a lock another process holds")

            holder.kill()  # SIGKILL: no finally, no atexit in the holder
            holder.wait(timeout=10)
            with storage.writer_lock(wait_seconds=5):
                pass
        finally:
            holder.kill()


def test_locks_of_two_stores_are_independent(
    storage: Storage, tmp_path: Path, request: pytest.FixtureRequest, store_url: str
) -> None:
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    with fresh_store_url(backend, tmp_path / "second", request) as second_url:
        second = open_storage(second_url)
        try:
            with storage.writer_lock(wait_seconds=0), second.writer_lock(wait_seconds=0):
                pass
        finally:
            second.close()


def test_sqlite_lock_file_sits_beside_the_database_and_names_the_holder(tmp_path: Path) -> None:
    database = tmp_path / "aggregator.db"
    storage = open_storage(str(database))
    try:
        with storage.writer_lock(wait_seconds=0):
            assert (tmp_path / "aggregator.db.lock").read_text() == f"{os.getpid()}\n"
        assert (tmp_path / "aggregator.db.lock").read_text() == ""
    finally:
        storage.close()
