"""Write published files atomically, and only when their bytes change; precompress them once.

No business logic. A temp file in the same directory + `os.replace` (POSIX rename is atomic
within one filesystem) means `serve` and an nginx in front never see a half-written feed; an
unchanged file keeps its bytes and mtime, so HTTP validators stay valid for readers.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from pathlib import Path

from aggregator.publish.layout import gzip_file

#: feeds are public documents; mkstemp's 0600 would hide them from an nginx worker user
PUBLISHED_FILE_MODE = 0o644


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0, no file name), so an unchanged feed gives an unchanged .gz."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def has_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False


def write_if_changed(path: Path, data: bytes, *, durable: bool = True) -> bool:
    """Replace `path` with `data` atomically unless it holds exactly these bytes; True if written.

    `durable=False` skips the fsync before the rename, for files derived from the store that
    `aggregator build --pages` can recreate (the website's pages): the rename stays atomic, and
    the fsync was most of the cost of writing thousands of small pages.
    """
    if has_bytes(path, data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            if durable:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.chmod(tmp_name, PUBLISHED_FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return True


def write_with_gzip(path: Path, data: bytes, *, durable: bool = True) -> bool:
    """`path` and its `.gz` twin (for gzip_static); True if either was written.

    The plain file is written first, so a .gz at least as new as its plain file is its current
    twin; `serve` falls back to the plain file when a crash left an older .gz behind.
    """
    gzip_path = gzip_file(path)
    wrote_plain = write_if_changed(path, data, durable=durable)
    wrote_gzip = write_if_changed(gzip_path, gzip_bytes(data), durable=durable)
    if wrote_plain and not wrote_gzip:
        os.utime(gzip_path)  # already the right bytes: mark it as current for serve's freshness check
    return wrote_plain or wrote_gzip
