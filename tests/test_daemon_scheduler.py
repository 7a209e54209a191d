"""`aggregator run` as ops run it: a real daemon subprocess polling the loopback fixture server.

Intervals are 1–2 s so the schedule shows within seconds; every wait polls a condition with a
deadline. The pure timing decisions (`resume_at`, `follow_outcome`) have table tests in test_schedule.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.daemon.scheduler import CRON_JITTER_SECONDS, cron_trigger
from aggregator.models import SourceState
from aggregator.storage import open_storage
from tests.conftest import DATA_DIR, REPO_ROOT
from tests.fixture_server import FixtureServer, Route

#: generous bounds for a loaded CI machine; each wait ends as soon as its condition holds
START_SECONDS = 15.0
WAIT_SECONDS = 12.0

SETTINGS = """\
[settings]
allow_private_networks = true
per_host_delay = "0.05s"
timeout = "5s"
"""
CATEGORIES = """\
[categories.news]
title = "News"
"""


def _rss(channel: str, count: int = 3) -> bytes:
    items = "".join(
        f"<item><title>{channel} story {i}</title><link>https://news.example.com/{channel}/{i}.html</link>"
        f"<guid>{channel}-{i}</guid><description>&lt;p&gt;{channel} body {i}&lt;/p&gt;</description></item>"
        for i in range(count)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{channel}</title>'
        f"<link>https://news.example.com/</link>{items}</channel></rss>"
    ).encode()


def _source(name: str, url: str, interval: str = "1s", *, cron: str | None = None) -> str:
    timing = f'cron = "{cron}"' if cron else f'interval = "{interval}"'
    return f'[[sources]]\nname = "{name}"\nurl = "{url}"\ncategories = ["news"]\n{timing}\n\n'


def _write_config(path: Path, *sources: str, settings: str = SETTINGS, categories: str = CATEGORIES) -> None:
    """Write feeds.toml the way editors that save atomically do: a temp file renamed over it."""
    temp = path.with_name(path.name + ".new")
    temp.write_text(settings + "\n" + categories + "\n" + "".join(sources), encoding="utf-8")
    temp.replace(path)


def _wait_until(
    condition: Callable[[], bool], timeout: float = WAIT_SECONDS, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _aggregator(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "aggregator", *args]
    return subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


class DaemonProcess:
    """`python -m aggregator -v run` with its log lines collected as they come.

    With `log_format="json"` every line must be a JSON object; `log` is then made of their messages.
    """

    def __init__(self, config: Path, log_format: str = "text", env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.url = ""
        self._json = log_format == "json"
        self._lock = threading.Lock()
        command = [sys.executable, "-m", "aggregator", "-v", "--log-format", log_format, "run",
                   "--config", str(config), "--listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_until_started(self) -> None:
        started = self.wait_for_log(r"daemon: started: .* listening on (http://\S+)", START_SECONDS)
        self.url = started.group(1)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        with self._lock:
            lines = list(self.lines)
        if self._json:
            lines = [record["message"] for record in self.records(lines)]
        return "\n".join(lines)

    def records(self, lines: list[str] | None = None) -> list[dict[str, object]]:
        """The JSON log records so far (json log format only); a line that is not JSON fails the test."""
        if lines is None:
            with self._lock:
                lines = list(self.lines)
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON log line: {line!r}") from None
        return records

    def wait_for_log(self, pattern: str, timeout: float = WAIT_SECONDS) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def logged() -> bool:
            match = re.search(pattern, self.log)
            if match:
                found.append(match)
            elif self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log}")
            return match is not None

        try:
            _wait_until(logged, timeout, f"log line /{pattern}/")
        except AssertionError as e:
            raise AssertionError(f"{e}; the daemon logged:\n{self.log}") from None
        return found[0]

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """`signum` (unless it already exited) and the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=15)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Starts `aggregator run` on tmp_path/feeds.toml; every daemon started is killed at teardown."""
    started: list[DaemonProcess] = []

    def start(log_format: str = "text", env: dict[str, str] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / "feeds.toml", log_format, env)
        started.append(daemon)
        daemon.wait_until_started()
        return daemon

    yield start
    for daemon in started:
        daemon.close()


def _read(path: Path) -> str:
    """The file's text, or "" while it does not exist yet."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _request_times(server: FixtureServer, path: str) -> list[float]:
    return [started for request_path, _, _, started in list(server.requests) if request_path == path]


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.slow
def test_sources_are_polled_on_their_own_intervals_and_served_with_healthz_and_metrics(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/fast.xml"] = Route(body=_rss("fast"), etag='"fast-1"')
    feed_server.routes["/slow.xml"] = Route(body=_rss("slow"))
    feed_server.routes["/down.xml"] = Route(body=b"down", status=500)
    _write_config(
        tmp_path / "feeds.toml",
        _source("fast", feed_server.url("/fast.xml"), "1s"),
        _source("slow", feed_server.url("/slow.xml"), "2s"),
        _source("down", feed_server.url("/down.xml"), "1s"),
    )

    daemon = start_daemon()
    assert daemon.get("/healthz") == (200, b"ok\n")
    _wait_until(
        lambda: feed_server.hits["/fast.xml"] >= 4 and feed_server.hits["/slow.xml"] >= 2,
        what="four polls of the 1 s source and two of the 2 s source",
    )

    fast_gaps = _gaps(_request_times(feed_server, "/fast.xml"))
    slow_gaps = _gaps(_request_times(feed_server, "/slow.xml"))
    assert all(0.8 < gap < 1.8 for gap in fast_gaps), fast_gaps
    assert all(1.8 < gap < 2.8 for gap in slow_gaps), slow_gaps
    # the 1 s source answered with an ETag: later polls are conditional and get 304s
    assert "update: source=fast outcome=not_modified" in daemon.log
    # the failing source backs off (1 s, 2 s, 4 s ±20 %) instead of being polled every second
    down_gaps = _gaps(_request_times(feed_server, "/down.xml"))
    assert feed_server.hits["/down.xml"] < feed_server.hits["/fast.xml"]
    assert all(later > earlier * 1.2 for earlier, later in itertools.pairwise(down_gaps)), down_gaps

    status, atom = daemon.get("/feeds/news.atom")
    assert status == 200 and b"fast story 2" in atom and b"slow story 2" in atom
    status, body = daemon.get("/metrics")
    metrics = body.decode()
    assert status == 200
    assert re.search(r'aggregator_polls_total\{outcome="not_modified",source="fast"\} [2-9]\.0', metrics), (
        metrics
    )
    assert re.search(r'aggregator_items_inserted_total\{source="slow"\} 3\.0', metrics)
    assert re.search(r'aggregator_fetched_bytes_total\{source="slow"\} [1-9]\d+\.0', metrics)
    assert re.search(r'aggregator_source_consecutive_failures\{source="down"\} [1-9]', metrics)
    assert re.search(
        r'aggregator_source_last_success_timestamp_seconds\{source="fast"\} 1\.\d+e\+09', metrics
    )
    assert re.search(r"aggregator_fetch_seconds_count [1-9]", metrics)
    assert daemon.stop() == 0


@pytest.mark.slow
def test_the_server_stretches_the_interval_and_one_success_ends_a_backoff(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/cached.xml"] = Route(body=_rss("cached"), headers={"Cache-Control": "max-age=2"})
    feed_server.routes["/flaky.xml"] = Route(body=b"busy", status=503)
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("cached", feed_server.url("/cached.xml")),
                  _source("flaky", feed_server.url("/flaky.xml", host="localhost")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/flaky.xml"] >= 2, what="two failed polls")

    feed_server.routes["/flaky.xml"] = Route(body=_rss("flaky"))
    _wait_until(lambda: feed_server.hits["/flaky.xml"] >= 5, what="three polls after the recovery")

    cached_gaps = _gaps(_request_times(feed_server, "/cached.xml"))
    assert cached_gaps and all(1.8 < gap < 2.8 for gap in cached_gaps), cached_gaps  # max-age=2 over 1 s
    flaky_gaps = _gaps(_request_times(feed_server, "/flaky.xml"))
    assert 1.5 < flaky_gaps[1] < 2.8, flaky_gaps  # the second failure doubled the wait
    assert all(0.8 < gap < 1.8 for gap in flaky_gaps[2:]), flaky_gaps  # back to the interval
    [row] = [row for row in json.loads(_aggregator("status", "--json", "--config", str(config)).stdout)
             if row["source"] == "flaky"]
    assert (row["state"], row["consecutive_failures"], row["last_http_status"]) == ("ok", 0, 200)
    assert re.search(r'aggregator_source_consecutive_failures\{source="flaky"\} 0\.0', daemon.get("/metrics")[1].decode())
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_source_added_to_feeds_toml_is_polled_without_a_restart(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    feed_server.routes["/added.xml"] = Route(body=_rss("added"))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("a", feed_server.url("/a.xml")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/a.xml"] >= 1, what="the first poll")
    pid = daemon.process.pid

    _write_config(
        config, _source("a", feed_server.url("/a.xml")), _source("added", feed_server.url("/added.xml"))
    )

    daemon.wait_for_log(r"config: .*feeds\.toml reloaded \(file changed\): sources added: added")
    _wait_until(lambda: feed_server.hits["/added.xml"] >= 1, what="a poll of the added source")
    daemon.wait_for_log(r"publish: rewrote .*news")
    _wait_until(
        lambda: "added story 0" in _read(tmp_path / "store/feeds/news.atom"),
        what="the added source's items in news.atom",
    )
    assert daemon.process.pid == pid and daemon.process.poll() is None
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_broken_edit_is_rejected_with_checks_messages_and_the_old_config_keeps_working(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    feed_server.routes["/b.xml"] = Route(body=_rss("b"))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("a", feed_server.url("/a.xml")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/a.xml"] >= 1, what="the first poll")

    _write_config(config, _source("a", feed_server.url("/a.xml")), _source("b", "ftp://nowhere", "soon"))
    daemon.wait_for_log(r"config: rejected the edit of .*feeds\.toml \(file changed\)")
    check = _aggregator("check", "--config", str(config))
    assert check.returncode == 2
    problems = check.stderr.strip().splitlines()
    assert len(problems) >= 2  # the bad url and the bad interval
    for problem in problems:
        daemon.wait_for_log(re.escape(f"config: {problem}"))

    polls_at_rejection = feed_server.hits["/a.xml"]
    _wait_until(lambda: feed_server.hits["/a.xml"] > polls_at_rejection, what="a poll on the old config")
    assert feed_server.hits["/b.xml"] == 0

    _write_config(config, _source("a", feed_server.url("/a.xml")), _source("b", feed_server.url("/b.xml")))
    _wait_until(lambda: feed_server.hits["/b.xml"] >= 1, what="the fixed edit to apply")
    assert daemon.stop() == 0


@pytest.mark.slow
def test_sighup_reloads_even_when_the_file_looks_unchanged(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("a", feed_server.url("/a.xml")))
    daemon = start_daemon()
    before = config.stat()

    # same size, same inode, mtime put back: only the signal can tell the daemon
    config.write_text(config.read_text(encoding="utf-8").replace('"News"', '"Nows"'), encoding="utf-8")
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
    daemon.process.send_signal(signal.SIGHUP)

    daemon.wait_for_log(r"config: .*feeds\.toml reloaded \(SIGHUP\): categories changed: news")
    _wait_until(
        lambda: "Nows" in _read(tmp_path / "store/feeds/news.atom"),
        what="news.atom republished with the new title",
    )
    assert daemon.stop() == 0


@pytest.mark.slow
def test_sigterm_lets_the_in_flight_poll_finish_and_exits_zero_with_no_temp_files(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/slow.xml"] = Route(body=_rss("slow"), delay_seconds=1.0)
    _write_config(tmp_path / "feeds.toml", _source("slow", feed_server.url("/slow.xml")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/slow.xml"] >= 1, what="a poll in flight")

    started = time.monotonic()
    assert daemon.stop() == 0  # one SIGTERM: a second one would cancel the poll in flight
    assert time.monotonic() - started < 6

    log = daemon.log
    assert (
        log.index("daemon: SIGTERM: stopping")
        < log.index("update: source=slow outcome=new")
        < log.index("daemon: stopped")
    )
    assert "slow story 2" in _read(tmp_path / "store/feeds/news.atom")
    leftovers = [
        path
        for path in tmp_path.rglob("*")
        if path.name.endswith((".tmp", "-journal", ".new")) or path.name.startswith(".news")
    ]
    assert leftovers == []
    assert feed_server.hits["/slow.xml"] == 1


@pytest.mark.slow
def test_retry_after_on_429_delays_the_next_request_to_that_host(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # two sources on one host ("localhost"), a third on another ("127.0.0.1") of the same server
    feed_server.routes["/limited.xml"] = Route(body=b"slow down", status=429, headers={"Retry-After": "2"})
    feed_server.routes["/neighbour.xml"] = Route(body=_rss("neighbour"))
    feed_server.routes["/elsewhere.xml"] = Route(body=_rss("elsewhere"))
    _write_config(
        tmp_path / "feeds.toml",
        _source("limited", feed_server.url("/limited.xml", host="localhost")),
        _source("neighbour", feed_server.url("/neighbour.xml", host="localhost")),
        _source("elsewhere", feed_server.url("/elsewhere.xml")),
    )
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/limited.xml"] >= 2, what="the request after the Retry-After")

    host = f"localhost:{feed_server.port}"
    requests = [
        (path, started)
        for path, request_host, _, started in list(feed_server.requests)
        if request_host == host
    ]
    first_429 = next(started for path, started in requests if path == "/limited.xml")
    after = [started - first_429 for path, started in requests if started > first_429]
    assert after, "no request to the host after the 429"
    assert min(after) >= 2.0 - 0.1, after  # the whole host waited, the neighbour source too
    elsewhere = [t for t in _request_times(feed_server, "/elsewhere.xml") if first_429 < t < first_429 + 1.9]
    assert elsewhere, "another host must not wait for this host's Retry-After"
    assert daemon.stop() == 0


@pytest.mark.slow
def test_per_host_concurrency_never_exceeds_the_limit(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    sources = []
    for index in range(4):
        feed_server.routes[f"/s{index}.xml"] = Route(body=_rss(f"s{index}"), delay_seconds=0.3)
        sources.append(_source(f"s{index}", feed_server.url(f"/s{index}.xml")))
    for index in range(2):
        feed_server.routes[f"/l{index}.xml"] = Route(body=_rss(f"l{index}"), delay_seconds=0.3)
        sources.append(_source(f"l{index}", feed_server.url(f"/l{index}.xml", host="localhost")))
    _write_config(tmp_path / "feeds.toml", *sources)
    daemon = start_daemon()

    # the first round is the crowded one: every source is due within its first second
    _wait_until(
        lambda: (
            all(feed_server.hits[f"/s{i}.xml"] >= 1 for i in range(4))
            and all(feed_server.hits[f"/l{i}.xml"] >= 1 for i in range(2))
        ),
        what="a poll of every source",
    )

    assert feed_server.max_concurrent_by_host[f"127.0.0.1:{feed_server.port}"] == 1
    assert feed_server.max_concurrent_by_host[f"localhost:{feed_server.port}"] == 1
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_restart_resumes_from_the_stored_next_poll_times(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/polled.xml"] = Route(body=_rss("polled"))
    feed_server.routes["/fresh.xml"] = Route(body=_rss("fresh"))
    feed_server.routes["/cron.xml"] = Route(body=_rss("cron"))
    polled_url, cron_url = feed_server.url("/polled.xml"), feed_server.url("/cron.xml")
    _write_config(
        tmp_path / "feeds.toml",
        _source("polled", polled_url, "1s"),
        _source("fresh", feed_server.url("/fresh.xml"), "1s"),
        _source("cron", cron_url, cron="* * * * *"),
    )
    # what an earlier run left behind: polled a moment ago, and the server asked for a minute's rest;
    # the cron source's next poll as `poll` stores it, an interval after the last (not on a cron minute)
    storage = open_storage(str(tmp_path / "store" / "aggregator.db"))
    now = datetime.now(UTC)
    off_cron = (now + timedelta(minutes=2)).replace(second=45)
    for name, url, next_poll in (("polled", polled_url, now + timedelta(minutes=1)), ("cron", cron_url, off_cron)):
        storage.save_source_state(
            SourceState(name, config_url=url, last_polled_at=now, last_success_at=now, next_poll_at=next_poll)
        )
    storage.close()

    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/fresh.xml"] >= 2, what="two polls of the never-polled source")

    assert feed_server.hits["/polled.xml"] == 0
    assert feed_server.hits["/cron.xml"] == 0
    # the cron source's real next poll is stored (for `status`): the first cron minute after the
    # stored time, plus its jitter; another restart keeps that very cron minute, jitter and all
    cron_minute = (off_cron + timedelta(minutes=1)).replace(second=0, microsecond=0)
    assert cron_minute <= _stored_next_poll(tmp_path, "cron") <= cron_minute + CRON_JITTER
    assert daemon.stop() == 0
    start_daemon().stop()
    assert cron_minute <= _stored_next_poll(tmp_path, "cron") <= cron_minute + CRON_JITTER
    assert feed_server.hits["/cron.xml"] == 0


CRON_JITTER = timedelta(seconds=CRON_JITTER_SECONDS)


def _stored_next_poll(tmp_path: Path, source: str) -> datetime:
    """The next poll `aggregator status --json` reports for `source`."""
    status = _aggregator("status", "--json", "--config", str(tmp_path / "feeds.toml"))
    [row] = [row for row in json.loads(status.stdout) if row["source"] == source]
    return datetime.fromisoformat(row["next_poll_at"])


@pytest.mark.slow
def test_a_cron_poll_on_the_same_store_refuses_while_the_daemon_writes(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    _write_config(tmp_path / "feeds.toml", _source("a", feed_server.url("/a.xml"), "1h"))
    daemon = start_daemon()

    poll = _aggregator("poll", "--all", "--lock-timeout", "0.5", "--config", str(tmp_path / "feeds.toml"))

    assert poll.returncode == 3
    assert f"another aggregator process (pid {daemon.process.pid}) is writing" in poll.stderr
    assert daemon.stop() == 0


@pytest.mark.slow
def test_kill_9_then_restart_keeps_every_item_once_and_status_reports_the_sources(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a", count=4))
    feed_server.routes["/gone.xml"] = Route(body=b"gone", status=410)
    config = tmp_path / "feeds.toml"
    _write_config(
        config, _source("a", feed_server.url("/a.xml")), _source("gone", feed_server.url("/gone.xml"))
    )
    first = start_daemon()
    first.wait_for_log(r"publish: rewrote .*news")
    first.wait_for_log(r"source=gone is gone \(HTTP 410\)")

    first.process.kill()
    assert first.process.wait(timeout=10) == -signal.SIGKILL
    polls_before_restart = feed_server.hits["/a.xml"]
    second = start_daemon()  # the writer lock died with the killed process
    _wait_until(lambda: feed_server.hits["/a.xml"] > polls_before_restart, what="a poll after the restart")

    storage = open_storage(str(tmp_path / "store" / "aggregator.db"))
    try:
        assert storage.count_items("news") == 4
    finally:
        storage.close()
    status = _aggregator("status", "--json", "--config", str(config))
    rows = {row["source"]: row for row in json.loads(status.stdout)}
    assert (rows["a"]["state"], rows["a"]["items"], rows["a"]["last_http_status"]) == ("ok", 4, 200)
    assert rows["gone"]["state"] == "retired"
    assert feed_server.hits["/gone.xml"] == 1  # retired: not polled again, not even after the restart
    assert second.stop() == 0


@pytest.mark.slow
def test_a_removed_and_a_changed_source_apply_without_a_restart(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    for path in ("/a.xml", "/a2.xml", "/b.xml"):
        feed_server.routes[path] = Route(body=_rss(path.strip("/.xml")))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("a", feed_server.url("/a.xml")), _source("b", feed_server.url("/b.xml")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/b.xml"] >= 1, what="a poll of b")

    _write_config(config, _source("a", feed_server.url("/a2.xml")))

    daemon.wait_for_log(r"reloaded \(file changed\): sources removed: b; sources changed: a \(url\)")
    polls_of_b = feed_server.hits["/b.xml"]
    _wait_until(lambda: feed_server.hits["/a2.xml"] >= 2, what="two polls of a's new url")
    assert feed_server.hits["/b.xml"] <= polls_of_b + 1  # at most the poll in flight at the reload
    status, body = daemon.get("/metrics")
    assert status == 200 and 'source="a"' in body.decode() and 'source="b"' not in body.decode()
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_hanging_source_costs_its_timeout_and_holds_up_no_other_host(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/hang.xml"] = Route(body=_rss("hang"), delay_seconds=4.0)
    feed_server.routes["/ok.xml"] = Route(body=_rss("ok"))
    _write_config(
        tmp_path / "feeds.toml",
        _source("hang", feed_server.url("/hang.xml")),
        _source("ok", feed_server.url("/ok.xml", host="localhost")),
        settings=SETTINGS.replace('timeout = "5s"', 'timeout = "1.5s"'),
    )
    daemon = start_daemon()

    failed = daemon.wait_for_log(r"update: source=hang outcome=error .* duration=([\d.]+)s error=fetch: .*1\.5 s")
    _wait_until(lambda: feed_server.hits["/ok.xml"] >= 4, what="polls of the other source meanwhile")

    assert float(failed.group(1)) < 1.5 + 0.5
    # the hanging poll outlasts its 1 s interval: the job waits for it instead of firing again
    assert "maximum number of running instances" not in daemon.log
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_second_sigint_cancels_the_in_flight_poll_which_stores_nothing(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/slow.xml"] = Route(body=_rss("slow"), delay_seconds=4.0)
    _write_config(tmp_path / "feeds.toml", _source("slow", feed_server.url("/slow.xml")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/slow.xml"] >= 1, what="a poll in flight")

    started = time.monotonic()
    daemon.process.send_signal(signal.SIGINT)
    daemon.wait_for_log(r"daemon: SIGINT: stopping")
    daemon.wait_for_log(r"daemon: waiting up to \d+s for 1 in-flight polls")

    assert daemon.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 3
    assert "daemon: SIGINT again: cancelling 1 in-flight polls" in daemon.log
    assert "daemon: source=slow poll cancelled at shutdown" in daemon.log
    storage = open_storage(str(tmp_path / "store" / "aggregator.db"))
    try:
        assert storage.count_items() == 0
        assert "slow" not in storage.get_source_states()
    finally:
        storage.close()


@pytest.mark.slow
def test_polls_missed_while_the_daemon_was_stopped_are_coalesced_into_one(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    _write_config(tmp_path / "feeds.toml", _source("a", feed_server.url("/a.xml")))
    daemon = start_daemon()
    _wait_until(lambda: feed_server.hits["/a.xml"] >= 2, what="two polls")

    daemon.process.send_signal(signal.SIGSTOP)
    time.sleep(3.5)  # three polls come due meanwhile
    resumed = time.monotonic()
    daemon.process.send_signal(signal.SIGCONT)
    time.sleep(0.8)

    after = [t for t in _request_times(feed_server, "/a.xml") if t >= resumed]
    assert len(after) == 1, after
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_moved_source_is_followed_and_status_and_check_tell_ops_with_json_logs(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    new_url = feed_server.url("/new.xml")
    feed_server.routes["/old.xml"] = Route(status=301, headers={"Location": new_url})
    feed_server.routes["/new.xml"] = Route(body=_rss("new"))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("moving", feed_server.url("/old.xml")))
    daemon = start_daemon(log_format="json")

    _wait_until(lambda: feed_server.hits["/new.xml"] >= 5, what="polls after the move")

    assert feed_server.hits["/old.xml"] == 3  # then the new url is used directly
    hint = f"moved permanently: update feeds.toml url to {new_url}"
    status = _aggregator("status", "--json", "--config", str(config))
    [row] = json.loads(status.stdout)
    assert (row["state"], row["hint"]) == ("ok", hint)
    check = _aggregator("check", "--config", str(config))
    assert f"note: source 'moving': {hint}" in check.stdout
    polls = [r for r in daemon.records() if str(r["message"]).startswith("update: source=moving")]
    assert len(polls) >= 5
    assert all(r["source"] == "moving" and r["outcome"] in ("new", "unchanged") for r in polls)
    assert daemon.stop() == 0


def test_cron_trigger_reads_crontab_fields_in_the_source_timezone() -> None:
    trigger = cron_trigger("30 8 * * mon-fri", "Asia/Shanghai")
    saturday_noon_utc = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai

    fire = trigger.get_next_fire_time(None, saturday_noon_utc)

    # Monday 08:30 in Shanghai is 00:30 UTC; up to CRON_JITTER_SECONDS later
    monday = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)
    assert monday <= fire <= monday + timedelta(seconds=CRON_JITTER_SECONDS)


# --- supervision (issue 10) -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_reload_whose_fetcher_cannot_be_built_keeps_the_old_one_and_sighup_still_works(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # any readable CA bundle will do: the sources are plain HTTP
    ca_source = DATA_DIR / "fetch" / "localhost-self-signed.cert.pem"
    ca_file = tmp_path / "ca.pem"
    shutil.copy(ca_source, ca_file)
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("a", feed_server.url("/a.xml")))
    daemon = start_daemon(env={**os.environ, "SSL_CERT_FILE": str(ca_file)})
    _wait_until(lambda: feed_server.hits["/a.xml"] >= 1, what="the first poll")

    ca_file.unlink()  # the next fetcher cannot load its CA bundle
    _write_config(config, _source("a", feed_server.url("/a.xml")), settings=SETTINGS.replace('"5s"', '"6s"'))
    daemon.wait_for_log(r"config: could not apply the edit of .*feeds\.toml \(file changed\).*last good")
    assert "Traceback" in daemon.log and "FileNotFoundError" in daemon.log
    polls = feed_server.hits["/a.xml"]
    _wait_until(lambda: feed_server.hits["/a.xml"] > polls, what="a poll with the old fetcher")

    shutil.copy(ca_source, ca_file)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log(r"config: .*feeds\.toml reloaded \(SIGHUP\): settings changed: timeout")
    assert daemon.stop() == 0


@pytest.mark.slow
def test_healthz_answers_503_while_a_feed_fails_to_publish_for_longer_than_the_interval(
    feed_server: FixtureServer, tmp_path: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    feed_server.routes["/a.xml"] = Route(body=_rss("a"))
    config = tmp_path / "feeds.toml"
    _write_config(config, _source("a", feed_server.url("/a.xml"), "1h"),
                  settings=SETTINGS + 'interval = "1s"\noutput_dir = "blocked/feeds"\n')
    (tmp_path / "blocked").write_text("a file where the output folder should be")
    daemon = start_daemon()
    daemon.wait_for_log(r"publish: .*cannot write")
    _wait_until(lambda: daemon.get("/healthz")[0] == 503, what="/healthz to report the overdue publish")
    assert daemon.stop() == 0


def test_an_unexpected_error_in_a_poll_is_recorded_as_the_sources_error_and_its_job_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aggregator.config.load import parse_config
    from aggregator.daemon.scheduler import Daemon

    class Buggy:
        async def update_source(self, source: object) -> object:
            raise KeyError("last_error.type_name")  # e.g. a corrupt state row

    config_path = tmp_path / "feeds.toml"
    _write_config(config_path, _source("a", "http://127.0.0.1:9/a.xml", "1h"))
    config = parse_config(config_path.read_text(encoding="utf-8"), config_path, {})
    storage = open_storage(str(tmp_path / "store.db"))

    async def scenario() -> None:
        daemon = Daemon(config_path, {}, config, storage, None)  # type: ignore[arg-type]  # no parsing here
        daemon._scheduler.start()
        try:
            daemon._schedule(config.sources[0], datetime.now(UTC) + timedelta(hours=1))
            await daemon._poll(config.sources[0], Buggy())  # type: ignore[arg-type]
            job = daemon._scheduler.get_job("a")
            assert job is not None and job.next_run_time is not None
        finally:
            daemon._scheduler.shutdown(wait=False)

    try:
        asyncio.run(scenario())
        state = storage.get_source_state("a")
    finally:
        storage.close()
    assert state is not None and state.last_error is not None
    assert (state.last_error.type_name, state.failures) == ("KeyError", 1)
    assert "daemon: source=a unexpected error" in caplog.text and "Traceback" in caplog.text


def test_a_supervised_task_that_fails_is_logged_with_its_traceback_and_restarted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aggregator.daemon import scheduler

    monkeypatch.setattr(scheduler, "SUPERVISOR_RESTART_SECONDS", 0.01)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"failure {len(runs)}")

    async def scenario() -> None:
        await asyncio.wait_for(scheduler.supervise("flaky", flaky), timeout=5)

    asyncio.run(scenario())
    assert runs == [0, 1, 2]
    assert caplog.text.count("daemon: task flaky failed; restarting it") == 2
    assert "RuntimeError: failure 2" in caplog.text
