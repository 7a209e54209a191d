"""Atomic, change-only writes and deterministic precompression."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from aggregator.publish.files import gzip_bytes, write_if_changed, write_with_gzip


def test_a_new_file_is_written_readable_by_all(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "feed.atom"
    assert write_if_changed(path, b"<feed/>") is True
    assert path.read_bytes() == b"<feed/>"
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_same_bytes_leave_the_file_and_its_mtime_alone(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    write_if_changed(path, b"<feed/>")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_if_changed(path, b"<feed/>") is False
    assert path.stat().st_mtime_ns == 1_000_000_000


def test_different_bytes_replace_the_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    write_if_changed(path, b"<feed>1</feed>")
    assert write_if_changed(path, b"<feed>2</feed>") is True
    assert path.read_bytes() == b"<feed>2</feed>"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.atom"]


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "feed.atom"
    write_if_changed(path, b"old")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_if_changed(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.atom"]


def test_gzip_output_is_deterministic_and_carries_no_timestamp() -> None:
    data = "南通日报新闻 ".encode() * 500
    first, second = gzip_bytes(data), gzip_bytes(data)
    assert first == second
    assert first[4:8] == b"\x00\x00\x00\x00"  # RFC 1952 MTIME field
    assert gzip.decompress(first) == data


def test_a_feed_gets_a_gzip_twin_at_least_as_new_as_itself(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    assert write_with_gzip(path, b"<feed>1</feed>") is True
    twin = tmp_path / "feed.atom.gz"
    assert gzip.decompress(twin.read_bytes()) == b"<feed>1</feed>"
    assert twin.stat().st_mtime_ns >= path.stat().st_mtime_ns
    assert write_with_gzip(path, b"<feed>1</feed>") is False


def test_a_twin_left_stale_by_an_interrupted_publish_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    write_with_gzip(path, b"<feed>1</feed>")
    write_if_changed(path, b"<feed>2</feed>")  # the process died before writing the .gz
    assert write_with_gzip(path, b"<feed>2</feed>") is True
    assert gzip.decompress((tmp_path / "feed.atom.gz").read_bytes()) == b"<feed>2</feed>"
