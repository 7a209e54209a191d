"""Serve the published files over HTTP: the feeds, their archives, feeds.opml, the index and /healthz.

A plain ASGI app (no framework: every request is a few dict look-ups and one stat), run by
uvicorn in `serve_forever` and mounted by the daemon next to its /metrics. It only reads what
`publish` wrote under output_dir, so serving never waits on polling, and since publish replaces
files atomically each response comes from one open file: never half a feed. HTTP per RFC 9110:
strong ETags (a content hash computed once per file version), Last-Modified, 304 on
If-None-Match / If-Modified-Since, HEAD, gzip from the precompressed `.gz` twin with
`Vary: Accept-Encoding`, and `Cache-Control: max-age` = the feed's shortest poll interval.
Request paths are matched whole against layout.py's names, never joined onto the disk path, so
nothing outside the feed set (`..`, `%2e%2e`, `%2f`, backslashes, NUL) resolves to a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any

from aggregator.config import Config
from aggregator.publish import output_dir_of
from aggregator.publish.layout import (
    ALL_FEED,
    FEED_NAME_PATTERN,
    GZIP_SUFFIX,
    INDEX_FILE,
    OPML_FILE,
    archive_file,
    atom_file,
    json_file,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: file contents kept in memory, least recently used dropped first
MAX_CACHE_BYTES = 64 * 1024 * 1024
#: a sealed archive page never changes (aggregator/publish/archive.py), so caches may keep it long
SEALED_ARCHIVE_MAX_AGE_SECONDS = 86400

_ATOM = "application/atom+xml; charset=utf-8"
#: JSON Feed 1.1 §"Suggestions for Publishers": application/feed+json
_JSON_FEED = "application/feed+json; charset=utf-8"
_FEED_RE = re.compile(rf"/feeds/(?P<name>{FEED_NAME_PATTERN})\.(?P<ext>atom|json)")
_ARCHIVE_RE = re.compile(rf"/feeds/archive/(?P<name>{FEED_NAME_PATTERN})/(?P<page>[1-9][0-9]{{0,8}})\.atom")


@dataclass(frozen=True, slots=True)
class Resource:
    """A request path resolved to a published file."""

    file: PurePosixPath
    content_type: str
    #: the feed whose poll interval sets max-age; None for index and OPML (shortest of all)
    feed: str | None
    #: for archive pages: the next page, whose existence means this one is sealed
    next_page: PurePosixPath | None = None


@dataclass(frozen=True, slots=True)
class _Version:
    """One version of one file, as read once from disk."""

    key: tuple[int, int, int]
    body: bytes
    etag: str
    mtime_ns: int


def resolve_path(raw_path: str) -> Resource | None:
    """The published file a request path names, or None (404). `raw_path` is the path as sent,
    still %-encoded: anything encoded cannot match, since no published name needs encoding."""
    if raw_path == "/":
        return Resource(INDEX_FILE, "text/html; charset=utf-8", None)
    if raw_path == f"/{OPML_FILE}":
        # no registered media type for OPML; text/x-opml is what readers and opml.org use
        return Resource(OPML_FILE, "text/x-opml; charset=utf-8", None)
    if match := _FEED_RE.fullmatch(raw_path):
        name = match["name"]
        if match["ext"] == "atom":
            return Resource(atom_file(name), _ATOM, name)
        return Resource(json_file(name), _JSON_FEED, name)
    if match := _ARCHIVE_RE.fullmatch(raw_path):
        name, page = match["name"], int(match["page"])
        return Resource(archive_file(name, page), _ATOM, name, next_page=archive_file(name, page + 1))
    return None


def shortest_interval(config: Config, feed: str | None) -> timedelta:
    """The shortest poll interval among the enabled sources that feed `feed` (None or "all": any
    source); a reader polling us more often than that cannot see anything new."""
    intervals = [
        config.interval_of(source)
        for source in config.sources
        if source.enabled
        and (
            feed in (None, ALL_FEED)
            or source.categories == "auto"
            or source.category_from is not None
            or feed in source.categories
        )
    ]
    return min(intervals, default=config.settings.interval)


def accepts_gzip(accept_encoding: str) -> bool:
    """RFC 9110 §12.5.3: gzip (or x-gzip, or *) listed with a non-zero q."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison; `*` matches any current representation."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class FeedApp:
    """The ASGI application; one per process, holding the file cache."""

    def __init__(
        self,
        config: Config,
        extra_routes: Sequence[tuple[str, ASGIApp]] = (),
        is_alive: Callable[[], bool] | None = None,
    ) -> None:
        self._output_dir = output_dir_of(config)
        self._config = config
        self._extra = dict(extra_routes)
        self._is_alive = is_alive
        self._max_age_seconds: dict[str | None, int] = {}
        self._cache: OrderedDict[Path, _Version] = OrderedDict()
        self._cache_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        app = self._extra.get(scope["path"])
        if app is not None:
            await app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw.decode("ascii", errors="replace")
        if path == "/healthz":
            alive = self._is_alive is None or self._is_alive()
            await _respond(send, scope, 200 if alive else 503, [(b"cache-control", b"no-store")],
                           b"ok\n" if alive else b"unhealthy\n", "text/plain; charset=utf-8")
            return
        resource = resolve_path(path)
        version = self._read(self._output_dir / resource.file) if resource else None
        if resource is None or version is None:
            await _respond(send, scope, 404, [], b"not found\n", "text/plain; charset=utf-8")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, scope, 405, [(b"allow", b"GET, HEAD")], b"method not allowed\n",
                           "text/plain; charset=utf-8")
            return
        await self._send_file(scope, send, resource, version)

    async def _send_file(self, scope: Scope, send: Send, resource: Resource, plain: _Version) -> None:
        request = _headers(scope)
        headers = [
            (b"cache-control", f"public, max-age={self._max_age(resource)}".encode()),
            (b"last-modified", formatdate(plain.mtime_ns / 1e9, usegmt=True).encode()),
        ]
        chosen, encoding = plain, None
        gzip_path = self._output_dir / resource.file.with_name(resource.file.name + GZIP_SUFFIX)
        compressed = self._read(gzip_path)
        if compressed is not None:
            headers.append((b"vary", b"Accept-Encoding"))
            # a .gz older than its plain twin is a leftover of an interrupted publish (files.py)
            if compressed.mtime_ns >= plain.mtime_ns and accepts_gzip(request.get("accept-encoding", "")):
                chosen, encoding = compressed, b"gzip"
        headers.append((b"etag", chosen.etag.encode()))
        if _is_not_modified(request, chosen.etag, plain.mtime_ns):
            await _respond(send, scope, 304, headers, b"", None)
            return
        if encoding:
            headers.append((b"content-encoding", encoding))
        await _respond(send, scope, 200, headers, chosen.body, resource.content_type)

    def _max_age(self, resource: Resource) -> int:
        if resource.next_page is not None and (self._output_dir / resource.next_page).is_file():
            return SEALED_ARCHIVE_MAX_AGE_SECONDS
        if resource.feed not in self._max_age_seconds:
            interval = shortest_interval(self._config, resource.feed)
            self._max_age_seconds[resource.feed] = int(interval.total_seconds())
        return self._max_age_seconds[resource.feed]

    def _read(self, path: Path) -> _Version | None:
        """The file's current version: from the cache when (inode, mtime, size) still match,
        else read once from one open handle, so a concurrent os.replace cannot mix versions."""
        try:
            info = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        cached = self._cache.get(path)
        if cached is not None and cached.key == _key(info):
            self._cache.move_to_end(path)
            return cached
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError:  # ELOOP: a symlink where a published file should be; not ours to follow
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            body = handle.read()
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        version = _Version(_key(info), body, f'"{digest}"', info.st_mtime_ns)
        self._remember(path, version)
        return version

    def _remember(self, path: Path, version: _Version) -> None:
        old = self._cache.pop(path, None)
        if old is not None:
            self._cache_bytes -= len(old.body)
        if len(version.body) > MAX_CACHE_BYTES // 4:
            return
        self._cache[path] = version
        self._cache_bytes += len(version.body)
        while self._cache_bytes > MAX_CACHE_BYTES:
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= len(dropped.body)


def create_app(
    config: Config,
    *,
    extra_routes: Sequence[tuple[str, ASGIApp]] = (),
    is_alive: Callable[[], bool] | None = None,
) -> ASGIApp:
    """The ASGI app serving `config`'s output_dir. `extra_routes` are (exact path, ASGI app)
    pairs mounted first (the daemon's /metrics); `is_alive` turns /healthz into a 503 when False."""
    return FeedApp(config, extra_routes, is_alive)


def parse_listen(listen: str) -> tuple[str, int]:
    """"HOST:PORT" or "[IPv6]:PORT" → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"serve: listen address must be HOST:PORT, not {listen!r}")
    return host.strip("[]"), int(port)


def serve_forever(config: Config, listen: str) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    host, port = parse_listen(listen)
    server_config = uvicorn.Config(
        create_app(config), host=host, port=port, access_log=False, log_level="warning", server_header=False
    )
    uvicorn.Server(server_config).run()


def _key(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _is_not_modified(request: dict[str, str], etag: str, mtime_ns: int) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; otherwise If-Modified-Since."""
    if "if-none-match" in request:
        return etag_matches(request["if-none-match"], etag)
    if_modified_since = request.get("if-modified-since")
    if not if_modified_since:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # §13.1.3: an invalid date is ignored
    if since.tzinfo is None:
        return False
    return mtime_ns // 1_000_000_000 <= int(since.timestamp())


async def _respond(
    send: Send, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes, content_type: str | None
) -> None:
    all_headers = list(headers)
    if content_type is not None:
        all_headers.append((b"content-type", content_type.encode()))
    if status != 304:
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
