"""The website's dynamic side in `serve`: /search, legacy links, and 410 Gone for retired article pages.

Everything else of the site is static files publish wrote (publish/pages/). `/search` is the one
dynamic page, so it is guarded: a query longer than storage.search.MAX_QUERY_CHARS is a 400, each
query runs under SEARCH_TIME_LIMIT_SECONDS (a 503 past it), and each client address gets
RATE_LIMIT_QUERIES queries per RATE_LIMIT_WINDOW_SECONDS (a token bucket; 429 with Retry-After past
it). The store is opened at the first search, read-only in use, and queried off the event loop.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from aggregator.config.load import Config
from aggregator.errors import StorageError
from aggregator.identity import normalise_info_code
from aggregator.publish.layout import ALL_FEED, atom_file, file_url, site_url
from aggregator.publish.pages.legacy import LEGACY_FEED_PATH, parse_legacy_permalink
from aggregator.publish.page_layout import article_file, gone_file_of_page, resolve_page
from aggregator.publish.pages.search_page import render_search_html, render_search_json
from aggregator.storage.search import MAX_QUERY_CHARS, SearchPage, SearchTimeoutError

SEARCH_TIME_LIMIT_SECONDS = 2.0
SEARCH_PER_PAGE = 20
RATE_LIMIT_QUERIES = 30
RATE_LIMIT_WINDOW_SECONDS = 60.0
#: client addresses remembered by the rate limiter (least recently seen dropped first)
MAX_TRACKED_CLIENTS = 10_000
_HTML = b"text/html; charset=utf-8"
_JSON = b"application/json; charset=utf-8"
_URL_CHARACTERS = ":/?#[]@!$&'()*+,;=%~"
#: the ASGI shapes (serve/app.py names them too; this module is imported by it, not the reverse)
_Scope = MutableMapping[str, Any]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RateLimiter:
    """Token bucket per client: `capacity` queries, refilled evenly over `window_seconds`."""

    def __init__(self, capacity: int = RATE_LIMIT_QUERIES, window_seconds: float = RATE_LIMIT_WINDOW_SECONDS) -> None:
        self.capacity = capacity
        self.rate = capacity / window_seconds
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_seconds(self, client: str, now: float) -> float:
        """0 and one token taken when `client` may query now; else seconds until it may."""
        tokens, at = self._buckets.pop(client, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


class SiteSearch:
    """`/search?q=…[&page=n][&format=json]` over the store of `config`."""

    def __init__(self, config: Config, limiter: RateLimiter | None = None) -> None:
        self._config = config
        self._limiter = limiter or RateLimiter()
        self._zone = ZoneInfo(config.settings.timezone)
        self._storage_lock = threading.Lock()
        self._storage: object | None = None

    async def __call__(self, scope: _Scope, receive: Any, send: _Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, scope, 405, [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")],
                          b"method not allowed\n")
            return
        params = parse_qs(bytes(scope.get("query_string") or b"").decode("utf-8", errors="replace"))
        query = params.get("q", [""])[0]
        wants_json = params.get("format", [""])[0] == "json"
        try:
            page = max(1, int(params.get("page", ["1"])[0]))
        except ValueError:
            page = 1
        status, headers, body = await self.answer(query, page, wants_json, _client_of(scope))
        await respond(send, scope, status, headers, body)

    async def answer(self, query: str, page: int, wants_json: bool, client: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        content_type = _JSON if wants_json else _HTML
        headers = [(b"content-type", content_type), (b"cache-control", b"no-store")]
        empty = SearchPage(query.strip(), page, SEARCH_PER_PAGE, (), False)
        if len(query.strip()) > MAX_QUERY_CHARS:
            return 400, headers, self._render(empty, wants_json, f"查询太长：最多 {MAX_QUERY_CHARS} 个字符。")
        if query.strip():
            wait = self._limiter.wait_seconds(client, time.monotonic())
            if wait > 0:
                headers.append((b"retry-after", str(math.ceil(wait)).encode()))
                return 429, headers, self._render(empty, wants_json, "搜索太频繁，请稍后再试。")
        try:
            result = await asyncio.to_thread(self._search, query, page)
        except SearchTimeoutError:
            return 503, headers, self._render(empty, wants_json, "搜索超时，请换一个更具体的词。")
        except StorageError:
            return 503, headers, self._render(empty, wants_json, "搜索暂时不可用。")
        return 200, headers, self._render(result, wants_json)

    def _render(self, result: SearchPage, wants_json: bool, message: str = "") -> bytes:
        if wants_json:
            return render_search_json(result, base_url=self._config.settings.base_url)
        return render_search_html(result, zone=self._zone, message=message)

    def _search(self, query: str, page: int) -> SearchPage:
        from aggregator.storage import Storage, open_storage

        with self._storage_lock:
            if self._storage is None:
                self._storage = open_storage(self._config.settings.store)
        storage: Storage = self._storage  # type: ignore[assignment]
        return storage.search(query, page=page, per_page=SEARCH_PER_PAGE, time_limit_seconds=SEARCH_TIME_LIMIT_SECONDS)

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()  # type: ignore[attr-defined]


def site_answer(raw_path: str, output_dir: Path, base_url: str) -> tuple[int, bytes] | None:
    """For a path serve has no file for: (301, location) for a legacy link, (410, b"") for a retired
    article page, or None (404)."""
    if raw_path == LEGACY_FEED_PATH:
        return 301, _location(file_url(base_url, atom_file(ALL_FEED)))
    legacy = parse_legacy_permalink(raw_path)
    if legacy is not None:
        if legacy.article_id is None:
            return 301, _location(site_url(base_url))
        file = article_file(normalise_info_code(legacy.article_id) or legacy.article_id)
        if (output_dir / file).is_file() or (output_dir / file.with_suffix(".gone")).is_file():
            return 301, _location(site_url(base_url, str(file)))
        return None
    page = resolve_page(raw_path)
    gone = gone_file_of_page(page) if page is not None else None
    if gone is not None and (output_dir / gone).is_file():
        return 410, b""
    return None


async def respond(send: _Send, scope: _Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """One whole response; the body is left out for HEAD. No business logic."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _location(url: str) -> bytes:
    return quote(url, safe=_URL_CHARACTERS).encode("ascii")


def _client_of(scope: _Scope) -> str:
    """The client address; behind a proxy on loopback (nginx, docs/subscribing.md) the last
    X-Forwarded-For entry, which that proxy set. From anywhere else the header is not trusted."""
    client = scope.get("client")
    peer = str(client[0]) if isinstance(client, (list, tuple)) and client else "-"
    if peer in ("127.0.0.1", "::1"):
        for name, value in scope.get("headers") or []:
            if name == b"x-forwarded-for":
                return str(value.decode("latin-1").rsplit(",", 1)[-1].strip() or peer)
    return peer
