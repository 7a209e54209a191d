"""The HTTP/1.1 connection of `serve`: GET and HEAD of published files answered from prepared bytes, the rest handed to uvicorn.

uvicorn builds an ASGI scope, starts a task and validates every header of every response; for a
published file that is most of the cost of a request (`bench/bench_serve.py`), while the answer
itself is ready-made per file version (prepared.py). So each connection starts here:
httptools parses one request head at a time, and a GET or HEAD without a body of a path that
app.py's `FeedApp.prepared_file` knows is answered at once with one write of the prepared header lines
and body. The first request that is anything else (another method, a body, a dynamic route, a
404, an upgrade, an encoded or absolute-form target, a head httptools rejects) is handed with
every byte from its first on to uvicorn's own httptools protocol, which owns the connection from
then on, so the dynamic routes, error answers and ASGI details stay exactly uvicorn's. A response
is byte for byte what uvicorn writes for the same ASGI messages: its status line, its `date`,
the app's headers in order, `connection: close` when the connection ends (HTTP/1.0 too, as
uvicorn does). No business logic: app.py decides routes, variants and 304s.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aggregator.serve.prepared import Variant

#: a request head (request line and header fields) longer than this is refused, like nginx's 8k buffers
MAX_HEAD_BYTES = 16384

_STATUS_200 = b"HTTP/1.1 200 OK\r\n"
_STATUS_304 = b"HTTP/1.1 304 Not Modified\r\n"
_CLOSE = b"connection: close\r\n"
_END = b"\r\n"


class PreparedFiles(Protocol):
    """What the fast lane asks of the app (app.py's FeedApp)."""

    def prepared_file(self, raw_path: str, accept_encoding: bytes | None, if_none_match: bytes | None,
                      if_modified_since: bytes | None) -> tuple[Variant, bool] | None: ...


class FastLane(asyncio.Protocol):
    """One client connection; created by uvicorn (`uvicorn.Config(http=fast_lane(app))`) with its state."""

    def __init__(self, app: PreparedFiles, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._app = app
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._writing_paused = False
        self._default_headers: list[tuple[bytes, bytes]] | None = None
        self._default_lines = b""
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_since = 0.0
        # the request being parsed
        self._url = b""
        self._accept_encoding: bytes | None = None
        self._if_none_match: bytes | None = None
        self._if_modified_since: bytes | None = None
        self._keep_alive = False
        self._complete = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._server_state.connections.add(self)
        self._waiting_since = self._loop.time()
        self._timer = self._loop.call_later(self._config.timeout_keep_alive, self._on_timer)

    def data_received(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        self._answer_buffered()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._buffer = b""

    def pause_writing(self) -> None:
        """The client reads slower than we answer: stop reading its pipelined requests for now."""
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
            self._answer_buffered()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: no answer is ever half sent here, so close (after the buffered writes)."""
        if self._transport is not None:
            self._transport.close()

    # httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"accept-encoding":
            self._accept_encoding = value
        elif name == b"if-none-match":
            self._if_none_match = value
        elif name == b"if-modified-since":
            self._if_modified_since = value

    def on_headers_complete(self) -> None:
        # asked here, as uvicorn does: once the message is complete the parser has reset its flags
        parser = self._parser
        self._keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self._complete = True

    # requests

    def _answer_buffered(self) -> None:
        transport = self._transport
        while self._buffer and not self._writing_paused and transport is not None and not transport.is_closing():
            end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._refuse(self._buffer.find(b"\r\n", 0, MAX_HEAD_BYTES) < 0)
                return
            self._url = b""
            self._accept_encoding = self._if_none_match = self._if_modified_since = None
            self._complete = False
            try:
                self._parser.feed_data(self._buffer[:end + 4])
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                self._hand_off()  # uvicorn answers 400 or upgrades, from the start of this request
                return
            if not self._answer():
                self._hand_off()
                return
            self._buffer = self._buffer[end + 4:]
            self._server_state.total_requests += 1
            self._waiting_since = self._loop.time()

    def _answer(self) -> bool:
        """Write the answer to the request just parsed, if it is one for a published file."""
        parser = self._parser
        method = parser.get_method()
        url = self._url
        if not self._complete or (method != b"GET" and method != b"HEAD") or url[:1] != b"/":
            return False
        path, _, _ = url.partition(b"?")
        if b"%" in path or b"#" in path:
            return False
        try:
            raw_path = path.decode("ascii")
        except UnicodeDecodeError:
            return False
        found = self._app.prepared_file(raw_path, self._accept_encoding, self._if_none_match, self._if_modified_since)
        if found is None:
            return False
        variant, not_modified = found
        keep_alive = self._keep_alive
        head = [_STATUS_304 if not_modified else _STATUS_200, self._default_header_lines(),
                variant.head_304 if not_modified else variant.head_200]
        if not keep_alive:
            head.append(_CLOSE)
        head.append(_END)
        assert self._transport is not None
        if not_modified or method == b"HEAD":
            self._transport.write(b"".join(head))
        else:
            self._transport.writelines((b"".join(head), variant.body["body"]))
        if not keep_alive:
            self._transport.close()
        return True

    def _default_header_lines(self) -> bytes:
        """uvicorn's `date` (and `server`, when on), which it renews once a second."""
        headers = self._server_state.default_headers
        if headers is not self._default_headers:
            self._default_headers = headers
            self._default_lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return self._default_lines

    def _refuse(self, no_request_line: bool) -> None:
        """A head over MAX_HEAD_BYTES: 414 when the request line alone is that long, else 431; then close."""
        assert self._transport is not None
        status = b"414 URI Too Long" if no_request_line else b"431 Request Header Fields Too Large"
        message = b"request head too long\n"
        self._transport.write(b"HTTP/1.1 " + status + b"\r\n" + self._default_header_lines()
                              + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
                              + str(len(message)).encode() + b"\r\n" + _CLOSE + _END + message)
        self._transport.close()
        self._buffer = b""

    def _hand_off(self) -> None:
        """Give the connection, from the first byte of the current request on, to uvicorn's protocol."""
        transport = self._transport
        assert transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._server_state.connections.discard(self)
        protocol = HttpToolsProtocol(config=self._config, server_state=self._server_state, app_state=self._app_state,
                                     _loop=self._loop)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        data, self._buffer, self._transport = self._buffer, b"", None
        protocol.data_received(data)

    def _on_timer(self) -> None:
        """Close a connection that has not sent a whole request head for timeout_keep_alive seconds
        (idle keep-alive or a slow trickle); re-armed for the rest of the time otherwise."""
        self._timer = None
        if self._transport is None or self._transport.is_closing():
            return
        waited = self._loop.time() - self._waiting_since
        timeout = float(self._config.timeout_keep_alive)
        if waited >= timeout:
            self._transport.close()
            return
        self._timer = self._loop.call_later(timeout - waited, self._on_timer)


def fast_lane(app: PreparedFiles) -> Any:
    """The protocol factory uvicorn calls with (config=, server_state=, app_state=, _loop=) per connection."""

    def create(**uvicorn_state: Any) -> FastLane:
        return FastLane(app, **uvicorn_state)

    return create
