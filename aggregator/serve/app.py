"""Serve the published files over HTTP: the feeds, their archives, feeds.opml, the index and /healthz.

A plain ASGI app (no framework: a request is a few dict look-ups and two stats), run by uvicorn in
`serve_forever` behind aggregator/fastlane.py (which answers published files from the same prepared
responses and hands the rest to this app) and mounted by the daemon next to its /metrics. It only reads what `publish`
wrote under output_dir, so serving never waits on polling, and since publish replaces files
atomically each response comes from one open file: never half a feed. HTTP per RFC 9110: strong
ETags (a content hash computed once per file version), Last-Modified, 304 on If-None-Match /
If-Modified-Since, HEAD, gzip from the precompressed `.gz` twin with `Vary: Accept-Encoding`,
and `Cache-Control: max-age` = the feed's shortest poll interval. Request paths are matched
whole against layout.py's names, never joined onto a disk path, so nothing outside the feed set
(`..`, `%2e%2e`, `%2f`, backslashes, NUL) resolves to a file. A path outside that set which is one
of the legacy mirror's category pages (categories.redirect_for_legacy_category) gets a 301 to the
category's page (else its feed) when published. The website's pages (`/a/…`, `/c/…`, opensearch.xml)
are files like the feeds; its dynamic side (`/search`, legacy post links, `/feed.xml`, 410 Gone for
retired articles) is aggregator/site.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

from aggregator.config.load import Config
from aggregator.serve.prepared import FileVersion, Variant, VersionCache
from aggregator.publish.layout import output_dir_of
from aggregator.publish.freshness import shortest_interval
from aggregator.publish.layout import (
    FEED_NAME_PATTERN,
    INDEX_FILE,
    OPML_FILE,
    archive_file,
    atom_file,
    file_url,
    gzip_file,
    is_feed_name,
    json_file,
    site_url,
)
from aggregator.publish.page_layout import category_file, resolve_page
from aggregator.serve.site import SiteSearch, site_answer
from aggregator.serve.site import respond as respond  # re-exported: the daemon answers with it too

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

#: request paths remembered with their resolved files (each bounded by the name pattern)
MAX_ROUTES = 4096
#: a sealed archive page never changes (aggregator/publish/archive.py), so caches may keep it long
SEALED_ARCHIVE_MAX_AGE_SECONDS = 86400
#: `serve` stats a published file at most once a millisecond (a stat costs more than the rest of a
#: request, and at 20,000 requests/s this spares ~95% of them); a publish is then seen ≤ 1 ms late
RECHECK_AFTER_NS = 1_000_000
#: legacy category paths are short; a longer one is a 404 before pypinyin reads it
MAX_LEGACY_PATH_CHARS = 512

_SEALED_CACHE_CONTROL = f"public, max-age={SEALED_ARCHIVE_MAX_AGE_SECONDS}".encode()
_ATOM = "application/atom+xml; charset=utf-8"
#: JSON Feed 1.1 §"Suggestions for Publishers": application/feed+json
_JSON_FEED = "application/feed+json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_OPENSEARCH = "application/opensearchdescription+xml; charset=utf-8"
#: RFC 3986 §2.2 reserved characters, `%` and `~`: kept as they are when a URL is %-encoded
_URL_CHARACTERS = ":/?#[]@!$&'()*+,;=%~"
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
class _Route:
    """A resolved resource with its disk paths as strings, computed once per request path."""

    resource: Resource
    plain_path: str
    gzip_path: str
    next_page_path: str | None
    content_type: bytes


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
    if (page_file := resolve_page(raw_path)) is not None:  # the website (publish/pages/)
        html = page_file.suffix == ".html"
        return Resource(page_file, "text/html; charset=utf-8" if html else _OPENSEARCH, None)
    return None


def legacy_feed_name(raw_path: str) -> str | None:
    """The feed name an old mirror's category page (`/category/<slug>.html`, `/<slug>/`) maps to, or
    None. A path whose %-escapes hide a traversal (`..`, `/`, `\\`, NUL) maps to nothing, even though
    the slug rules would fold it into a harmless name: such a link was never the legacy site's."""
    if len(raw_path) > MAX_LEGACY_PATH_CHARS:
        return None
    decoded = unquote(raw_path)
    if any(part in decoded for part in ("..", "\\", "\x00")) or decoded.count("/") != raw_path.count("/"):
        return None
    # imported on a 404 only: pypinyin costs ~140 ms of start-up that serving feeds never needs
    from aggregator.categories import redirect_for_legacy_category

    name = redirect_for_legacy_category(raw_path, target="{slug}")
    return name if name is not None and is_feed_name(name) else None


@functools.lru_cache(maxsize=64)
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


def is_modified_since(if_modified_since: str, mtime_ns: int) -> bool:
    """RFC 9110 §13.1.3; an invalid date is ignored (treated as modified)."""
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return True
    if since.tzinfo is None:
        return True
    return mtime_ns // 1_000_000_000 > int(since.timestamp())


class FeedApp:
    """The ASGI application; one per process, holding the route and file caches."""

    def __init__(
        self,
        config: Config,
        extra_routes: Sequence[tuple[str, ASGIApp]] = (),
        is_alive: Callable[[], bool] | None = None,
        recheck_after_ns: int = 0,
    ) -> None:
        self._output_dir = output_dir_of(config)
        self._config = config
        self._extra: dict[str, ASGIApp] = {"/search": SiteSearch(config), **dict(extra_routes)}
        self._is_alive = is_alive
        self._cache_control: dict[str | None, bytes] = {}
        self._routes: dict[str, _Route] = {}
        self._files = VersionCache(recheck_after_ns)
        #: archive pages seen sealed: a sealed page stays sealed, so its next page is not looked for again
        self._sealed: set[str] = set()

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
            await self._send_health(scope, send)
            return
        route = self._route(path)
        plain = self._read(route.plain_path) if route is not None else None
        if route is None or plain is None:
            answer = site_answer(path, self._output_dir, self._config.settings.base_url)
            if answer is not None and scope["method"] in ("GET", "HEAD"):
                status, moved_to = answer
                headers = [(b"content-type", _TEXT.encode())] + ([(b"location", moved_to)] if moved_to else [])
                await respond(send, scope, status, headers, b"moved to " + moved_to + b"\n" if moved_to else b"gone\n")
                return
            location = self._legacy_location(path) if route is None and scope["method"] in ("GET", "HEAD") else None
            if location is not None:
                headers = [(b"location", location), (b"content-type", _TEXT.encode())]
                await respond(send, scope, 301, headers, b"moved to " + location + b"\n")
                return
            await respond(send, scope, 404, [(b"content-type", _TEXT.encode())], b"not found\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", _TEXT.encode())]
            await respond(send, scope, 405, headers, b"method not allowed\n")
            return
        await self._send_file(scope, send, route, plain)

    def _legacy_location(self, path: str) -> bytes | None:
        """Where a legacy category page moved: its feed's public URL (absolute against base_url, like
        every link publish writes), only while that feed is published."""
        name = legacy_feed_name(path)
        if name is None:
            return None
        page = self._route(f"/{category_file(name)}")
        if page is not None and self._read(page.plain_path) is not None:
            location = quote(site_url(self._config.settings.base_url, str(category_file(name))), safe=_URL_CHARACTERS)
            return location.encode("ascii")
        feed = self._route(f"/feeds/{atom_file(name)}")
        if feed is None or self._read(feed.plain_path) is None:
            return None
        # a header value is ASCII: a non-ASCII base_url is sent %-encoded (RFC 3986 §2.1)
        location = quote(file_url(self._config.settings.base_url, atom_file(name)), safe=_URL_CHARACTERS)
        return location.encode("ascii")

    async def _send_health(self, scope: Scope, send: Send) -> None:
        alive = self._is_alive is None or self._is_alive()
        headers = [(b"cache-control", b"no-store"), (b"content-type", _TEXT.encode())]
        await respond(send, scope, 200 if alive else 503, headers, b"ok\n" if alive else b"unhealthy\n")

    async def _send_file(self, scope: Scope, send: Send, route: _Route, plain: FileVersion) -> None:
        accept_encoding = if_none_match = if_modified_since = None
        for name, value in scope["headers"]:  # ASGI header names are lower-case
            if name == b"accept-encoding":
                accept_encoding = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"if-modified-since":
                if_modified_since = value
        variant, not_modified = self._choose(route, plain, accept_encoding, if_none_match, if_modified_since)
        if not_modified:
            await send(variant.start_304)
            await send(variant.empty_body)
            return
        await send(variant.start_200)
        await send(variant.empty_body if scope["method"] == "HEAD" else variant.body)

    def prepared_file(self, raw_path: str, accept_encoding: bytes | None, if_none_match: bytes | None,
                      if_modified_since: bytes | None) -> tuple[Variant, bool] | None:
        """The prepared variant a GET or HEAD of `raw_path` gets and whether it is a 304, as `__call__`
        would answer it; None when the path is not a published file (a route, a redirect, a 404)."""
        if raw_path in self._extra or raw_path == "/healthz":
            return None
        route = self._route(raw_path)
        plain = self._read(route.plain_path) if route is not None else None
        if route is None or plain is None:
            return None
        return self._choose(route, plain, accept_encoding, if_none_match, if_modified_since)

    def _choose(self, route: _Route, plain: FileVersion, accept_encoding: bytes | None, if_none_match: bytes | None,
                if_modified_since: bytes | None) -> tuple[Variant, bool]:
        prepared = self._files.prepare(route.plain_path, plain, self._read(route.gzip_path),
                                       ((b"cache-control", self._cache_control_of(route)),), route.content_type)
        variant = prepared.plain_variant
        if (
            prepared.gzip_variant is not None
            and accept_encoding is not None
            and accepts_gzip(accept_encoding.decode("latin-1"))
        ):
            variant = prepared.gzip_variant
        # RFC 9110 §13.2.2: If-None-Match decides when present; otherwise If-Modified-Since
        if if_none_match is not None:
            not_modified = if_none_match == variant.etag or etag_matches(
                if_none_match.decode("latin-1"), variant.etag.decode("ascii"))
        else:
            not_modified = if_modified_since is not None and not is_modified_since(
                if_modified_since.decode("latin-1"), plain.mtime_ns
            )
        return variant, not_modified

    def _route(self, path: str) -> _Route | None:
        route = self._routes.get(path)
        if route is not None:
            return route
        resource = resolve_path(path)
        if resource is None:
            return None
        next_page = resource.next_page
        route = _Route(
            resource=resource,
            plain_path=str(self._output_dir / resource.file),
            gzip_path=str(self._output_dir / gzip_file(resource.file)),
            next_page_path=str(self._output_dir / next_page) if next_page is not None else None,
            content_type=resource.content_type.encode(),
        )
        if len(self._routes) < MAX_ROUTES:
            self._routes[path] = route
        return route

    def _cache_control_of(self, route: _Route) -> bytes:
        next_page = route.next_page_path
        if next_page is not None and (next_page in self._sealed or os.path.isfile(next_page)):
            self._sealed.add(next_page)
            return _SEALED_CACHE_CONTROL
        feed = route.resource.feed
        if feed not in self._cache_control:
            seconds = int(shortest_interval(self._config, feed).total_seconds())
            self._cache_control[feed] = f"public, max-age={seconds}".encode()
        return self._cache_control[feed]

    def _read(self, path: str) -> FileVersion | None:
        return self._files.read(path)


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


def serve_forever(config: Config, listen: str, workers: int = 1) -> None:
    """Run the app under uvicorn (uvloop + httptools, uvicorn[standard]) until SIGINT/SIGTERM.

    With `workers` > 1, that many processes each accept on their own SO_REUSEPORT socket bound to
    the same address, and the kernel spreads connections over them; this process only supervises.
    """
    import uvicorn

    from aggregator.serve.fastlane import fast_lane

    host, port = parse_listen(listen)
    app = FeedApp(config, recheck_after_ns=RECHECK_AFTER_NS)
    # log_config=None: uvicorn's records go through our logging setup (text or JSON). Each connection
    # starts in the fast lane (published files from prepared bytes) and moves to uvicorn's httptools
    # protocol at its first other request. proxy_headers=False: site.py reads X-Forwarded-For itself,
    # and only from a loopback peer.
    server_config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_config=None, server_header=False, proxy_headers=False,
        loop="auto", http=fast_lane(app),
    )
    if workers > 1:
        _serve_with_workers(server_config, host, port, workers)
        return
    _quiet_signals()
    uvicorn.Server(server_config).run()


def _quiet_signals() -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with these no-op
    # handlers in place that re-raise is a no-op too, so SIGTERM ends `serve` with exit 0 like `run`.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)


def _serve_with_workers(server_config: Any, host: str, port: int, workers: int) -> None:
    """Fork `workers` uvicorn servers over SO_REUSEPORT sockets; SIGINT/SIGTERM stops them all."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    for _ in range(workers):  # bound here, so a taken port fails `serve` itself, not only its workers
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
        sockets.append(sock)
    children = []
    for index, sock in enumerate(sockets):
        pid = os.fork()
        if pid == 0:
            for other in sockets[:index] + sockets[index + 1:]:
                other.close()
            _quiet_signals()
            try:
                uvicorn.Server(server_config).run(sockets=[sock])
            finally:
                os._exit(0)
        children.append(pid)
    for sock in sockets:
        sock.close()

    def stop(*_: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for _ in children:  # one worker ending (crash or signal) ends the service: stop the others too
        os.wait()
        stop()


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
