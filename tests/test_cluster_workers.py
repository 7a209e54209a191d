"""Many `aggregator run --role worker` processes on one PostgreSQL, as docker-compose.yml runs them.

Checked from the loopback servers' own request logs (start and end of every request): every source is
polled, none by two workers at once, no host above its per-host concurrency, and a worker killed with
SIGKILL mid-run leaves its sources to the others once its lease runs out. Intervals and the lease are
seconds long so the whole run stays within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cluster_processes import AggregatorProcess, close_all, compose_command, wait_until
from tests.conftest import fresh_store_url
from tests.fixture_server import FixtureServer, Route

SOURCES = 500
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
PER_HOST_CONCURRENCY = 2
LEASE_SECONDS = 2.0
#: how late the server may stamp a request already sent when its worker was killed
IN_FLIGHT_STAMP_SECONDS = 0.25
SLOW_SECONDS = 1.0
RUN_SECONDS = 45.0


def _rss(name: str, article_ids: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{name} {code}</title><link>https://finance.example.com/a/{code}.html</link>"
        f"<description>&lt;p&gt;body of {code}&lt;/p&gt;</description></item>" for code in article_ids)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>'
            f"<link>https://example.com/</link>{items}</channel></rss>").encode()


@pytest.fixture
def servers() -> Iterator[list[FixtureServer]]:
    started = [FixtureServer(address).start() for address in HOSTS]
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def _plan(servers: list[FixtureServer]) -> tuple[str, set[str], dict[str, FixtureServer]]:
    """500 [[sources]] over 5 hosts: most fast, some slow, some failing, some answering 503 + Retry-After.

    Source i and source i + 250 share an article, so two workers may store the same article at once.
    """
    blocks, article_ids, where = [], set(), {}
    for i in range(SOURCES):
        server = servers[i % len(HOSTS)]
        path = f"/feeds/s{i:03d}.xml"
        codes = [f"NW{202600000000 + i % 250}", f"NW{202700000000 + i}"]
        if i % 50 == 7:
            server.routes[path] = Route(status=500, body=b"broken")
        elif i % 50 == 11 and server is servers[-1]:
            server.routes[path] = Route(status=503, headers={"Retry-After": "1"}, body=b"busy")
        else:
            server.routes[path] = Route(body=_rss(f"s{i}", codes), delay_seconds=SLOW_SECONDS if i % 25 == 3 else 0.0)
            article_ids.update(codes)
        where[path] = server
        blocks.append(f'[[sources]]\nname = "s{i:03d}"\nurl = "{server.url(path)}"\ncategories = ["news"]\n')
    settings = (f'[settings]\nallow_private_networks = true\nper_host_concurrency = {PER_HOST_CONCURRENCY}\n'
                f'per_host_delay = "0.005s"\ntimeout = "5s"\ninterval = "1h"\nlease = "{LEASE_SECONDS}s"\n'
                f'concurrency = 16\n\n[categories.news]\ntitle = "News"\n\n')
    return settings + "\n".join(blocks), article_ids, where


@pytest.mark.slow
def test_three_workers_share_the_sources_politely_and_take_over_a_killed_ones(
    servers: list[FixtureServer], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    text, article_ids, where = _plan(servers)
    config = tmp_path / "feeds.toml"
    config.write_text(text, encoding="utf-8")
    with fresh_store_url("postgresql", tmp_path, request) as url:
        env = {**os.environ, "AGGREGATOR_STORE": url}
        workers = [AggregatorProcess(compose_command("worker", config), env) for _ in range(3)]
        try:
            for worker in workers:
                worker.wait_until_started()
            victim = workers[1]
            victim_id = victim.wait_for_log(r"role=worker worker=(\S+);").group(1)
            with psycopg.connect(url, autocommit=True) as db:
                held: list[str] = []

                def victim_holds_sources() -> bool:
                    held[:] = [n for (n,) in db.execute("SELECT name FROM sources WHERE leased_by = %s",
                                                        (victim_id,))]
                    return len(held) >= 2

                wait_until(victim_holds_sources, 20, "the victim to hold sources")
                os.kill(victim.process.pid, signal.SIGKILL)
                killed_at = time.monotonic()

                def every_source_polled() -> bool:
                    (missing,) = db.execute("SELECT count(*) FROM sources WHERE last_polled_at IS NULL").fetchone()
                    return bool(missing == 0)

                wait_until(every_source_polled, RUN_SECONDS, "every source to be polled")
                (sources,) = db.execute("SELECT count(*) FROM sources").fetchone()
                stored = [code for (code,) in db.execute("SELECT article_id FROM items")]
                retaken = dict(db.execute("SELECT name, leased_by FROM sources WHERE name = ANY(%s)", (held,)).fetchall())
            # every worker, the killed one with its last heartbeat, in `status` and in any worker's /metrics
            status = subprocess.run([sys.executable, "-m", "aggregator", "status", "--config", str(config)],
                                    env=env, capture_output=True, text=True, timeout=30, check=True).stdout
            with urllib.request.urlopen(workers[0].url + "metrics", timeout=5) as response:
                metrics = response.read().decode()
        finally:
            close_all(workers)

    assert sources == SOURCES
    # every article once, the shared ones included
    assert len(stored) == len(article_ids)
    assert all(sum(code in stored_id for stored_id in stored) == 1 for code in article_ids)
    spans_by_path: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for server in servers:
        for path, _host, started, ended in server.spans:
            spans_by_path[path].append((started, ended))
        # the server's own count of requests in progress per Host, across all three workers
        assert max(server.max_concurrent_by_host.values()) <= PER_HOST_CONCURRENCY
    assert set(spans_by_path) == set(where)
    for path, spans in spans_by_path.items():
        spans.sort()
        for (_, first_end), (second_start, _) in zip(spans, spans[1:]):
            assert second_start >= first_end, f"{path} was fetched by two workers at once"
    # what the victim held when it died was polled again by the survivors, after its lease ran out
    for name in held:
        path = f"/feeds/{name}.xml"
        # a request the victim sent just before SIGKILL can be stamped by the server a moment after it: not a retake
        again = [start for start, _ in spans_by_path[path] if start > killed_at + IN_FLIGHT_STAMP_SECONDS]
        assert again, f"{name} held by the killed worker was never polled again"
        assert min(again) >= killed_at + LEASE_SECONDS / 3, f"{name} was taken before its lease could run out"
    assert all(holder is None for holder in retaken.values())
    table = status[status.index("worker  "):].splitlines()
    assert table[0].split() == ["worker", "host", "role", "heartbeat", "sources", "held"]
    assert len(table) == 4 and victim_id in status
    heartbeats = [line for line in metrics.splitlines() if line.startswith("aggregator_worker_heartbeat_timestamp")]
    assert len(heartbeats) == 3 and any(victim_id in line for line in heartbeats)
    assert "aggregator_claim_seconds_count" in metrics and "aggregator_sources_due 0.0" in metrics
