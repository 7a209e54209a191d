"""Environment faults around a real `aggregator poll`: output_dir full or read-only, PostgreSQL cut mid-poll, the clock stepping back.

After each fault is repaired, the next `poll` leaves nothing committed lost, nothing duplicated, no
published file half-written, and every category the failed run owed published.

PostgreSQL cannot be restarted safely here (the server is shared with every other test run), so a
loopback TCP proxy of this module sits between `aggregator` and PostgreSQL: cutting it drops every
connection and refuses new ones, as a restarting server does, and restoring it lets clients reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.config.load import parse_config
from aggregator.fetch.client import HttpFetcher
from aggregator.publish.run import publish_categories
from aggregator.storage import Storage
from aggregator.update import Updater
from tests.conftest import fresh_store_url
from tests.fixture_server import FixtureServer
from tests.hostile.harness import HEALTHY, HealthyItem, HealthySource, Installation, kill_leftovers


def grown(sources: tuple[HealthySource, ...], extra: int) -> tuple[HealthySource, ...]:
    """The sources with `extra` more items each (new versions, so conditional GETs see a change)."""
    return tuple(
        replace(s, items=s.items + tuple(HealthyItem(f"{s.items[0].article_id[:-4]}9{n:03d}", f"{s.name} 新增 {n}"
                                                     ) for n in range(extra)),
                version=s.version + 1)
        for s in sources
    )


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only); skipped where mounting is not allowed, failed in CI."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs for the output_dir faults: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    """Write until the file system is full."""
    with open(directory / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["full", "read_only"])
def test_output_dir_full_or_read_only_loses_nothing_and_the_owed_feeds_are_published_after_repair(
    tmp_path: Path, feed_server: FixtureServer, fault: str
) -> None:
    installation = Installation(tmp_path, feed_server, str(tmp_path / "store" / "aggregator.db"))
    with tmpfs(installation.output_dir, "4m") as output_dir:
        installation.write()
        installation.poll()
        before = {p.name: p.read_bytes() for p in output_dir.iterdir() if p.is_file()}

        installation.healthy = grown(HEALTHY, 3)
        installation.write()
        if fault == "full":
            _fill(output_dir)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(output_dir)], check=True)
        failed = installation.run("-q", "poll", "--all")
        assert "Traceback" not in failed.stderr, failed.stderr
        assert "publish:" in failed.stderr or "publish:" in failed.stdout, failed
        # the feeds already published are untouched and whole: never half-written
        for name, content in before.items():
            if name.endswith(".atom") and (output_dir / name).exists():
                assert (output_dir / name).read_bytes() == content
        status = installation.status()
        for source in installation.healthy:  # the items were committed although publishing failed
            assert status[source.name]["items"] == len(source.items)

        if fault == "full":
            (output_dir / "filler").unlink()
        else:
            subprocess.run(["mount", "-o", "remount,rw", str(output_dir)], check=True)
        installation.poll()  # nothing new upstream (304s): only what the failed run owed is published
        installation.assert_healthy_published()
        installation.assert_every_published_file_is_well_formed()


class CuttableProxy:
    """A loopback TCP proxy to PostgreSQL that can drop every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cut_now = threading.Event()
        self.stopped = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.cut_now.is_set():
                client.close()  # refused, as a server that is restarting
                continue
            upstream = socket.create_connection(self.target, timeout=5)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_now.set()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def restore(self) -> None:
        self.cut_now.clear()

    def close(self) -> None:
        self.stopped.set()
        self.cut()
        self.listener.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgresql_connection_cut_mid_poll_loses_nothing_and_the_next_poll_publishes_what_is_owed(
    tmp_path: Path, feed_server: FixtureServer, request: pytest.FixtureRequest
) -> None:
    with fresh_store_url("postgresql", tmp_path, request) as store:
        proxy = CuttableProxy(("127.0.0.1", int(store.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])))
        try:
            host_port = store.split("@", 1)[1].split("/", 1)[0]
            installation = Installation(tmp_path, feed_server, store.replace(host_port, f"127.0.0.1:{proxy.port}"))
            installation.write()
            installation.poll()
            installation.healthy = grown(HEALTHY, 3)
            installation.write()
            for source in installation.healthy:
                feed_server.routes[source.path].delay_seconds = 0.3
            served = installation.requests_served()
            process = installation.start("-q", "poll", "--all")
            try:
                deadline = time.monotonic() + 30
                while installation.requests_served() == served and time.monotonic() < deadline:
                    time.sleep(0.005)
                proxy.cut()  # mid-poll: the store is open and locked, the sources are being fetched
                time.sleep(1.5)
                proxy.restore()
                returncode = process.wait(timeout=60)
            finally:
                kill_leftovers(process.pid)
            stderr = (tmp_path / "stderr.log").read_text(errors="replace")
            assert returncode in (0, 1), stderr
            assert "Traceback" not in stderr, stderr
            if returncode == 1:
                assert "aggregator: store: " in stderr, stderr

            for source in installation.healthy:
                feed_server.routes[source.path].delay_seconds = 0
            installation.poll()
            installation.assert_healthy_published()
            installation.assert_every_published_file_is_well_formed()
            status = installation.status()
            for source in installation.healthy:
                assert status[source.name]["items"] == len(source.items)
        finally:
            proxy.close()


def test_clock_stepping_back_an_hour_loses_nothing_duplicates_nothing_and_reschedules_from_the_new_time(
    tmp_path: Path, feed_server: FixtureServer, storage: Storage, store_url: str
) -> None:
    """Function level: the CLI has no clock hook, Updater takes one (`clock=`)."""
    sources = HEALTHY
    for source in sources:
        feed_server.routes[source.path] = source.route()
    lines = ["[settings]", "allow_private_networks = true", 'per_host_delay = "1ms"', 'output_dir = "public"', ""]
    lines += [f'[categories.{s.category}]\ntitle = "{s.category}"\n' for s in sources]
    lines += [f'[[sources]]\nname = "{s.name}"\nurl = "{feed_server.url(s.path)}"\ncategories = ["{s.category}"]\n'
              for s in sources]
    config = parse_config("\n".join(lines), tmp_path / "feeds.toml")
    now = datetime.now(UTC).replace(microsecond=0)
    stepped_back = now - timedelta(hours=1)

    async def poll_at(clock_time: datetime) -> None:
        async with HttpFetcher(config.settings, clock=lambda: clock_time) as fetcher:
            outcomes = await Updater(config, storage, fetcher, clock=lambda: clock_time).update_sources(config.sources)
        assert [o.error for o in outcomes] == [None] * len(outcomes)

    asyncio.run(poll_at(now))
    grown_sources = grown(sources, 2)
    for source in grown_sources:
        feed_server.routes[source.path] = source.route()
    asyncio.run(poll_at(stepped_back))
    asyncio.run(poll_at(now))  # and forward again: the same items, unchanged
    publish_categories(storage, config, None)

    installation = Installation(tmp_path, feed_server, store_url, healthy=grown_sources)
    installation.assert_healthy_published()
    counts = storage.items_per_source()
    for source in grown_sources:
        assert counts[source.name] == len(source.items)
    asyncio.run(poll_at(stepped_back))
    for source in grown_sources:
        state = storage.get_source_state(source.name)
        assert state is not None and state.next_poll_at == stepped_back + config.settings.interval
