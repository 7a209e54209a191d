"""Fetch a source's document over HTTP, politely and safely; the only module that imports httpx.

One GET is a chain of hops, each vetted (address policy, host pacing, global bound) and bounded in time;
redirects are followed here, not by httpx, so every hop is checked. The body is decoded by us with a
size bound, so neither a huge body nor a gzip bomb gets into memory. Every foreign exception becomes a
FetchError in `_map_errors`, once.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

import httpcore
import httpx

from aggregator import schedule
from aggregator.fetch import hosts
from aggregator.config.load import Settings, SourceConfig
from aggregator.errors import FetchError
from aggregator.models import Fetched, FetchResult, NotModified, SourceState

#: what we hope to get back, by source kind; */* last because servers do send feeds as text/plain
ACCEPT_BY_KIND = {
    "feed": "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5",
    "json": "application/json, text/javascript;q=0.9, */*;q=0.5",
    "html": "text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
}
#: only codings `_BodyDecoder` can decode with an output bound (httpx would also offer br/zstd when installed)
ACCEPT_ENCODING = "gzip, deflate"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: RFC 9110 §15.4.2 and §15.4.9: the target resource has a new permanent URI
PERMANENT_REDIRECT_STATUSES = frozenset({301, 308})
#: RFC 9110 §10.2.3: Retry-After accompanies these (and 3xx, which we do not wait on)
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: httpx's timeouts bound each socket operation; a server dripping a byte per read never trips them, so a
#: whole hop (DNS, connect, headers, body) must also finish within this many `timeout`s
WHOLE_RESPONSE_TIMEOUTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
#: response headers kept as the source's conditional-GET validators (RFC 9110 §13.1)
VALIDATOR_HEADERS = ("etag", "last-modified")
#: a longer validator is not stored (a real ETag is a hash, a Last-Modified a 29-character date)
MAX_VALIDATOR_CHARS = 1024


class Fetcher(Protocol):
    """What update needs from the network; tests plug in a fake."""

    async def fetch_source(self, source: SourceConfig, url: str, state: SourceState) -> FetchResult:
        """Conditional GET of a source document with the validators in `state`."""
        ...

    async def fetch_url(self, source: SourceConfig, url: str) -> Fetched:
        """Plain GET (e.g. an article detail page) under the source's limits and address policy."""
        ...


@dataclass(frozen=True, slots=True)
class _Pin:
    """The vetted addresses the next connection to host:port must use. No business logic."""

    host: str
    port: int
    addresses: tuple[hosts.IPAddress, ...]


_PINNED: contextvars.ContextVar[_Pin | None] = contextvars.ContextVar("aggregator_fetch_pin", default=None)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses check_address vetted for this request, never re-resolving the name.

    A second lookup would let a rebinding DNS server answer "public" to the check and "10.0.0.1" to the
    connect. TLS still verifies the certificate against the host name: httpcore passes the name, not
    our address, as server_hostname. No business logic.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,  # httpx passes none: we configure no socket options
    ) -> httpcore.AsyncNetworkStream:
        pin = _PINNED.get()
        if pin is None or (pin.host, pin.port) != (host, port):
            # only _send_hop opens connections, always under a pin: reaching this is a bug
            raise RuntimeError(f"fetch: connection to {host}:{port} without vetted addresses")
        failures: list[httpcore.ConnectError | httpcore.ConnectTimeout] = []
        for address in pin.addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failures.append(e)
        raise failures[-1]

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with `_PinnedBackend` underneath. No business logic.

    httpx takes no network backend or resolver (encode/httpx#1319: "We don't currently support
    customising DNS resolution"), but httpcore's pool does, so the pool built by the parent is
    replaced by an identical one with our backend. httpx's request conversion and exception
    mapping stay in force.
    """

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(),
        )


@dataclass(frozen=True, slots=True)
class _Hop:
    """One request/response of a redirect chain. No business logic."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    #: absolute target of a redirect
    location: str | None = None


class _BodyDecoder:
    """Content-Encoding decoder that never returns more than asked for (the gzip-bomb guard).

    httpx decodes each network chunk whole: 64 KiB of gzip can inflate to ~64 MiB before any cap is
    checked. zlib's max_length bounds the output instead. No business logic.
    """

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._started = False
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(coding)
        self._inflater = None if wbits is None else zlib.decompressobj(wbits)

    @classmethod
    def for_header(cls, value: str | None) -> _BodyDecoder | str:
        """A decoder for the Content-Encoding value, or the coding we cannot decode."""
        codings = [c.strip().lower() for c in (value or "").split(",")]
        codings = [{"x-gzip": "gzip"}.get(c, c) for c in codings if c and c != "identity"]
        if not codings:
            return cls("identity")
        if len(codings) == 1 and codings[0] in ("gzip", "deflate"):
            return cls(codings[0])
        return ", ".join(codings)

    def decode(self, data: bytes, max_bytes: int) -> bytes:
        """Decoded bytes of `data`, at most `max_bytes` of them (more is over the cap anyway)."""
        if self._inflater is None:
            return data
        try:
            out = self._inflater.decompress(data, max_bytes)
        except zlib.error:
            if self._coding != "deflate" or self._started:
                raise
            # RFC 9110 §8.4.1.2 says zlib-wrapped, but some servers send raw deflate; httpx's
            # DeflateDecoder makes the same retry
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflater.decompress(data, max_bytes)
        self._started = True
        # data after the end of a gzip member is ignored, as httpx and browsers do
        return out


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HttpFetcher:
    """The real Fetcher: `async with HttpFetcher(settings) as fetcher: await fetcher.fetch_source(...)`."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = _utc_now,
                 limiter: hosts.HostLimiter | None = None) -> None:
        """`limiter` replaces the in-process per-host limits (a cluster shares them through the store)."""
        self._settings = settings
        self._clock = clock
        self._timeout_seconds = settings.timeout.total_seconds()
        self._deadline_seconds = self._timeout_seconds * WHOLE_RESPONSE_TIMEOUTS
        self._limiter = limiter or hosts.HostLimiter(settings.per_host_concurrency, settings.per_host_delay)
        self._global_slots = asyncio.Semaphore(settings.concurrency)
        self._exit_stack = AsyncExitStack()
        #: keyed by "may reach private addresses": pooled connections are reused per host, and one opened
        #: for a source allowed into the intranet must never carry a request of a source that is not
        self._clients: dict[bool, httpx.AsyncClient] = {}

    async def __aenter__(self) -> Self:
        # certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when the deployment sets them
        ssl_context = httpx.create_ssl_context(trust_env=True)
        limits = httpx.Limits(max_connections=self._settings.concurrency,
                              max_keepalive_connections=self._settings.concurrency)
        for allow_private in (False, True):
            client = httpx.AsyncClient(
                transport=_PinnedTransport(limits, ssl_context),
                headers={"User-Agent": self._settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
                timeout=httpx.Timeout(self._timeout_seconds),
                follow_redirects=False,
                # a proxy from the environment would make the address check vet the wrong host
                trust_env=False,
            )
            self._clients[allow_private] = await self._exit_stack.enter_async_context(client)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._clients.clear()
        await self._exit_stack.aclose()

    async def fetch_source(self, source: SourceConfig, url: str, state: SourceState) -> FetchResult:
        """Conditional GET (RFC 9110 §13.1): the stored validators go out, a 304 comes back as NotModified."""
        headers = {"Accept": ACCEPT_BY_KIND[source.kind]}
        # a validator stored by an older version may be unsendable: it is left out, not sent to fail forever
        if etag := sendable_validator(state.etag):
            headers["If-None-Match"] = etag
        if last_modified := sendable_validator(state.last_modified):
            headers["If-Modified-Since"] = last_modified
        hop, permanent_redirect = await self._get(source, url, headers)
        if hop.status == 304:
            return NotModified(url=url, headers=_trusted_validators(hop.headers), fetched_at=self._clock())
        return self._to_fetched(source, url, hop, permanent_redirect)

    async def fetch_url(self, source: SourceConfig, url: str) -> Fetched:
        # detail pages of a JSON source are JSON (eastmoney detail API); of the others, HTML
        accept = ACCEPT_BY_KIND["json" if source.kind == "json" else "html"]
        hop, permanent_redirect = await self._get(source, url, {"Accept": accept})
        return self._to_fetched(source, url, hop, permanent_redirect)

    def _to_fetched(self, source: SourceConfig, url: str, hop: _Hop, permanent_redirect: str | None) -> Fetched:
        return Fetched(url=url, final_url=hop.url, status=hop.status,
                       headers=_trusted_validators(hop.headers), body=hop.body, fetched_at=self._clock(),
                       permanent_redirect=permanent_redirect)

    async def _get(self, source: SourceConfig, url: str, headers: dict[str, str]) -> tuple[_Hop, str | None]:
        """Follow redirects hop by hop; return the last hop and where the source permanently moved.

        The move is the end of the unbroken run of 301/308 hops from `url`: after 301→A, 301→B the source
        lives at B; after 302→A, 301→B it still lives at `url`.
        """
        allow_private = self._settings.allow_private_networks or source.allow_private_network
        if not self._clients:
            raise RuntimeError("fetch: HttpFetcher used outside `async with`")
        client = self._clients[allow_private]
        hop_url = url
        permanent_redirect: str | None = None
        moved_so_far = True
        for _ in range(self._settings.max_redirects + 1):
            hop = await self._send_hop(client, source, hop_url, headers, allow_private=allow_private)
            if hop.location is None:
                return hop, permanent_redirect
            moved_so_far = moved_so_far and hop.status in PERMANENT_REDIRECT_STATUSES
            if moved_so_far:
                permanent_redirect = hop.location
            hop_url = hop.location
        raise FetchError(source.name, url,
                         f"fetch: more than {self._settings.max_redirects} redirects (next was {hop_url})")

    async def _send_hop(
        self, client: httpx.AsyncClient, source: SourceConfig, hop_url: str, headers: dict[str, str],
        *, allow_private: bool,
    ) -> _Hop:
        with _map_errors(source.name, hop_url, hop_url, self._timeout_seconds, self._deadline_seconds):
            url = httpx.URL(hop_url)
        if url.scheme not in DEFAULT_PORTS:
            raise FetchError(source.name, hop_url, f"fetch: unsupported URL scheme {url.scheme!r}")
        # the name exactly as httpcore will hand it to _PinnedBackend (IDNA-encoded, IPv6 unbracketed)
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS[url.scheme]
        # httpx accepts any port number, and getaddrinfo silently wraps one above 65535
        if not host or not 0 < port < 65536:
            raise FetchError(source.name, hop_url, "fetch: invalid URL (host or port)")
        # messages name the port only when the URL does
        where = host if url.port is None else f"{host}:{url.port}"
        with _map_errors(source.name, hop_url, where, self._timeout_seconds, self._deadline_seconds):
            # waiting up to one timeout for a host's Retry-After is like a slow answer; longer is the
            # scheduler's business (the source backs off with retry_after_seconds instead)
            async with self._limiter.slot(host, max_deferral_seconds=self._timeout_seconds), \
                    self._global_slots, asyncio.timeout(self._deadline_seconds):
                addresses = await hosts.check_address(host, port, allow_private=allow_private,
                                                      source_name=source.name, url=hop_url)
                token = _PINNED.set(_Pin(host, port, addresses))
                try:
                    async with client.stream("GET", url, headers=headers) as response:
                        return await self._read_hop(source, hop_url, host, headers, response)
                finally:
                    _PINNED.reset(token)

    async def _read_hop(
        self, source: SourceConfig, hop_url: str, host: str, request_headers: Mapping[str, str],
        response: httpx.Response,
    ) -> _Hop:
        status = response.status_code
        # httpx lower-cases names on items() and joins repeated fields with ", " (RFC 9110 §5.3)
        headers = dict(response.headers.items())
        if status >= 400:
            raise self._status_error(source, hop_url, host, status, headers)
        if status in REDIRECT_STATUSES:
            location = headers.get("location")
            if not location:
                raise FetchError(source.name, hop_url, f"fetch: HTTP {status} redirect without a Location",
                                 status=status)
            return _Hop(hop_url, status, headers, location=str(response.url.join(location)))
        conditional = "If-None-Match" in request_headers or "If-Modified-Since" in request_headers
        if status == 304 and conditional:
            # a 304 has no body (RFC 9110 §15.4.5), but httpcore hands the connection back to the pool only
            # after reading the end of the message: unread, every 304 closed its connection and the next
            # request opened a new one (200 connects in a pass of 200 sources on one host)
            async for _ in response.aiter_raw():
                pass
            return _Hop(hop_url, status, headers)
        if not 200 <= status < 300:
            raise FetchError(source.name, hop_url, f"fetch: unexpected {_describe_status(status)}",
                             status=status)
        body = await _read_capped(response, self._settings.max_response_bytes, source.name, hop_url)
        return _Hop(hop_url, status, headers, body)

    def _status_error(
        self, source: SourceConfig, hop_url: str, host: str, status: int, headers: Mapping[str, str]
    ) -> FetchError:
        retry_after_seconds: float | None = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = schedule.parse_retry_after(headers.get("retry-after"), self._clock())
            if retry_after is not None:
                retry_after_seconds = retry_after.total_seconds()
                # host-wide: the other sources on this newspaper host are asked to wait too
                self._limiter.defer(host, retry_after_seconds)
        return FetchError(source.name, hop_url, f"fetch: {_describe_status(status)}", status=status,
                          retry_after_seconds=retry_after_seconds)


async def _read_capped(response: httpx.Response, max_bytes: int, source_name: str, url: str) -> bytes:
    """The decoded body, refused as soon as it would exceed `max_bytes` (decoded, not on the wire)."""
    too_large = f"fetch: response body exceeds max_response_bytes ({max_bytes} bytes)"
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(source_name, url, too_large)
    decoder = _BodyDecoder.for_header(response.headers.get("content-encoding"))
    if isinstance(decoder, str):
        raise FetchError(source_name, url, f"fetch: unsupported Content-Encoding {decoder!r}")
    chunks: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():
        # one byte more than allowed is enough to know the cap is exceeded
        chunk = decoder.decode(raw, max_bytes - size + 1)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(source_name, url, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def sendable_validator(value: str | None) -> str | None:
    """`value` when it can go back to the server as a header (visible ASCII and inner spaces, at most
    MAX_VALIDATOR_CHARS), else None. Validators come from servers we do not control: a non-ASCII ETag
    sent back made httpx raise UnicodeEncodeError on every later poll (issue 10)."""
    if value is None or len(value) > MAX_VALIDATOR_CHARS:
        return None
    value = value.strip()
    if not value or not all(" " <= char <= "~" for char in value):
        return None
    return value


def _trusted_validators(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The response headers without an ETag or Last-Modified that could not be sent back."""
    unsendable = [name for name in VALIDATOR_HEADERS if name in headers and sendable_validator(headers[name]) is None]
    if not unsendable:
        return headers
    return {name: value for name, value in headers.items() if name not in unsendable}


def _describe_status(status: int) -> str:
    """"HTTP 503 Service Unavailable": the registered phrase, not the server's (HTTP/2 sends none)."""
    return f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()


@contextmanager
def _map_errors(
    source_name: str, url: str, host: str, timeout_seconds: float, deadline_seconds: float
) -> Iterator[None]:
    """Turn each foreign exception of one hop into a FetchError saying what failed; most specific first.

    Our own FetchErrors pass through; anything not listed is a bug and passes through too.
    """
    try:
        yield
    except hosts.HostDeferredError as e:
        raise FetchError(source_name, url, f"fetch: {host} asked us to wait (Retry-After), "
                         f"{e.remaining_seconds:.0f} s left", retry_after_seconds=e.remaining_seconds) from e
    except httpx.ConnectTimeout as e:
        raise FetchError(source_name, url,
                         f"fetch: connecting to {host} timed out after {timeout_seconds:g} s") from e
    except httpx.ReadTimeout as e:
        raise FetchError(source_name, url,
                         f"fetch: {host} sent nothing for {timeout_seconds:g} s (read timeout)") from e
    except httpx.WriteTimeout as e:
        raise FetchError(source_name, url,
                         f"fetch: sending to {host} timed out after {timeout_seconds:g} s") from e
    except httpx.PoolTimeout as e:
        raise FetchError(source_name, url,
                         f"fetch: no free connection for {host} within {timeout_seconds:g} s") from e
    except httpx.ConnectError as e:
        if _find_cause(e, ssl.SSLError) is not None:
            message = f"fetch: TLS handshake with {host} failed"
        elif _find_cause(e, ConnectionRefusedError) is not None:
            message = f"fetch: {host} refused the connection"
        else:
            message = f"fetch: cannot connect to {host}"
        raise FetchError(source_name, url, message) from e
    except httpx.ProtocolError as e:
        raise FetchError(source_name, url, f"fetch: HTTP protocol error talking to {host}") from e
    except httpx.NetworkError as e:
        raise FetchError(source_name, url, f"fetch: connection to {host} broke") from e
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise FetchError(source_name, url, "fetch: invalid URL") from e
    except TimeoutError as e:
        raise FetchError(source_name, url, f"fetch: {host} did not deliver the whole response "
                         f"within {deadline_seconds:g} s") from e
    except socket.gaierror as e:
        raise FetchError(source_name, url, f"fetch: DNS lookup of {host} failed") from e
    except zlib.error as e:
        raise FetchError(source_name, url, f"fetch: compressed body from {host} is corrupt") from e
    except UnicodeError as e:  # httpx encodes header values and IDNA host names; neither may wedge a source
        raise FetchError(source_name, url, f"fetch: the request to {host} cannot be encoded") from e


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` down the cause chain (httpx → httpcore → OSError)."""
    current: BaseException | None = exc
    while current is not None and not isinstance(current, kind):
        current = current.__cause__ or current.__context__
    return current
