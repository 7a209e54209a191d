"""The fast lane over real loopback sockets: its answers are uvicorn's byte for byte, on keep-alive and
pipelined connections, and whatever it does not answer reaches the ASGI app through uvicorn."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.serve.fastlane import MAX_HEAD_BYTES, fast_lane
from aggregator.serve.app import RECHECK_AFTER_NS, FeedApp
from tests.test_serve import WAIT_SECONDS, RunningServer, Site, build_site, make_item

FEED = b"/feeds/nantongribao.atom"
#: seconds a connection may take to send a whole request head (uvicorn's timeout_keep_alive)
HEAD_TIMEOUT_SECONDS = 1


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    #: the whole answer as sent, its `date` value blanked
    raw: bytes


class Client:
    """One raw HTTP/1.1 connection: requests go out byte for byte, answers are read one at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, method: bytes = b"GET") -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        headers = {name.lower(): value for name, _, value in (line.partition(b": ") for line in lines)}
        status = int(status_line.split(b" ")[1])
        length = 0 if method == b"HEAD" or status == 304 else int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        raw = re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: -", head) + b"\r\n\r\n" + body
        return Answer(status, headers, body, raw)

    def is_closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a whole answer")
        self.buffer += chunk


def request(path: bytes, *headers: bytes, method: bytes = b"GET", version: bytes = b"1.1") -> bytes:
    return b"\r\n".join([method + b" " + path + b" HTTP/" + version, b"Host: 127.0.0.1", *headers, b"", b""])


def ask(port: int, data: bytes, method: bytes = b"GET") -> Answer:
    client = Client(port)
    try:
        client.send(data)
        return client.answer(method)
    finally:
        client.close()


@dataclass
class Servers:
    site: Site
    #: plain uvicorn with the ASGI app: the reference
    reference: RunningServer
    fast: RunningServer


def start_servers(folder: Path) -> Iterator[Servers]:
    built = build_site(folder)
    site = next(built)
    fast = RunningServer()
    app = FeedApp(site.config, recheck_after_ns=RECHECK_AFTER_NS)  # as serve_forever makes it
    fast.start(app, http=fast_lane(app), timeout_keep_alive=HEAD_TIMEOUT_SECONDS)
    try:
        yield Servers(site, site.server, fast)
    finally:
        fast.stop()
        built.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    yield from start_servers(tmp_path_factory.mktemp("fastlane"))


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[Servers]:
    """For tests that publish while serving."""
    yield from start_servers(tmp_path)


def assert_answered_then_closed(port: int, data: bytes, status: int) -> None:
    client = Client(port)
    try:
        client.send(data)
        answer = client.answer()
        assert (answer.status, answer.headers[b"connection"]) == (status, b"close")
        assert client.is_closed_by_server()
    finally:
        client.close()


def etag_of(port: int, *headers: bytes) -> bytes:
    return ask(port, request(FEED, *headers)).headers[b"etag"]


SAME_AS_UVICORN = {
    "plain 200": request(FEED),
    "gzip 200": request(FEED, b"Accept-Encoding: gzip"),
    "gzip refused with q=0": request(FEED, b"Accept-Encoding: gzip;q=0"),
    "HEAD": request(FEED, b"Accept-Encoding: gzip", method=b"HEAD"),
    "HTTP/1.0": request(FEED, version=b"1.0"),
    "HTTP/1.0 asking for keep-alive": request(FEED, b"Connection: keep-alive", version=b"1.0"),
    "Connection: close": request(FEED, b"Connection: close"),
    "query string": request(FEED + b"?_=1700000000"),
    "header names in any case": request(FEED, b"ACCEPT-ENCODING: gzip"),
    "index page": request(b"/"),
    "sealed archive page": request(b"/feeds/archive/nantongribao/1.atom", b"Accept-Encoding: gzip"),
    "OPML": request(b"/feeds.opml"),
    "not found": request(b"/feeds/nowhere.atom"),
    "POST to a feed": request(FEED, b"Content-Length: 0", method=b"POST"),
    "encoded path": request(b"/feeds/nantongribao%2eatom"),
    "traversal": request(b"/feeds/../feeds.toml"),
    "healthz": request(b"/healthz"),
    "legacy category page": request(b"/category/nantongribao.html"),
    "absolute-form target": request(b"http://127.0.0.1" + FEED),
    "h2c upgrade": request(FEED, b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAAQAAP__"),
}


@pytest.mark.parametrize("data", SAME_AS_UVICORN.values(), ids=SAME_AS_UVICORN.keys())
def test_every_answer_is_byte_for_byte_what_uvicorn_sends(servers: Servers, data: bytes) -> None:
    method = data.split(b" ", 1)[0]
    assert ask(servers.fast.port, data, method).raw == ask(servers.reference.port, data, method).raw


@pytest.mark.parametrize("encoding", [b"Accept-Encoding: identity", b"Accept-Encoding: gzip"])
def test_conditional_requests_are_byte_for_byte_what_uvicorn_sends(servers: Servers, encoding: bytes) -> None:
    etag = etag_of(servers.reference.port, encoding)
    last_modified = ask(servers.reference.port, request(FEED)).headers[b"last-modified"]
    for data in (request(FEED, encoding, b'If-None-Match: "other", ' + etag),
                 request(FEED, encoding, b'If-None-Match: "other"'),
                 request(FEED, encoding, b"If-Modified-Since: " + last_modified),
                 request(FEED, encoding, b"If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT")):
        fast, reference = ask(servers.fast.port, data), ask(servers.reference.port, data)
        assert fast.raw == reference.raw
    assert ask(servers.fast.port, request(FEED, encoding, b"If-None-Match: " + etag)).status == 304
    assert ask(servers.fast.port, request(FEED, encoding, b"If-Modified-Since: " + last_modified)).status == 304


def test_a_keep_alive_connection_is_answered_request_after_request(servers: Servers) -> None:
    client = Client(servers.fast.port)
    try:
        for _ in range(50):
            client.send(request(FEED, b"Accept-Encoding: gzip"))
            assert client.answer().status == 200
    finally:
        client.close()


def test_pipelined_requests_are_answered_in_order(servers: Servers) -> None:
    etag = etag_of(servers.fast.port)
    client = Client(servers.fast.port)
    try:
        client.send(request(FEED) + request(FEED, method=b"HEAD") + request(FEED, b"If-None-Match: " + etag)
                    + request(FEED, b"Accept-Encoding: gzip"))
        first, head, not_modified, zipped = (client.answer(), client.answer(b"HEAD"), client.answer(),
                                             client.answer())
    finally:
        client.close()
    assert (first.status, head.status, not_modified.status, zipped.status) == (200, 200, 304, 200)
    assert head.body == b"" and head.headers[b"content-length"] == first.headers[b"content-length"]
    assert zipped.headers[b"content-encoding"] == b"gzip"


def test_a_dynamic_request_inside_a_pipeline_hands_it_and_the_rest_to_uvicorn(servers: Servers) -> None:
    client = Client(servers.fast.port)
    try:
        client.send(request(FEED) + request(b"/feeds/nowhere.atom") + request(b"/healthz") + request(FEED))
        statuses = [client.answer().status for _ in range(4)]
        client.send(request(FEED, method=b"HEAD"))  # the connection lives on with uvicorn
        statuses.append(client.answer(b"HEAD").status)
    finally:
        client.close()
    assert statuses == [200, 404, 200, 200, 200]


def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(servers: Servers) -> None:
    for data in (request(FEED, b"Connection: close"), request(FEED, version=b"1.0")):
        assert_answered_then_closed(servers.fast.port, data, 200)


def test_a_request_body_on_get_is_read_past_and_the_next_request_answered(servers: Servers) -> None:
    client = Client(servers.fast.port)
    try:
        client.send(request(FEED, b"Content-Length: 11") + b"hello world" + request(FEED, method=b"HEAD"))
        assert client.answer().status == 200
        assert client.answer(b"HEAD").status == 200
        client.send(request(FEED, b"Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n" + request(FEED))
        assert [client.answer().status, client.answer().status] == [200, 200]
    finally:
        client.close()


def test_a_feed_republished_mid_connection_is_served_in_its_new_version(own_servers: Servers) -> None:
    client = Client(own_servers.fast.port)
    try:
        client.send(request(FEED, b"Accept-Encoding: gzip"))
        before = client.answer()
        own_servers.site.add([make_item(99)])
        time.sleep(2 * RECHECK_AFTER_NS / 1e9)
        client.send(request(FEED, b"Accept-Encoding: gzip", b"If-None-Match: " + before.headers[b"etag"]))
        after = client.answer()
    finally:
        client.close()
    assert after.status == 200
    assert after.headers[b"etag"] != before.headers[b"etag"]
    assert after.raw == ask(own_servers.reference.port, request(FEED, b"Accept-Encoding: gzip")).raw


def test_a_malformed_request_line_is_a_400(servers: Servers) -> None:
    for data in (b"GET /feeds/nantongribao.atom HTTP/9.Z\r\n\r\n", b"\x16\x03\x01 tls hello\r\n\r\n",
                 b"GET /feeds/nantong ribao.atom HTTP/1.1\r\nHost: x\r\n\r\n"):
        answer = ask(servers.fast.port, data)
        assert answer.status == 400
        assert answer.raw == ask(servers.reference.port, data).raw


@pytest.mark.parametrize(("data", "status"), [
    (request(b"/feeds/" + b"a" * MAX_HEAD_BYTES + b".atom"), 414),
    (request(FEED, b"X-Padding: " + b"a" * MAX_HEAD_BYTES), 431),
], ids=["long URL", "long header"])
def test_an_oversized_request_head_is_refused_and_the_connection_closed(servers: Servers, data: bytes,
                                                                           status: int) -> None:
    assert_answered_then_closed(servers.fast.port, data, status)


def test_a_slow_partial_request_blocks_nobody_and_is_dropped_after_the_timeout(servers: Servers) -> None:
    slow = Client(servers.fast.port)
    try:
        slow.send(b"GET /feeds/nantongribao.atom HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        for _ in range(5):
            slow.send(b"a")
            assert ask(servers.fast.port, request(FEED)).status == 200
        slow.sock.settimeout(HEAD_TIMEOUT_SECONDS + WAIT_SECONDS)
        assert slow.is_closed_by_server()
        assert time.monotonic() - started < HEAD_TIMEOUT_SECONDS + 2
    finally:
        slow.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(servers: Servers) -> None:
    client = Client(servers.fast.port)
    try:
        client.send(request(FEED))
        assert client.answer().status == 200
        started = time.monotonic()
        assert client.is_closed_by_server()
        assert HEAD_TIMEOUT_SECONDS - 0.2 < time.monotonic() - started < HEAD_TIMEOUT_SECONDS + 2
    finally:
        client.close()
