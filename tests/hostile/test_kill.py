"""kill -9 of `aggregator poll` at random points, and SIGKILL of a parse worker, against the real store backends.

After any number of kills the next `poll` opens the store at once (no orphan holds the writer
lock), and once it has run: nothing committed is lost, nothing is stored or published twice, no
published file is half-written, and every category a killed poll changed but did not publish is
published (it was owed).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixture_server import FixtureServer, Route
from tests.hostile import documents as doc
from tests.hostile.harness import ExtraSource, HealthyItem, HealthySource, Installation, kill_leftovers

KILLS = 30
#: how long the final poll may wait for the writer lock: a kill must not leave it held
LOCK_TIMEOUT_SECONDS = "5"


def growing_sources(iteration: int) -> tuple[HealthySource, ...]:
    """Four small sources whose item lists grow by one each iteration (items are never removed)."""
    return tuple(
        HealthySource(
            f"grow-{k}", f"grow{k}", f"/grow{k}.{'atom' if k % 2 else 'rss'}",
            tuple(HealthyItem(f"NW2022{k:02d}{n:012d}", f"第{k}源 第{n}条") for n in range(iteration + 2)),
            atom=bool(k % 2), version=iteration,
        )
        for k in range(4)
    )


@pytest.mark.slow
def test_kill_9_of_poll_at_random_points_loses_nothing_duplicates_nothing_and_leaves_nothing_owed(
    tmp_path: Path, feed_server: FixtureServer, store_url: str
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    installation = Installation(tmp_path, feed_server, store_url, healthy=growing_sources(0))
    installation.write()
    fetching_seconds = _seconds_from_first_request_to_exit(installation)
    started: list[int] = []
    try:
        for iteration in range(1, KILLS + 1):
            installation.healthy = growing_sources(iteration)
            installation.write()
            served = installation.requests_served()
            process = installation.start("-q", "poll", "--all", "--lock-timeout", LOCK_TIMEOUT_SECONDS)
            started.append(process.pid)
            # one kill in ten lands while it starts up or waits for the lock; the others while it
            # fetches, parses, stores or publishes (start-up is most of a small poll's time)
            if rng.random() >= 0.1:
                _wait_until(lambda: installation.requests_served() > served or process.poll() is not None)
            time.sleep(rng.uniform(0, fetching_seconds))
            if process.poll() is None:  # else it finished first: its exit code is checked below
                os.kill(process.pid, signal.SIGKILL)
            returncode = process.wait()
            assert returncode in (0, -signal.SIGKILL), f"seed {seed}: poll {iteration} exited {returncode}"

        final = installation.run("-q", "poll", "--all", "--lock-timeout", LOCK_TIMEOUT_SECONDS)
    finally:
        for pid in started:
            kill_leftovers(pid)
    assert final.returncode == 0, f"seed {seed}: the poll after {KILLS} kills exited {final.returncode}: {final.stderr}"
    installation.assert_healthy_published()
    installation.assert_every_published_file_is_well_formed()
    status = installation.status()
    for source in installation.healthy:
        assert status[source.name]["items"] == len(source.items), (seed, source.name)


@pytest.mark.slow
def test_worker_killed_mid_parse_fails_its_source_only_and_the_pass_goes_on(
    tmp_path: Path, feed_server: FixtureServer
) -> None:
    """The victim's document takes seconds to parse; the healthy sources answer late, so they are
    parsed after the kill, by a pool that must have been rebuilt."""
    installation = Installation(tmp_path, feed_server, str(tmp_path / "store" / "aggregator.db"),
                                settings={"timeout": '"20s"'})
    feed_server.routes["/victim.rss"] = Route(doc.many_items(30_000))
    victim_source = ExtraSource("victim", "/victim.rss", category="victim")
    installation.extra.append(victim_source)
    installation.write()
    for source in installation.healthy:
        feed_server.routes[source.path].delay_seconds = 4.0
    process = installation.start("-q", "poll", "--all")
    try:
        worker = _busy_descendant(process.pid, deadline_seconds=30)
        os.kill(worker, signal.SIGKILL)
        assert process.wait(timeout=90) == 0
    finally:
        kill_leftovers(process.pid)
    status = installation.status()
    installation.assert_healthy_published()
    for source in installation.healthy:
        assert status[source.name]["last_error"] is None
    victim = status[victim_source.name]
    assert victim["last_error"] is None or victim["last_error_stage"] in ("parse", "update"), victim
    # the next poll works, and the victim recovers once its server answers a small document again
    feed_server.routes["/victim.rss"] = Route(doc.many_items(3))
    installation.poll()
    assert installation.status()[victim_source.name]["last_error"] is None


def _seconds_from_first_request_to_exit(installation: Installation) -> float:
    """Run one whole poll and time its part after start-up: fetch, parse, store, publish."""
    served = installation.requests_served()
    process = installation.start("-q", "poll", "--all")
    try:
        _wait_until(lambda: installation.requests_served() > served)
        first_request = time.monotonic()
        assert process.wait(timeout=60) == 0
    finally:
        kill_leftovers(process.pid)
    return time.monotonic() - first_request


def _wait_until(condition: Callable[[], bool], timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _busy_descendant(pid: int, deadline_seconds: float) -> int:
    """The descendant that burns the most CPU (at least 50 ms in half a second): the worker parsing the victim."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        before = {child: _cpu_ticks(child) for child in _descendants(pid)}
        time.sleep(0.5)
        spent = {child: _cpu_ticks(child) - ticks for child, ticks in before.items()}
        busy = [child for child, ticks in spent.items() if ticks >= 0.05 * os.sysconf("SC_CLK_TCK")]
        if busy:
            return max(busy, key=spent.__getitem__)
    raise AssertionError(f"no worker of poll {pid} started parsing within {deadline_seconds} s")
