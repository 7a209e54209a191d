"""Scale-out benchmark: N `aggregator run --role worker` processes polling one PostgreSQL store together.

Serves a generated corpus (bench/corpus.py) on loopback with a fixed latency per response, records it
as the cluster's feeds.toml, starts N workers, makes every source due at once and times one full pass
(until every source has been polled). Prints, per N: wall time, polls/s, scaling efficiency
(T1 / (N x TN)), SQL statements per poll (from the workers' /metrics) and the mean claim latency.
The machine's cores are printed: efficiency above the core count's share is not to be expected.

Usage: python bench/bench_workers.py [--sources 2000] [--latency 0.2] [--workers 1 2 4] [--items 2]
Needs PostgreSQL (AGGREGATOR_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test); each run
uses a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.corpus import generate, render_rss
from bench.corpus_server import CorpusServer, Document

PG_URL = os.environ.get("AGGREGATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class SlowCorpusServer(CorpusServer):
    """Every answer waits `latency` seconds first, as a distant newspaper server does."""

    latency = 0.2

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(self.latency)
        await super()._app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--items", type=int, default=2, help="items per source (each is parsed, cleaned, stored)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds every response waits")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--hosts", type=int, default=200, help="loopback hosts the sources are spread over")
    parser.add_argument("--concurrency", type=int, default=32, help="settings.concurrency of each worker")
    args = parser.parse_args()

    corpus = generate(args.sources, args.items, 0.0)
    documents = {}
    for name, articles in corpus.items():
        body = render_rss(name, articles, emnews_urls=set()).replace("{encoding}", "utf-8").encode()
        documents[f"/{name}.xml"] = Document(body, "application/rss+xml; charset=utf-8",
                                             '"' + hashlib.sha1(body).hexdigest() + '"')
    hosts = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(args.hosts)]
    SlowCorpusServer.latency = args.latency
    results = []
    with tempfile.TemporaryDirectory() as tmp, SlowCorpusServer(documents, hosts) as server:
        config = Path(tmp) / "feeds.toml"
        lines = ["[settings]", "allow_private_networks = true", f"concurrency = {args.concurrency}",
                 "per_host_concurrency = 4", 'per_host_delay = "1ms"', 'interval = "1h"', 'lease = "30s"',
                 "", "[categories.bench]", 'title = "Bench"']
        for index, name in enumerate(corpus):
            lines += ["", "[[sources]]", f'name = "{name}"', f'url = "{server.url(f"/{name}.xml", index % len(hosts))}"',
                      'categories = ["bench"]']
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for count in args.workers:
            results.append((count, *_one_pass(config, count, args.sources)))
    _print_table(results, args)


def _one_pass(config: Path, workers: int, sources: int) -> tuple[float, float, float, float]:
    """(wall seconds, statements per poll, mean claim ms, claims) for one full pass of `workers` workers."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    env = {**os.environ, "AGGREGATOR_STORE": url}
    processes: list[subprocess.Popen[str]] = []
    logs = []
    try:
        subprocess.run([sys.executable, "-m", "aggregator", "-q", "migrate", "--config", str(config)], env=env,
                       check=True, capture_output=True, text=True, timeout=300)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("UPDATE sources SET next_poll_at = now() + interval '1 day'")
            for index in range(workers):
                log = Path(config.parent, f"worker-{workers}-{index}.log")
                logs.append(log)
                with log.open("w") as stream:
                    processes.append(subprocess.Popen(
                        [sys.executable, "-m", "aggregator", "run", "--role", "worker", "--config", str(config),
                         "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL, stderr=stream, text=True))
            urls = [_wait_for_start(log) for log in logs]
            before = [_scrape(u) for u in urls]
            started = time.perf_counter()
            db.execute("UPDATE sources SET next_poll_at = now()")
            while True:
                (left,) = db.execute("SELECT count(*) FROM sources WHERE last_polled_at IS NULL").fetchone()
                if left == 0:
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - started
            after = [_scrape(u) for u in urls]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    statements = sum(a["aggregator_db_statements_total"] - b["aggregator_db_statements_total"]
                     for a, b in zip(after, before))
    claims = sum(a["aggregator_claim_seconds_count"] - b["aggregator_claim_seconds_count"] for a, b in zip(after, before))
    claim_seconds = sum(a["aggregator_claim_seconds_sum"] - b["aggregator_claim_seconds_sum"]
                        for a, b in zip(after, before))
    return wall, statements / sources, 1000 * claim_seconds / max(claims, 1), claims


def _wait_for_start(log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log.read_text())
        if match:
            return match.group(1)
        time.sleep(0.05)
    sys.exit(f"worker did not start:\n{log.read_text()[-3000:]}")


def _scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = ("aggregator_db_statements_total", "aggregator_claim_seconds_count", "aggregator_claim_seconds_sum")
    return {name: float(line.split()[-1]) for line in text.splitlines() for name in wanted
            if line.startswith(name + " ")}


def _print_table(results: list[tuple[int, float, float, float, float]], args: argparse.Namespace) -> None:
    one = next((wall for count, wall, *_ in results if count == 1), None)
    print(f"{args.sources} sources x {args.items} items, {args.latency * 1000:.0f} ms per response, "
          f"{args.hosts} loopback hosts, concurrency {args.concurrency} per worker; "
          f"{os.cpu_count()} cores shared by the workers, PostgreSQL and the corpus server")
    print("| workers | one full pass | polls/s | scaling efficiency | SQL statements per poll | claim latency (mean) | claims |")
    print("|---|---|---|---|---|---|---|")
    for count, wall, per_poll, claim_ms, claims in results:
        efficiency = f"{one / (count * wall):.2f}" if one else "-"
        print(f"| {count} | {wall:.1f} s | {args.sources / wall:.0f} | {efficiency} | {per_poll:.1f} | "
              f"{claim_ms:.1f} ms | {claims:.0f} |")


if __name__ == "__main__":
    main()
