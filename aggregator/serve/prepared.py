"""Prepared responses for `serve`: each published file version read, hashed and turned into ready ASGI messages once.

A request for a published file then costs two `stat` calls (is this still the version we prepared?),
or none when the cache may trust a version checked within the last `recheck_after_ns`, and a dict look-up: the body, the strong ETag, Last-Modified, Content-Length and the whole header
lists of the 200 and 304 answers, plain and gzip, are built when a version is first seen, never per
request. Versions are keyed by (inode, mtime, size): publish replaces files atomically (a new
inode), so a changed file is always a new key, and each version is read from one open handle, so
a concurrent replace can never mix two versions. No business logic: app.py decides routes,
freshness and which variant a request gets.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

#: file contents kept in memory, least recently used dropped first
MAX_CACHE_BYTES = 64 * 1024 * 1024

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One version of one file as read once from disk, with its validators ready to send."""

    key: tuple[int, int, int]
    body: bytes
    etag: bytes
    mtime_ns: int
    last_modified: bytes
    content_length: bytes


@dataclass(slots=True)
class Variant:
    """One representation (plain or gzip) of a file version: the messages that answer for it."""

    etag: bytes
    start_200: Message
    start_304: Message
    body: Message
    #: the same header lists as HTTP/1.1 lines (`name: value\r\n` each), for fastlane.py
    head_200: bytes
    head_304: bytes
    empty_body: Message = field(default_factory=lambda: {"type": "http.response.body", "body": b""})


@dataclass(frozen=True, slots=True)
class Prepared:
    """The responses for one (plain version, gzip version, Cache-Control) of a published file."""

    plain: FileVersion
    plain_variant: Variant
    #: None when there is no .gz twin, or it is older than the plain file (an interrupted publish)
    gzip_variant: Variant | None


class VersionCache:
    """File versions by path (bounded by MAX_CACHE_BYTES), and prepared responses by version."""

    def __init__(self, recheck_after_ns: int = 0) -> None:
        """`recheck_after_ns` > 0: a file read within that many ns is taken as unchanged without a stat
        (`serve`'s 1 ms: a publish is seen at most that late; 0: every read stats)."""
        self._versions: OrderedDict[str, FileVersion] = OrderedDict()
        self._bytes = 0
        self._recheck_after_ns = recheck_after_ns
        #: time.monotonic_ns() of each cached path's last stat, when recheck_after_ns > 0
        self._checked_ns: dict[str, int] = {}
        self._prepared: dict[tuple[str, tuple[int, int, int], tuple[int, int, int] | None, bytes], Prepared] = {}

    def read(self, path: str) -> FileVersion | None:
        """The file's current version: cached while (inode, mtime, size) still match, else read once."""
        cached = self._versions.get(path)
        now_ns = 0
        if self._recheck_after_ns:
            now_ns = time.monotonic_ns()
            if cached is not None and now_ns - self._checked_ns.get(path, 0) < self._recheck_after_ns:
                return cached
        try:
            info = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if cached is not None and cached.key == (info.st_ino, info.st_mtime_ns, info.st_size):
            self._versions.move_to_end(path)
            version: FileVersion | None = cached
        else:
            version = self._load(path)
        if now_ns and path in self._versions:  # only cached paths: the dict stays bounded like the cache
            self._checked_ns[path] = now_ns
        return version

    def prepare(self, path: str, plain: FileVersion, compressed: FileVersion | None, headers: tuple[
            tuple[bytes, bytes], ...], content_type: bytes) -> Prepared:
        """The 200/304 messages for this pair of versions; `headers` (Cache-Control) go first."""
        use_gzip = compressed is not None and compressed.mtime_ns >= plain.mtime_ns
        cache_key = (path, plain.key, compressed.key if use_gzip and compressed else None,
                     b"".join(v for _, v in headers) + (b"+vary" if compressed is not None else b""))
        found = self._prepared.get(cache_key)
        if found is not None:
            return found
        common = [*headers, (b"last-modified", plain.last_modified)]
        if compressed is not None:
            common.append((b"vary", b"Accept-Encoding"))
        prepared = Prepared(
            plain=plain,
            plain_variant=_variant(common, plain, content_type, None),
            gzip_variant=_variant(common, compressed, content_type, b"gzip") if use_gzip and compressed else None,
        )
        if len(self._prepared) > 4 * len(self._versions) + 64:
            self._prepared.clear()  # versions moved on: drop the stale pairs all at once
        self._prepared[cache_key] = prepared
        return prepared

    def _load(self, path: str) -> FileVersion | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # gone, a directory, or ELOOP: a symlink is not ours to follow
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            body = handle.read()
        version = FileVersion(
            key=(info.st_ino, info.st_mtime_ns, info.st_size),
            body=body,
            etag=f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'.encode(),
            mtime_ns=info.st_mtime_ns,
            last_modified=formatdate(info.st_mtime_ns / 1e9, usegmt=True).encode(),
            content_length=str(len(body)).encode(),
        )
        self.remember(path, version)
        return version

    def cached(self, path: str) -> FileVersion | None:
        """The version last read or remembered for `path`, without looking at the file (store-served replicas)."""
        found = self._versions.get(path)
        if found is not None:
            self._versions.move_to_end(path)
        return found

    def remember(self, path: str, version: FileVersion) -> None:
        """Keep `version` as `path`'s current one (least recently used dropped past MAX_CACHE_BYTES)."""
        old = self._versions.pop(path, None)
        if old is not None:
            self._bytes -= len(old.body)
            self._checked_ns.pop(path, None)
        if len(version.body) > MAX_CACHE_BYTES // 4:
            return
        self._versions[path] = version
        self._bytes += len(version.body)
        while self._bytes > MAX_CACHE_BYTES:
            dropped_path, dropped = self._versions.popitem(last=False)
            self._bytes -= len(dropped.body)
            self._checked_ns.pop(dropped_path, None)


def _variant(common: list[tuple[bytes, bytes]], version: FileVersion, content_type: bytes,
             encoding: bytes | None) -> Variant:
    validators = [*common, (b"etag", version.etag)]
    full = [*validators, *([(b"content-encoding", encoding)] if encoding else []),
            (b"content-type", content_type), (b"content-length", version.content_length)]
    return Variant(
        etag=version.etag,
        start_200={"type": "http.response.start", "status": 200, "headers": full},
        start_304={"type": "http.response.start", "status": 304, "headers": validators},
        body={"type": "http.response.body", "body": version.body},
        head_200=header_lines(full),
        head_304=header_lines(validators),
    )


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header fields as they go on the wire: `name: value\r\n` each, in order, as uvicorn writes them."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)
