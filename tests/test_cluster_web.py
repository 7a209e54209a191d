"""Stateless web replicas: two `run --role web` processes serve the same bytes and ETag for every feed
while a worker polls and the publisher publishes, with no disk shared between them; when the active
publisher is killed, the standby takes its lease over and publishing goes on."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.cluster_processes import AggregatorProcess, close_all, compose_command, wait_until
from tests.conftest import fresh_store_url
from tests.fixture_server import FixtureServer, Route

PATHS = ("/feeds/news.atom", "/feeds/news.json", "/feeds/all.atom", "/feeds/archive/news/1.atom", "/feeds.opml", "/")
WATCH_SECONDS = 8.0
KILL_AFTER_SECONDS = 1.5


def _growing_feed(started: float) -> Route:
    """An RSS feed that gains an item every half second, so every poll stores something new."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        count = 1 + int((time.monotonic() - started) / 0.5)
        items = "".join(f"<item><title>story {i}</title><link>https://example.com/a/{i}.html</link>"
                        f"<guid>story-{i}</guid><description>body {i}</description></item>" for i in range(count))
        body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>growing</title>'
                f"<link>https://example.com/</link>{items}</channel></rss>").encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return Route(handler=answer)


def _get(base: str, path: str, gzip: bool) -> tuple[int, str, str, bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(base.rstrip("/") + path, headers=headers), timeout=5) as r:
            return r.status, r.headers.get("ETag", ""), r.headers.get("Last-Modified", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, "", "", b""


@pytest.mark.slow
def test_two_web_replicas_answer_the_same_etag_and_bytes_while_workers_publish(
    feed_server: FixtureServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    feed_server.routes["/growing.xml"] = _growing_feed(time.monotonic())
    config = tmp_path / "feeds.toml"
    config.write_text(
        '[settings]\nallow_private_networks = true\nper_host_delay = "0.01s"\nlease = "2s"\n'
        "max_items_per_feed = 5\n\n[categories.news]\ntitle = \"News\"\n\n"
        f'[[sources]]\nname = "growing"\nurl = "{feed_server.url("/growing.xml")}"\ncategories = ["news"]\n'
        'interval = "1s"\n', encoding="utf-8")
    with fresh_store_url("postgresql", tmp_path, request) as url:
        env = {**os.environ, "AGGREGATOR_STORE": url}
        migrate = AggregatorProcess(compose_command("migrate", config), env)
        assert migrate.process.wait(timeout=30) == 0, migrate.log
        migrate.close()
        # each replica renders nothing itself: the publisher's output_dir is its own, the web ones have none
        # as docker-compose.yml: two publishers, one holding the lease, one standing by
        processes = [AggregatorProcess(compose_command(service, config), env)
                     for service in ("worker", "publisher", "publisher", "web", "web")]
        try:
            for process in processes:
                process.wait_until_started()
            web_a, web_b = processes[3].url, processes[4].url
            wait_until(lambda: _get(web_a, "/feeds/archive/news/1.atom", False)[0] == 200, 30, "archive page 1")
            active = next(p for p in processes[1:3] if "is the publisher now" in p.log)
            standby = processes[2] if active is processes[1] else processes[1]
            assert "is the publisher now" not in standby.log
            compared, versions, before_kill, after_kill = 0, set(), set(), set()
            started = time.monotonic()
            killed_at = None
            while time.monotonic() < started + WATCH_SECONDS:
                if killed_at is None and time.monotonic() > started + KILL_AFTER_SECONDS:
                    os.kill(active.process.pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                for path in PATHS:
                    for gzip in (False, True):
                        first = _get(web_a, path, gzip)
                        other = _get(web_b, path, gzip)
                        again = _get(web_a, path, gzip)
                        if first != again:
                            continue  # a publish landed between the two requests to the same replica
                        assert first[0] == 200, path
                        assert other == first, f"{path} (gzip={gzip}) differs between the replicas"
                        compared += 1
                        if path == "/feeds/news.atom" and not gzip:
                            versions.add(first[1])
                            (before_kill if killed_at is None else after_kill).add(first[1])
            takeover = standby.log
        finally:
            close_all(processes)
    assert compared > 20
    # the feed changed several times while the replicas were compared, and again under the standby
    assert len(versions) >= 3
    assert "is the publisher now" in takeover and len(after_kill - before_kill) >= 2
