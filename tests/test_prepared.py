"""Prepared responses: a file version is read once, and a replaced file is a new version."""

from __future__ import annotations

import os
import time
from pathlib import Path

from aggregator.serve.prepared import VersionCache

WINDOW_NS = 200_000_000


def replace(path: Path, body: bytes) -> None:
    """As publish does: a temp file renamed over the old one."""
    temp = path.with_suffix(".tmp")
    temp.write_bytes(body)
    os.replace(temp, path)


def test_a_replaced_file_is_a_new_version_at_once_without_a_recheck_window(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    replace(path, b"<feed>1</feed>")
    files = VersionCache()
    first = files.read(str(path))
    replace(path, b"<feed>2</feed>")
    second = files.read(str(path))
    assert first is not None and second is not None
    assert (first.body, second.body) == (b"<feed>1</feed>", b"<feed>2</feed>")
    assert first.etag != second.etag


def test_within_the_recheck_window_the_version_read_last_is_served_whole(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    replace(path, b"<feed>1</feed>")
    files = VersionCache(recheck_after_ns=WINDOW_NS)
    first = files.read(str(path))
    replace(path, b"<feed>2</feed>")
    assert files.read(str(path)) is first
    time.sleep(WINDOW_NS / 1e9)
    later = files.read(str(path))
    assert later is not None and later.body == b"<feed>2</feed>"


def test_a_file_removed_within_the_window_is_seen_gone_after_it(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    replace(path, b"<feed>1</feed>")
    files = VersionCache(recheck_after_ns=WINDOW_NS)
    assert files.read(str(path)) is not None
    path.unlink()
    time.sleep(WINDOW_NS / 1e9)
    assert files.read(str(path)) is None


def test_paths_that_name_no_file_are_not_remembered(tmp_path: Path) -> None:
    files = VersionCache(recheck_after_ns=WINDOW_NS)
    for n in range(100):
        assert files.read(str(tmp_path / f"missing-{n}.atom")) is None
    assert files._checked_ns == {}
