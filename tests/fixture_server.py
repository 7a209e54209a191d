"""A real HTTP server on 127.0.0.1 for tests: routes with canned responses, conditional GET, counters.

No business logic. Each route is a `Route`; tests change routes while the server runs
(e.g. to edit a feed between two polls) and read `hits`/`max_concurrent` afterwards.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Route:
    """A canned response. With `etag` or `last_modified` set, conditional requests get 304."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    #: seconds to wait before answering (slow servers)
    delay_seconds: float = 0.0
    #: send the body gzip-encoded when the client accepts it
    gzip: bool = False
    #: called with the request handler instead of the canned answer, for odd cases
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (timeout tests do it on purpose) is not an error worth a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FixtureServer:
    """ThreadingHTTPServer on an ephemeral port of a loopback address (Linux routes all of 127.0.0.0/8 to lo,
    so servers on 127.0.0.2, 127.0.0.3… stand for different newspaper hosts)."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        #: request log: (path, host header, request headers, monotonic start time)
        self.requests: list[tuple[str, str, dict[str, str], float]] = []
        #: (path, host header, monotonic start, monotonic end) of every answered request
        self.spans: list[tuple[str, str, float, float]] = []
        self.max_concurrent_by_host: Counter[str] = Counter()
        self._active_by_host: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = _QuietServer((address, 0), self._make_handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str, host: str | None = None) -> str:
        """URL of `path`; `host` may be any name that resolves to this address (e.g. localhost)."""
        return f"http://{host or self.address}:{self.port}{path}"

    def start(self) -> FixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            #: headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms each
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def do_GET(self) -> None:
                self._answer(send_body=True)

            def _answer(self, send_body: bool) -> None:
                path = urlsplit(self.path).path
                host = self.headers.get("Host", "")
                started = time.monotonic()
                with server._lock:
                    server.hits[path] += 1
                    server.requests.append((self.path, host, dict(self.headers.items()), time.monotonic()))
                    server._active_by_host[host] += 1
                    server.max_concurrent_by_host[host] = max(server.max_concurrent_by_host[host], server._active_by_host[host])
                try:
                    route = server.routes.get(path) or server.routes.get(self.path)
                    if route is None:
                        self._send(404, {"Content-Type": "text/plain"}, b"not found", send_body)
                        return
                    if route.delay_seconds:
                        time.sleep(route.delay_seconds)
                    if route.handler is not None:
                        route.handler(self)
                        return
                    self._send_route(route, send_body)
                finally:
                    with server._lock:
                        server._active_by_host[host] -= 1
                        server.spans.append((path, host, started, time.monotonic()))

            def _send_route(self, route: Route, send_body: bool) -> None:
                headers = {"Content-Type": route.content_type, **route.headers}
                if route.etag:
                    headers["ETag"] = route.etag
                if route.last_modified:
                    headers["Last-Modified"] = route.last_modified
                inm = self.headers.get("If-None-Match")
                ims = self.headers.get("If-Modified-Since")
                if route.status == 200 and (
                    (route.etag and inm == route.etag)
                    or (route.last_modified and not route.etag and ims == route.last_modified)
                ):
                    self._send(304, {k: v for k, v in headers.items() if k != "Content-Type"}, b"", False)
                    return
                body = route.body
                if route.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self._send(route.status, headers, body, send_body)

            def _send(self, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body and body:
                    self.wfile.write(body)

        return Handler
