"""Per-host pacing (HostLimiter) and the address policy (classify_address, check_address)."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from aggregator.fetch import hosts
from aggregator.errors import BlockedAddressError

SLOT_SECONDS = 0.05


def run_concurrently(*calls: Callable[[], Awaitable[object]]) -> None:
    async def gather() -> None:
        await asyncio.gather(*(call() for call in calls))

    asyncio.run(asyncio.wait_for(gather(), timeout=10))


class SlotLog:
    """Records when each task entered its slot and how many were inside at once, per host."""

    def __init__(self, limiter: hosts.HostLimiter) -> None:
        self.limiter = limiter
        self.starts: dict[str, list[float]] = {}
        self.inside: dict[str, int] = {}
        self.max_inside: dict[str, int] = {}

    async def use(self, host: str, hold_seconds: float = SLOT_SECONDS) -> None:
        async with self.limiter.slot(host):
            self.starts.setdefault(host, []).append(time.monotonic())
            self.inside[host] = self.inside.get(host, 0) + 1
            self.max_inside[host] = max(self.max_inside.get(host, 0), self.inside[host])
            await asyncio.sleep(hold_seconds)
            self.inside[host] -= 1


def gaps(starts: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(starts)]


def test_one_host_gets_one_request_at_a_time_with_starts_spaced_by_the_delay() -> None:
    log = SlotLog(hosts.HostLimiter(1, timedelta(seconds=0.1)))
    run_concurrently(*[lambda: log.use("paper.example")] * 5)
    assert log.max_inside["paper.example"] == 1
    assert len(log.starts["paper.example"]) == 5
    assert min(gaps(log.starts["paper.example"])) >= 0.1 - 0.005


def test_per_host_concurrency_allows_that_many_at_once() -> None:
    log = SlotLog(hosts.HostLimiter(3, None))
    run_concurrently(*[lambda: log.use("paper.example", 0.2)] * 6)
    assert log.max_inside["paper.example"] == 3


def test_different_hosts_do_not_wait_for_each_other() -> None:
    log = SlotLog(hosts.HostLimiter(1, timedelta(seconds=5)))
    run_concurrently(lambda: log.use("a.example", 0.2), lambda: log.use("b.example", 0.2))
    assert abs(log.starts["a.example"][0] - log.starts["b.example"][0]) < 0.1


def test_host_names_differing_in_case_share_one_pace() -> None:
    log = SlotLog(hosts.HostLimiter(1, None))
    run_concurrently(lambda: log.use("Paper.Example", 0.2), lambda: log.use("paper.example", 0.2))
    first, second = sorted(log.starts["Paper.Example"] + log.starts["paper.example"])
    assert second - first >= 0.2 - 0.005


def test_deferred_host_makes_later_requests_wait_and_leaves_other_hosts_alone() -> None:
    limiter = hosts.HostLimiter(1, None)
    log = SlotLog(limiter)

    async def defer_then_use() -> float:
        began = time.monotonic()
        limiter.defer("busy.example", 0.3)
        await asyncio.gather(log.use("busy.example", 0), log.use("calm.example", 0))
        return began

    began = asyncio.run(defer_then_use())
    assert log.starts["busy.example"][0] - began >= 0.3 - 0.005
    assert log.starts["calm.example"][0] - began < 0.1


def test_defer_never_shortens_an_existing_deferral() -> None:
    limiter = hosts.HostLimiter(1, None)

    async def scenario() -> float:
        began = time.monotonic()
        limiter.defer("busy.example", 0.3)
        limiter.defer("busy.example", 0.01)
        async with limiter.slot("busy.example"):
            return time.monotonic() - began

    assert asyncio.run(scenario()) >= 0.3 - 0.005


def test_deferral_longer_than_the_caller_will_wait_raises_with_the_time_left() -> None:
    limiter = hosts.HostLimiter(1, None)

    async def scenario() -> None:
        limiter.defer("busy.example", 120)
        async with limiter.slot("busy.example", max_deferral_seconds=1.0):
            pytest.fail("entered a slot of a host deferred for 120 s")

    with pytest.raises(hosts.HostDeferredError) as raised:
        asyncio.run(scenario())
    assert raised.value.host == "busy.example"
    assert 119 < raised.value.remaining_seconds <= 120


def test_deferral_within_what_the_caller_will_wait_is_waited_out() -> None:
    limiter = hosts.HostLimiter(1, None)

    async def scenario() -> float:
        began = time.monotonic()
        limiter.defer("busy.example", 0.2)
        async with limiter.slot("busy.example", max_deferral_seconds=1.0):
            return time.monotonic() - began

    assert asyncio.run(scenario()) >= 0.2 - 0.005


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", "public"),
        ("2606:4700::1", "public"),
        ("::ffff:93.184.216.34", "public"),
        ("64:ff9b::5db8:d822", "public"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),
        ("2002:a00:1::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("::a00:1", "reserved"),
        ("100.64.0.1", "non-global"),
        ("2001::1", "private"),
    ],
    ids=lambda value: str(value),
)
def test_addresses_are_classified_with_embedded_ipv4_judged_by_itself(address: str, kind: str) -> None:
    assert hosts.classify_address(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("host", "expected"),
    [("93.184.216.34", ("93.184.216.34",)), ("2606:4700::1", ("2606:4700::1",))],
    ids=["ipv4_literal", "ipv6_literal"],
)
def test_public_literal_is_returned_as_its_own_vetted_address(host: str, expected: tuple[str, ...]) -> None:
    addresses = asyncio.run(hosts.check_address(host, 80, allow_private=False, source_name="s", url="u"))
    assert addresses == tuple(ipaddress.ip_address(a) for a in expected)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "localhost", "127.1", "::ffff:192.168.0.1"],
    ids=["ipv4_loopback", "ipv6_loopback", "private_literal", "cloud_metadata_link_local", "localhost_name",
         "short_form_loopback", "ipv4_mapped_private"],
)
def test_non_public_address_is_refused_unless_allowed(host: str) -> None:
    with pytest.raises(BlockedAddressError) as raised:
        asyncio.run(hosts.check_address(host, 80, allow_private=False, source_name="feed-a", url="http://x/"))
    assert raised.value.source == "feed-a"
    assert raised.value.url == "http://x/"
    assert raised.value.message.startswith(f"fetch: {host} resolves to ")
    allowed = asyncio.run(hosts.check_address(host, 80, allow_private=True, source_name="feed-a", url="u"))
    assert allowed


def test_blocked_address_message_says_how_to_allow_it() -> None:
    with pytest.raises(BlockedAddressError) as raised:
        asyncio.run(hosts.check_address("10.1.2.3", 80, allow_private=False, source_name="s", url="u"))
    assert str(raised.value) == (
        "fetch: 10.1.2.3 resolves to private address 10.1.2.3; set allow_private_networks = true in "
        "[settings] or allow_private_network = true on this source"
    )


def fake_getaddrinfo(answers: dict[str, list[str]]) -> Callable[..., list[Any]]:
    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    return getaddrinfo


def test_name_with_any_private_address_among_public_ones_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo({"mixed.test": ["93.184.216.34", "10.9.8.7"]}))
    with pytest.raises(BlockedAddressError, match="mixed.test resolves to private address 10.9.8.7"):
        asyncio.run(hosts.check_address("mixed.test", 80, allow_private=False, source_name="s", url="u"))


def test_name_is_resolved_again_on_every_check(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"rebind.test": ["93.184.216.34"]}
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(answers))

    async def check_twice() -> tuple[hosts.IPAddress, ...]:
        first = await hosts.check_address("rebind.test", 80, allow_private=False, source_name="s", url="u")
        answers["rebind.test"] = ["10.0.0.1"]
        await hosts.check_address("rebind.test", 80, allow_private=False, source_name="s", url="u")
        return first

    with pytest.raises(BlockedAddressError, match="private address 10.0.0.1"):
        asyncio.run(check_twice())


def test_duplicate_answers_are_returned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo",
                        fake_getaddrinfo({"dup.test": ["93.184.216.34", "93.184.216.34", "2606:4700::1"]}))
    addresses = asyncio.run(hosts.check_address("dup.test", 80, allow_private=False, source_name="s", url="u"))
    assert addresses == (ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:4700::1"))


def test_dns_failure_is_left_to_the_caller_to_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo({}))
    with pytest.raises(socket.gaierror):
        asyncio.run(hosts.check_address("nowhere.test", 80, allow_private=False, source_name="s", url="u"))


def test_the_pacing_table_forgets_idle_hosts_beyond_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts, "MAX_TRACKED_HOSTS", 50)
    limiter = hosts.HostLimiter(1, None)

    async def visit_many() -> None:
        for number in range(500):
            async with limiter.slot(f"host{number}.example"):
                pass
        limiter.defer("deferred.example", 60)
        async with limiter.slot("busy.example"):
            for number in range(500, 600):  # the host in use and the deferred one are kept meanwhile
                async with limiter.slot(f"host{number}.example"):
                    pass
            assert limiter.tracked_hosts <= 52

    asyncio.run(visit_many())
    assert limiter.tracked_hosts <= 52
    assert limiter._paces.keys() >= {"busy.example", "deferred.example"}  # what was kept
