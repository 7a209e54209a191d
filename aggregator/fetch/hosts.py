"""Be a polite and safe client per host: limit concurrency and pace per host, and refuse non-public addresses.

`HostLimiter` spaces request starts to one host (many sources on one newspaper host are polled one after
another, never in a burst) and carries a host-wide Retry-After. `check_address` resolves a host at every
request and refuses private, loopback, link-local and other non-global addresses (SSRF: a feed URL or a
redirect must not reach the intranet or a cloud metadata endpoint unless the config allows it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from aggregator.errors import BlockedAddressError, reduce_error

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressKind = Literal[
    "public", "loopback", "link-local", "unspecified", "multicast", "private", "reserved", "non-global"
]

#: RFC 6052 §2.1 well-known NAT64 prefix: on an IPv6-only network with DNS64 every IPv4 site resolves into
#: it, so the embedded IPv4 address decides (and 64:ff9b::10.0.0.1 is as private as 10.0.0.1)
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
#: hosts whose pacing is remembered; beyond it the least recently used idle ones are forgotten (issue 10)
MAX_TRACKED_HOSTS = 1024


class HostDeferredError(Exception):
    """A host asked for a pause (Retry-After) longer than the caller will wait; fetch turns it into a FetchError."""

    def __init__(self, host: str, remaining_seconds: float) -> None:
        super().__init__(f"{host} deferred for another {remaining_seconds:.0f} s")
        self.host = host
        self.remaining_seconds = remaining_seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_error(self)


@dataclass
class _HostPace:
    """Mutable pacing state of one host. No business logic."""

    semaphore: asyncio.Semaphore
    start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: monotonic time before which no request to this host may start
    next_start: float = 0.0
    #: monotonic time until which the host asked us to stay away (Retry-After)
    deferred_until: float = 0.0
    #: requests holding or waiting for a slot
    users: int = 0


class HostLimiter:
    """At most N concurrent requests per host, request starts spaced by a minimum gap, host-wide deferral.

    Times come from the monotonic clock (wall-clock jumps must not stall or burst polling). Waiting is
    asyncio.sleep until the computed moment: no busy loop. One instance per event loop.
    """

    def __init__(self, per_host_concurrency: int, per_host_delay: timedelta | None) -> None:
        if per_host_concurrency < 1:
            raise ValueError(f"per_host_concurrency must be >= 1, not {per_host_concurrency}")
        self._concurrency = per_host_concurrency
        self._delay_seconds = per_host_delay.total_seconds() if per_host_delay is not None else 0.0
        #: least recently used first; bounded by MAX_TRACKED_HOSTS (a daemon meets new hosts for months)
        self._paces: OrderedDict[str, _HostPace] = OrderedDict()

    @property
    def tracked_hosts(self) -> int:
        return len(self._paces)

    @asynccontextmanager
    async def slot(self, host: str, *, max_deferral_seconds: float | None = None) -> AsyncIterator[None]:
        """Wait for a free slot, the gap since the last start and any deferral; hold the slot while inside.

        With `max_deferral_seconds`, a deferral longer than that raises HostDeferredError instead of
        holding the caller (and its worker) for the rest of a long Retry-After.
        """
        pace = self._pace(host)
        pace.users += 1
        try:
            async with pace.semaphore:
                # the lock makes waiters take start times in arrival order (asyncio.Lock is FIFO)
                async with pace.start_lock:
                    # a loop, not one sleep: defer() may push deferred_until while we sleep
                    while True:
                        now = time.monotonic()
                        deferred_seconds = pace.deferred_until - now
                        if max_deferral_seconds is not None and deferred_seconds > max_deferral_seconds:
                            raise HostDeferredError(host, deferred_seconds)
                        wait_seconds = max(pace.next_start, pace.deferred_until) - now
                        if wait_seconds <= 0:
                            break
                        await asyncio.sleep(wait_seconds)
                    pace.next_start = time.monotonic() + self._delay_seconds
                yield
        finally:
            pace.users -= 1

    def defer(self, host: str, seconds: float) -> None:
        """Make every later request to `host` wait `seconds` from now (never shortens a deferral)."""
        pace = self._pace(host)
        pace.deferred_until = max(pace.deferred_until, time.monotonic() + seconds)

    def _pace(self, host: str) -> _HostPace:
        key = host.lower()
        pace = self._paces.get(key)
        if pace is None:
            pace = self._paces[key] = _HostPace(semaphore=asyncio.Semaphore(self._concurrency))
            self._forget_idle_hosts()
        else:
            self._paces.move_to_end(key)
        return pace

    def _forget_idle_hosts(self) -> None:
        """Drop the least recently used hosts beyond MAX_TRACKED_HOSTS whose pacing no longer matters:
        no request in flight or waiting, the gap since the last start over, no deferral running."""
        excess = len(self._paces) - MAX_TRACKED_HOSTS
        if excess <= 0:
            return
        now = time.monotonic()
        for key in list(self._paces)[:-1]:  # never the host just added (the last)
            if excess <= 0:
                break
            pace = self._paces[key]
            if pace.users == 0 and pace.next_start <= now and pace.deferred_until <= now:
                del self._paces[key]
                excess -= 1


def classify_address(address: IPAddress) -> AddressKind:
    """Which kind of address this is; only "public" may be fetched without an opt-in.

    IPv6 forms that embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16)
    are judged by the embedded address: CPython 3.11.7 calls ::ffff:8.8.8.8 reserved and 2002:a00:1::
    global, both wrong for this purpose, and its range tables were fixed late (CVE-2024-4032, gh-113171).
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None:
            return classify_address(embedded)
    # order matters: 127.0.0.1 and 169.254.x are also is_private; name the most specific kind
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    # e.g. 100.64.0.0/10 (carrier-grade NAT, RFC 6598): neither private nor global
    if not address.is_global:
        return "non-global"
    return "public"


async def check_address(
    host: str, port: int, *, allow_private: bool, source_name: str, url: str
) -> tuple[IPAddress, ...]:
    """Resolve `host` now and return its addresses, all vetted; the caller connects only to these.

    Resolved at every request and redirect hop because DNS answers change between polls, and the
    answer is returned so the connection goes to the very address that was checked (no second lookup
    for a rebinding DNS server to answer differently). IP literals resolve to themselves.
    Raises BlockedAddressError for any non-public address unless `allow_private`; socket.gaierror
    (DNS failure) passes to the caller's error mapping.
    """
    addresses = [literal] if (literal := _ip_literal(host)) is not None else await _resolve(host, port)
    if allow_private:
        return tuple(addresses)
    for address in addresses:
        kind = classify_address(address)
        if kind != "public":
            raise BlockedAddressError(
                source_name,
                url,
                f"fetch: {host} resolves to {kind} address {address}; set allow_private_networks = true "
                "in [settings] or allow_private_network = true on this source",
            )
    return tuple(addresses)


def _ip_literal(host: str) -> IPAddress | None:
    """The address an IP literal names, without a resolver round trip (getaddrinfo runs in a thread)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses
