"""HttpFetcher against the real loopback feed_server: validators, decoding, caps, redirects, errors, pacing."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from aggregator.fetch import hosts
from aggregator.config.load import Settings, SourceConfig
from aggregator.errors import BlockedAddressError, FetchError
from aggregator.fetch.client import Fetcher, HttpFetcher
from aggregator.models import Fetched, FetchResult, NotModified, SourceState
from tests.conftest import DATA_DIR
from tests.fixture_server import FixtureServer, Route

NOW = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)
FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"
SOURCE = SourceConfig(name="nantong", url="http://127.0.0.1/feed.xml")
T = TypeVar("T")


def make_settings(**changes: Any) -> Settings:
    """Loopback-friendly settings: the fixture server is on 127.0.0.1, and tests should not wait a second."""
    base: dict[str, Any] = {"allow_private_networks": True, "per_host_delay": None,
                            "timeout": timedelta(seconds=2)}
    return Settings(**{**base, **changes})


def with_fetcher(settings: Settings, use: Callable[[Fetcher], Awaitable[T]]) -> T:
    async def run() -> T:
        async with HttpFetcher(settings, clock=lambda: NOW) as fetcher:
            return await use(fetcher)

    return asyncio.run(asyncio.wait_for(run(), timeout=20))


def fetch_source(settings: Settings, url: str, state: SourceState | None = None,
                 source: SourceConfig = SOURCE) -> FetchResult:
    return with_fetcher(settings, lambda f: f.fetch_source(source, url, state or SourceState(name=source.name)))


def fetch_fetched(settings: Settings, url: str, state: SourceState | None = None) -> Fetched:
    result = fetch_source(settings, url, state)
    assert isinstance(result, Fetched)
    return result


def fetch_error(settings: Settings, url: str, source: SourceConfig = SOURCE) -> FetchError:
    with pytest.raises(FetchError) as raised:
        fetch_source(settings, url, source=source)
    return raised.value


def request_headers(server: FixtureServer, index: int = -1) -> dict[str, str]:
    return server.requests[index][2]


def request_starts(server: FixtureServer, path: str) -> list[float]:
    return sorted(start for p, _host, _headers, start in server.requests if p == path)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hang_up_quietly(write: Callable[[], object]) -> None:
    """The client may hang up mid-body (that is what these tests provoke); the server must not complain."""
    try:
        write()
    except (BrokenPipeError, ConnectionResetError):
        return


def stream_without_length(body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/xml")
        request.send_header("Connection", "close")
        request.end_headers()
        request.close_connection = True
        hang_up_quietly(lambda: request.wfile.write(body))

    return handler


def drip(byte_count: int, pause_seconds: float) -> Callable[[BaseHTTPRequestHandler], None]:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(byte_count))
        request.end_headers()
        request.close_connection = True

        def write_slowly() -> None:
            for _ in range(byte_count):
                request.wfile.write(b"x")
                request.wfile.flush()
                time.sleep(pause_seconds)

        hang_up_quietly(write_slowly)

    return handler


def not_modified_always(request: BaseHTTPRequestHandler) -> None:
    request.send_response(304)
    request.send_header("Content-Length", "0")
    request.end_headers()


@pytest.fixture(scope="module")
def module_server() -> Iterator[FixtureServer]:
    server = FixtureServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(module_server: FixtureServer) -> FixtureServer:
    """The module's loopback server, emptied: stopping a server costs 0.5 s (serve_forever's poll interval),
    so only the tests that leave a handler sleeping (slow, drip) get a fresh `feed_server` of their own."""
    module_server.routes.clear()
    module_server.hits.clear()
    module_server.requests.clear()
    module_server.max_concurrent_by_host.clear()
    return module_server


# -- conditional GET ------------------------------------------------------------------------------------


def test_first_fetch_returns_the_body_and_captures_both_validators(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=FEED, etag='"v1"', last_modified="Mon, 23 Nov 2026 08:00:00 GMT")
    url = server.url("/feed.xml")
    fetched = fetch_fetched(make_settings(), url)
    assert (fetched.url, fetched.final_url, fetched.status) == (url, url, 200)
    assert fetched.body == FEED
    assert fetched.headers["etag"] == '"v1"'
    assert fetched.headers["last-modified"] == "Mon, 23 Nov 2026 08:00:00 GMT"
    assert all(name == name.lower() for name in fetched.headers)
    assert fetched.fetched_at == NOW
    assert fetched.permanent_redirect is None
    assert "If-None-Match" not in request_headers(server)


def test_second_fetch_with_stored_etag_is_not_modified(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=FEED, etag='"v1"')
    url = server.url("/feed.xml")
    first = fetch_fetched(make_settings(), url)
    state = SourceState(name="nantong", etag=first.headers["etag"])
    second = fetch_source(make_settings(), url, state)
    assert isinstance(second, NotModified)
    assert (second.url, second.status, second.fetched_at) == (url, 304, NOW)
    assert request_headers(server)["If-None-Match"] == '"v1"'


def test_stored_last_modified_is_sent_as_if_modified_since(server: FixtureServer) -> None:
    stamp = "Mon, 23 Nov 2026 08:00:00 GMT"
    server.routes["/feed.xml"] = Route(body=FEED, last_modified=stamp)
    result = fetch_source(make_settings(), server.url("/feed.xml"),
                          SourceState(name="nantong", last_modified=stamp))
    assert isinstance(result, NotModified)
    assert request_headers(server)["If-Modified-Since"] == stamp


def test_changed_etag_gets_the_new_body(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=FEED + b"<!-- v2 -->", etag='"v2"')
    fetched = fetch_fetched(make_settings(), server.url("/feed.xml"), SourceState(name="n", etag='"v1"'))
    assert fetched.body.endswith(b"<!-- v2 -->")
    assert fetched.headers["etag"] == '"v2"'


@pytest.mark.parametrize(
    ("etag", "last_modified"),
    [('"caf\u00e9"', "Mon, 23 Nov 2026 08:00:00 GMT"), ('"v1"', "Lun, 23 nov 2026 08:00:00 GMT\u00e9"),
     ('"' + "a" * 2000 + '"', "Mon, 23 Nov 2026 08:00:00 GMT")],
    ids=["non-ascii-etag", "non-ascii-last-modified", "overlong-etag"],
)
def test_a_validator_that_cannot_be_sent_back_is_dropped_the_other_kept(
    server: FixtureServer, etag: str, last_modified: str
) -> None:
    server.routes["/feed.xml"] = Route(body=FEED, headers={"ETag": etag, "Last-Modified": last_modified})
    fetched = fetch_fetched(make_settings(), server.url("/feed.xml"))
    kept = {name: fetched.headers.get(name) for name in ("etag", "last-modified")}
    assert kept == {"etag": etag if etag.isascii() and len(etag) < 1024 else None,
                    "last-modified": last_modified if last_modified.isascii() else None}


def test_a_stored_unsendable_validator_is_not_sent_and_does_not_wedge_the_source(server: FixtureServer) -> None:
    # stored by an older version: httpx raised UnicodeEncodeError on every poll, outside the error map
    server.routes["/feed.xml"] = Route(body=FEED, etag='"v1"')
    state = SourceState(name="nantong", etag='"caf\u00e9"', last_modified="Mon, 23 Nov 2026 08:00:00 GMT\u00e9")
    fetched = fetch_fetched(make_settings(), server.url("/feed.xml"), state)
    assert fetched.body == FEED
    sent = request_headers(server)
    assert "If-None-Match" not in sent and "If-Modified-Since" not in sent


def test_304_to_a_request_without_validators_is_an_error(server: FixtureServer) -> None:
    server.routes["/detail"] = Route(handler=not_modified_always)
    with pytest.raises(FetchError) as raised:
        with_fetcher(make_settings(), lambda f: f.fetch_url(SOURCE, server.url("/detail")))
    assert raised.value.status == 304
    assert raised.value.message == "fetch: unexpected HTTP 304 Not Modified"


# -- request headers ------------------------------------------------------------------------------------


def test_honest_user_agent_and_feed_accept_header_are_sent(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=FEED)
    settings = make_settings(user_agent="aggregator-test/1.0 (+https://example.org/bot)")
    fetch_fetched(settings, server.url("/feed.xml"))
    sent = request_headers(server)
    assert sent["User-Agent"] == "aggregator-test/1.0 (+https://example.org/bot)"
    assert sent["Accept"].startswith("application/atom+xml, application/rss+xml")
    assert sent["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(("kind", "accept_start"), [("feed", "text/html"), ("json", "application/json")],
                         ids=["feed_source_detail_page_is_html", "json_source_detail_is_json"])
def test_detail_fetch_asks_for_what_the_source_kind_links_to(
    server: FixtureServer, kind: str, accept_start: str
) -> None:
    server.routes["/detail"] = Route(body=b"{}", content_type="application/json")
    source = SourceConfig(name="s", url="http://x/", kind=kind)  # type: ignore[arg-type]
    fetched = with_fetcher(make_settings(), lambda f: f.fetch_url(source, server.url("/detail")))
    assert fetched.body == b"{}"
    assert request_headers(server)["Accept"].startswith(accept_start)


# -- decoding and the size cap --------------------------------------------------------------------------


def test_gzip_body_is_decoded(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=FEED * 50, gzip=True)
    fetched = fetch_fetched(make_settings(), server.url("/feed.xml"))
    assert fetched.headers["content-encoding"] == "gzip"
    assert int(fetched.headers["content-length"]) < len(FEED * 50)
    assert fetched.body == FEED * 50


@pytest.mark.parametrize(
    "compress",
    [zlib.compress, lambda data: zlib.compress(data)[2:-4]],
    ids=["zlib_wrapped_deflate_as_rfc_9110_says", "raw_deflate_as_some_servers_send"],
)
def test_deflate_body_is_decoded(server: FixtureServer, compress: Callable[[bytes], bytes]) -> None:
    server.routes["/feed.xml"] = Route(body=compress(FEED * 50), headers={"Content-Encoding": "deflate"})
    assert fetch_fetched(make_settings(), server.url("/feed.xml")).body == FEED * 50


def test_unsupported_content_encoding_is_refused(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=b"\x1b\x00", headers={"Content-Encoding": "br"})
    error = fetch_error(make_settings(), server.url("/feed.xml"))
    assert error.message == "fetch: unsupported Content-Encoding 'br'"


def test_corrupt_gzip_body_is_a_fetch_error(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=b"this is not gzip", headers={"Content-Encoding": "gzip"})
    error = fetch_error(make_settings(), server.url("/feed.xml"))
    assert error.message == f"fetch: compressed body from 127.0.0.1:{server.port} is corrupt"
    assert isinstance(error.__cause__, zlib.error)


def test_body_declared_larger_than_the_cap_is_refused_before_reading(server: FixtureServer) -> None:
    server.routes["/big.xml"] = Route(body=b"x" * 5000)
    error = fetch_error(make_settings(max_response_bytes=4096), server.url("/big.xml"))
    assert error.message == "fetch: response body exceeds max_response_bytes (4096 bytes)"


def test_body_exactly_at_the_cap_is_accepted(server: FixtureServer) -> None:
    server.routes["/edge.xml"] = Route(handler=stream_without_length(b"x" * 4096))
    assert len(fetch_fetched(make_settings(max_response_bytes=4096), server.url("/edge.xml")).body) == 4096


def test_body_without_length_is_cut_off_when_it_passes_the_cap(server: FixtureServer) -> None:
    server.routes["/stream.xml"] = Route(handler=stream_without_length(b"x" * 2_000_000))
    error = fetch_error(make_settings(max_response_bytes=100_000), server.url("/stream.xml"))
    assert error.message == "fetch: response body exceeds max_response_bytes (100000 bytes)"


def test_gzip_bomb_is_stopped_without_inflating_it_in_memory(server: FixtureServer) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    server.routes["/bomb.xml"] = Route(body=bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        error = fetch_error(make_settings(max_response_bytes=1_000_000), server.url("/bomb.xml"))
        _current, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.message == "fetch: response body exceeds max_response_bytes (1000000 bytes)"
    # decoding the 50 MB in one piece (what httpx's own decoder does per network chunk) would peak far higher
    assert peak_bytes < 10_000_000


# -- timeouts -------------------------------------------------------------------------------------------


def test_slow_server_times_out_within_the_timeout_and_a_margin(feed_server: FixtureServer) -> None:
    feed_server.routes["/slow.xml"] = Route(body=FEED, delay_seconds=3)
    began = time.monotonic()
    error = fetch_error(make_settings(timeout=timedelta(seconds=0.5)), feed_server.url("/slow.xml"))
    assert time.monotonic() - began < 0.5 + 1.0
    assert error.message == f"fetch: 127.0.0.1:{feed_server.port} sent nothing for 0.5 s (read timeout)"
    assert error.status is None


def test_server_dripping_bytes_is_cut_off_by_the_whole_response_deadline(feed_server: FixtureServer) -> None:
    feed_server.routes["/drip.xml"] = Route(handler=drip(byte_count=60, pause_seconds=0.05))
    began = time.monotonic()
    error = fetch_error(make_settings(timeout=timedelta(seconds=0.2)), feed_server.url("/drip.xml"))
    assert time.monotonic() - began < 0.6 + 1.0
    assert error.message == (f"fetch: 127.0.0.1:{feed_server.port} did not deliver the whole response "
                             "within 0.6 s")


# -- redirects ------------------------------------------------------------------------------------------


def test_redirect_chain_is_followed_to_the_final_url(server: FixtureServer) -> None:
    server.routes["/r1"] = Route(status=302, headers={"Location": "/r2"})
    server.routes["/r2"] = Route(status=307, headers={"Location": server.url("/feed.xml")})
    server.routes["/feed.xml"] = Route(body=FEED)
    fetched = fetch_fetched(make_settings(), server.url("/r1"))
    assert fetched.url == server.url("/r1")
    assert fetched.final_url == server.url("/feed.xml")
    assert fetched.body == FEED
    assert fetched.permanent_redirect is None


@pytest.mark.parametrize(
    ("chain", "moved_to"),
    [
        ([301], "/hop1"),
        ([308], "/hop1"),
        ([301, 301], "/hop2"),
        ([301, 302], "/hop1"),
        ([302, 301], None),
    ],
    ids=["moved_permanently", "permanent_redirect", "two_permanent_hops_move_to_the_last",
         "temporary_hop_after_permanent_stops_the_move", "permanent_hop_after_temporary_is_no_move"],
)
def test_permanent_redirect_is_recorded_for_moved_source_tracking(
    server: FixtureServer, chain: list[int], moved_to: str | None
) -> None:
    for index, status in enumerate(chain):
        server.routes[f"/hop{index}"] = Route(status=status, headers={"Location": f"/hop{index + 1}"})
    server.routes[f"/hop{len(chain)}"] = Route(body=FEED)
    fetched = fetch_fetched(make_settings(), server.url("/hop0"))
    assert fetched.final_url == server.url(f"/hop{len(chain)}")
    assert fetched.permanent_redirect == (None if moved_to is None else server.url(moved_to))


def test_too_many_redirects_are_refused(server: FixtureServer) -> None:
    server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    error = fetch_error(make_settings(max_redirects=2), server.url("/loop"))
    assert error.message == f"fetch: more than 2 redirects (next was {server.url('/loop')})"
    assert server.hits["/loop"] == 3


def test_every_redirect_hop_is_vetted_by_the_address_policy(
    server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/r1"] = Route(status=301, headers={"Location": "/r2"})
    server.routes["/r2"] = Route(status=302, headers={"Location": "/feed.xml"})
    server.routes["/feed.xml"] = Route(body=FEED)
    vetted: list[str] = []
    real_check = hosts.check_address

    async def recording_check(host: str, port: int, *, allow_private: bool, source_name: str,
                              url: str) -> tuple[hosts.IPAddress, ...]:
        vetted.append(url)
        return await real_check(host, port, allow_private=allow_private, source_name=source_name, url=url)

    monkeypatch.setattr(hosts, "check_address", recording_check)
    fetch_fetched(make_settings(), server.url("/r1"))
    assert vetted == [server.url(p) for p in ("/r1", "/r2", "/feed.xml")]


def test_redirect_to_another_scheme_is_refused(server: FixtureServer) -> None:
    server.routes["/r"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    error = fetch_error(make_settings(), server.url("/r"))
    assert error.message == "fetch: unsupported URL scheme 'file'"
    assert error.url.startswith("file:")


def test_redirect_without_location_is_a_fetch_error(server: FixtureServer) -> None:
    server.routes["/r"] = Route(status=302)
    error = fetch_error(make_settings(), server.url("/r"))
    assert (error.status, error.message) == (302, "fetch: HTTP 302 redirect without a Location")


# -- errors ---------------------------------------------------------------------------------------------


def test_connection_refused_maps_to_fetch_error(server: FixtureServer) -> None:
    port = closed_port()
    error = fetch_error(make_settings(), f"http://127.0.0.1:{port}/feed.xml")
    assert error.message == f"fetch: 127.0.0.1:{port} refused the connection"
    assert error.status is None
    assert str(error).startswith(f"fetch: 127.0.0.1:{port} refused the connection: ConnectError: ")


def test_dns_failure_maps_to_fetch_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: object, **kwargs: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    error = fetch_error(make_settings(), "http://nowhere.test/feed.xml")
    assert error.message == "fetch: DNS lookup of nowhere.test failed"
    assert str(error) == "fetch: DNS lookup of nowhere.test failed: gaierror: [Errno -2] Name or service not known"


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, "fetch: HTTP 500 Internal Server Error"), (404, "fetch: HTTP 404 Not Found"),
     (410, "fetch: HTTP 410 Gone"), (403, "fetch: HTTP 403 Forbidden")],
    ids=["server_error", "not_found", "gone_retires_the_source", "forbidden"],
)
def test_http_error_status_maps_to_fetch_error_with_status(
    server: FixtureServer, status: int, message: str
) -> None:
    server.routes["/feed.xml"] = Route(status=status, body=b"oops")
    error = fetch_error(make_settings(), server.url("/feed.xml"))
    assert (error.status, error.message, str(error), error.retry_after_seconds) == (status, message, message, None)
    assert (error.source, error.url) == ("nantong", server.url("/feed.xml"))


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://[::1/feed.xml", "fetch: invalid URL"),
     ("http://127.0.0.1:99999/feed.xml", "fetch: invalid URL (host or port)"),
     ("http:///feed.xml", "fetch: invalid URL (host or port)"),
     ("ftp://127.0.0.1/feed.xml", "fetch: unsupported URL scheme 'ftp'")],
    ids=["unparsable", "port_out_of_range", "no_host", "not_http"],
)
def test_invalid_url_is_a_fetch_error(url: str, message: str) -> None:
    assert fetch_error(make_settings(), url).message == message


def test_fetcher_used_outside_its_context_is_a_bug() -> None:
    async def use_unopened() -> Fetched:
        return await HttpFetcher(make_settings()).fetch_url(SOURCE, "http://127.0.0.1/")

    with pytest.raises(RuntimeError, match="outside `async with`"):
        asyncio.run(use_unopened())


# -- Retry-After ----------------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_reported_and_defers_the_host(server: FixtureServer) -> None:
    server.routes["/limited.xml"] = Route(status=429, headers={"Retry-After": "1"})
    server.routes["/other.xml"] = Route(body=FEED)

    async def hit_twice(fetcher: Fetcher) -> FetchError:
        with pytest.raises(FetchError) as raised:
            await fetcher.fetch_url(SOURCE, server.url("/limited.xml"))
        await fetcher.fetch_url(SOURCE, server.url("/other.xml"))
        return raised.value

    error = with_fetcher(make_settings(), hit_twice)
    assert (error.status, error.message, error.retry_after_seconds) == (
        429, "fetch: HTTP 429 Too Many Requests", 1.0)
    [limited_at] = request_starts(server, "/limited.xml")
    [other_at] = request_starts(server, "/other.xml")
    assert other_at - limited_at >= 1.0 - 0.01


def test_503_retry_after_date_longer_than_timeout_fails_later_requests_to_the_host_fast(
    server: FixtureServer,
) -> None:
    retry_at = format_datetime(NOW + timedelta(seconds=120), usegmt=True)
    server.routes["/down.xml"] = Route(status=503, headers={"Retry-After": retry_at})
    server.routes["/other.xml"] = Route(body=FEED)

    async def hit_twice(fetcher: Fetcher) -> tuple[FetchError, FetchError]:
        with pytest.raises(FetchError) as first:
            await fetcher.fetch_url(SOURCE, server.url("/down.xml"))
        with pytest.raises(FetchError) as second:
            await fetcher.fetch_url(SOURCE, server.url("/other.xml"))
        return first.value, second.value

    began = time.monotonic()
    down, deferred = with_fetcher(make_settings(), hit_twice)
    assert time.monotonic() - began < 1.0
    assert (down.status, down.message, down.retry_after_seconds) == (
        503, "fetch: HTTP 503 Service Unavailable", 120.0)
    assert deferred.status is None
    assert deferred.retry_after_seconds is not None and 119 < deferred.retry_after_seconds <= 120
    assert deferred.message == f"fetch: 127.0.0.1:{server.port} asked us to wait (Retry-After), 120 s left"
    assert server.hits["/other.xml"] == 0


# -- address policy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "[::1]:{port}", "10.0.0.1", "169.254.169.254", "localhost:{port}"],
    ids=["ipv4_loopback", "ipv6_loopback", "private_network", "link_local_metadata", "localhost_name"],
)
def test_private_address_is_refused_when_not_allowed(server: FixtureServer, host: str) -> None:
    server.routes["/feed.xml"] = Route(body=FEED)
    url = f"http://{host.format(port=server.port)}/feed.xml"
    with pytest.raises(BlockedAddressError) as raised:
        fetch_source(Settings(timeout=timedelta(seconds=2)), url)
    assert "set allow_private_networks = true in [settings]" in raised.value.message
    assert sum(server.hits.values()) == 0


def test_source_may_opt_into_a_private_network(server: FixtureServer) -> None:
    server.routes["/feed.xml"] = Route(body=FEED)
    intranet = SourceConfig(name="intranet", url=server.url("/feed.xml"), allow_private_network=True)
    result = fetch_source(Settings(timeout=timedelta(seconds=2)), intranet.url, source=intranet)
    assert isinstance(result, Fetched) and result.body == FEED


def test_connection_goes_to_the_vetted_address_without_a_second_lookup(
    server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/feed.xml"] = Route(body=FEED)
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        # first answer loopback (where the server is), then an unroutable TEST-NET-1 address
        address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    fetched = fetch_fetched(make_settings(), f"http://rebind.test:{server.port}/feed.xml")
    assert fetched.body == FEED
    assert lookups == ["rebind.test"]
    assert request_headers(server)["Host"] == f"rebind.test:{server.port}"


# -- HTTPS ----------------------------------------------------------------------------------------------

CERT_PEM = DATA_DIR / "fetch" / "localhost-self-signed.cert.pem"
KEY_PEM = DATA_DIR / "fetch" / "localhost-self-signed.key.pem"


class TlsServer:
    """A loopback HTTPS server answering FEED to every GET and recording the SNI names clients sent."""

    def __init__(self) -> None:
        self.server_names: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(CERT_PEM, KEY_PEM)
        context.sni_callback = lambda _socket, name, _context: self.server_names.append(name)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(FEED)))
                self.end_headers()
                self.wfile.write(FEED)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # a failed handshake raises in accept(), which socketserver drops quietly
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    server = TlsServer()
    try:
        yield server
    finally:
        server.stop()


def resolve_to_loopback(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return real_getaddrinfo("127.0.0.1" if host == name else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_https_checks_the_certificate_against_the_host_name_while_connecting_to_the_vetted_address(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT_PEM))
    tls_server.server_names.clear()
    fetched = fetch_fetched(make_settings(), f"https://localhost:{tls_server.port}/feed.xml")
    assert fetched.body == FEED
    assert tls_server.server_names == ["localhost"]


def test_https_certificate_for_another_name_is_refused(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT_PEM))
    resolve_to_loopback(monkeypatch, "elsewhere.test")
    error = fetch_error(make_settings(), f"https://elsewhere.test:{tls_server.port}/feed.xml")
    assert error.message == f"fetch: TLS handshake with elsewhere.test:{tls_server.port} failed"
    assert "certificate verify failed" in str(error)


def test_https_certificate_from_an_untrusted_issuer_is_refused(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    error = fetch_error(make_settings(), f"https://localhost:{tls_server.port}/feed.xml")
    assert error.message == f"fetch: TLS handshake with localhost:{tls_server.port} failed"


# -- politeness -----------------------------------------------------------------------------------------


def test_six_sources_on_one_host_are_fetched_one_at_a_time_and_spaced(server: FixtureServer) -> None:
    for i in range(6):
        server.routes[f"/channel{i}.xml"] = Route(body=FEED, delay_seconds=0.05)

    async def fetch_all(fetcher: Fetcher) -> list[Fetched]:
        return list(await asyncio.gather(*(fetcher.fetch_url(SOURCE, server.url(f"/channel{i}.xml"))
                                           for i in range(6))))

    results = with_fetcher(make_settings(per_host_delay=timedelta(seconds=0.1)), fetch_all)
    assert [r.body for r in results] == [FEED] * 6
    assert server.max_concurrent_by_host[f"127.0.0.1:{server.port}"] == 1
    starts = sorted(start for _p, _h, _headers, start in server.requests)
    assert len(starts) == 6
    # stamped by the server when it gets to a request, which on a loaded machine lags the client's send by a
    # varying amount: no two requests arrive together, and the whole run spans the five gaps
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.05
    assert starts[-1] - starts[0] >= 5 * 0.1 - 0.03


def two_host_starts(server: FixtureServer, settings: Settings) -> list[float]:
    server.routes["/slow.xml"] = Route(body=FEED, delay_seconds=0.4)

    async def fetch_both(fetcher: Fetcher) -> None:
        await asyncio.gather(fetcher.fetch_url(SOURCE, server.url("/slow.xml", "127.0.0.1")),
                             fetcher.fetch_url(SOURCE, server.url("/slow.xml", "localhost")))

    with_fetcher(settings, fetch_both)
    assert sorted(host for _p, host, _headers, _start in server.requests) == [
        f"127.0.0.1:{server.port}", f"localhost:{server.port}"]
    return request_starts(server, "/slow.xml")


def test_two_hosts_are_fetched_in_parallel(server: FixtureServer) -> None:
    first, second = two_host_starts(server, make_settings(per_host_delay=timedelta(seconds=5)))
    assert second - first < 0.2


def test_global_concurrency_bounds_fetches_across_hosts(server: FixtureServer) -> None:
    first, second = two_host_starts(server, make_settings(concurrency=1))
    assert second - first >= 0.4 - 0.01
