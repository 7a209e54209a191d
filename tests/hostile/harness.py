"""What every hostile case shares: healthy sources, a feeds.toml, `aggregator` as a measured subprocess; no business logic.

The contract each case checks (issue 10): the healthy sources publish exactly what they serve, the
hostile source is either ingested with the damage confined to its items or recorded as a clear
error in `status --json`, the child's peak memory stays under `MEMORY_BOUND_MIB`, the pass ends in
bounded time, and the next `poll` works.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from tests.conftest import REPO_ROOT
from tests.fixture_server import FixtureServer, Route

#: peak resident memory of `aggregator` or any of its workers (ru_maxrss of the waited-for child tree)
MEMORY_BOUND_MIB = 600
ATOM_NS = "{http://www.w3.org/2005/Atom}"


@dataclass(frozen=True)
class HealthyItem:
    article_id: str
    title: str

    @property
    def url(self) -> str:
        return f"http://news.example.cn/a/{self.article_id}.html"


@dataclass(frozen=True)
class HealthySource:
    name: str
    category: str
    path: str
    items: tuple[HealthyItem, ...]
    atom: bool = False
    #: changes with the content, so conditional GETs see a new version
    version: int = 1

    def route(self) -> Route:
        return Route(body=render_atom(self.name, self.items) if self.atom else render_rss(self.name, self.items),
                     content_type="application/atom+xml" if self.atom else "application/rss+xml; charset=utf-8",
                     etag=f'"{self.name}-{self.version}"')


HEALTHY = (
    HealthySource("healthy-rss", "healthya", "/healthy.rss", tuple(
        HealthyItem(f"NW2022012422578317{n:02d}", f"南通日报 第{n}条 区域经济观察") for n in range(3))),
    HealthySource("healthy-atom", "healthyb", "/healthy.atom", tuple(
        HealthyItem(f"NW2022052623919217{n:02d}", f"泉州晚报 第{n}条 港口吞吐量") for n in range(3)), atom=True),
)


def render_rss(title: str, items: tuple[HealthyItem, ...]) -> bytes:
    entries = "".join(
        f"<item><title>{i.title}</title><link>{i.url}</link><guid>{i.url}</guid>"
        f"<pubDate>Mon, 24 Jan 2022 00:48:09 +0800</pubDate><description>&lt;p&gt;{i.title} 正文&lt;/p&gt;</description></item>"
        for i in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://news.example.cn/</link><description>d</description>{entries}</channel></rss>").encode()


def render_atom(title: str, items: tuple[HealthyItem, ...]) -> bytes:
    entries = "".join(
        f'<entry><id>{i.url}</id><title>{i.title}</title><link rel="alternate" href="{i.url}"/>'
        f'<updated>2022-05-26T08:00:00Z</updated><content type="html">&lt;p&gt;{i.title}&lt;/p&gt;</content></entry>'
        for i in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:{title}</id>'
            f"<title>{title}</title><updated>2022-05-26T08:00:00Z</updated>{entries}</feed>").encode()


@dataclass(frozen=True)
class ExtraSource:
    """A source besides the healthy ones; `toml` holds extra `key = value` lines."""

    name: str
    path: str
    category: str = "hostile"
    toml: tuple[str, ...] = ()


@dataclass
class Run:
    """One finished `aggregator` subprocess."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    #: peak RSS of the process and every descendant it waited for (wait4's ru_maxrss)
    peak_rss_mib: float

    def check(self) -> Run:
        assert self.returncode == 0, f"{self.args} exited {self.returncode}:\n{self.stdout}\n{self.stderr[-3000:]}"
        return self


@dataclass
class Installation:
    """feeds.toml, store and output dir of one hostile case, served by `server`."""

    root: Path
    server: FixtureServer
    store: str
    healthy: tuple[HealthySource, ...] = HEALTHY
    extra: list[ExtraSource] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "feeds.toml"

    @property
    def output_dir(self) -> Path:
        return self.root / "public"

    def write(self) -> Path:
        for source in self.healthy:
            self.server.routes[source.path] = source.route()
        settings = {
            "store": json.dumps(self.store), "output_dir": '"public"', "allow_private_networks": "true",
            "per_host_concurrency": "8", "per_host_delay": '"1ms"', "concurrency": "32", "timeout": '"3s"',
            "base_url": '"https://news.example.org/"', **self.settings,
        }
        lines = ["[settings]", *(f"{k} = {v}" for k, v in settings.items()), ""]
        categories = {s.category for s in self.healthy} | {s.category for s in self.extra}
        for category in sorted(categories):
            lines += [f"[categories.{category}]", f'title = "{category}"', ""]
        sources = [(s.name, s.path, s.category, ()) for s in self.healthy]
        sources += [(s.name, s.path, s.category, s.toml) for s in self.extra]
        for name, path, category, toml in sources:
            lines += ["[[sources]]", f'name = "{name}"', f'url = "{self.server.url(path)}"',
                      f'categories = ["{category}"]', *toml, ""]
        self.config.write_text("\n".join(lines), encoding="utf-8")
        return self.config

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`aggregator ARGS --config …` started in its own session (so a test can kill its whole tree)."""
        with open(self.root / "stdout.log", "ab") as out, open(self.root / "stderr.log", "ab") as err:
            return subprocess.Popen([*_command(), *args, "--config", str(self.config)], stdout=out, stderr=err,
                                    env=_env(env), cwd=self.root, start_new_session=True)

    def requests_served(self) -> int:
        return sum(self.server.hits.values())

    def run(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
        return run_measured([*_command(), *args, "--config", str(self.config)], timeout, env, self.root)

    def poll(self, *args: str, timeout: float = 60) -> Run:
        return self.run("-q", "poll", "--all", *args, timeout=timeout).check()

    def status(self) -> dict[str, dict[str, Any]]:
        run = self.run("status", "--json").check()
        return {row["source"]: row for row in json.loads(run.stdout)}

    def published_entries(self, category: str) -> list[tuple[str, str]]:
        """(title, source link) of each entry of a published category feed, parsed strictly. The source
        link is `rel="via"` where the entry's alternate link is our own article page, else the alternate."""
        tree = etree.parse(str(self.output_dir / f"{category}.atom"), etree.XMLParser(resolve_entities=False))
        entries = []
        for entry in tree.getroot().iter(f"{ATOM_NS}entry"):
            links = {link.get("rel", "alternate"): link.get("href") or "" for link in entry.iter(f"{ATOM_NS}link")}
            entries.append((entry.findtext(f"{ATOM_NS}title") or "", links.get("via", links.get("alternate", ""))))
        return entries

    def assert_healthy_published(self) -> None:
        """Each healthy category holds exactly the items its source serves, once each."""
        for source in self.healthy:
            entries = self.published_entries(source.category)
            assert sorted(entries) == sorted((i.title, i.url) for i in source.items), source.name

    def assert_every_published_file_is_well_formed(self) -> None:
        files = [p for p in self.output_dir.rglob("*") if p.suffix in (".atom", ".xml", ".opml") and p.is_file()]
        assert files, f"nothing published in {self.output_dir}"
        for path in files:
            etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))  # raises if not
        for path in self.output_dir.rglob("*.json"):
            json.loads(path.read_bytes())  # the JSON Feed twins: valid JSON, or this raises


def _command() -> list[str]:
    return [sys.executable, "-m", "aggregator"]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, **(extra or {})}
    env.pop("AGGREGATOR_STORE", None)
    return env


def run_measured(command: list[str], timeout: float, env: dict[str, str] | None, cwd: Path) -> Run:
    """Run to completion (killing the whole process group past `timeout`) and measure peak memory with wait4."""
    started = time.monotonic()
    out_path, err_path = cwd / f".out.{os.getpid()}", cwd / f".err.{os.getpid()}"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=_env(env), cwd=cwd, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - started > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                raise AssertionError(f"{command[3:]} did not finish within {timeout} s: "
                                     f"{err_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.02)
    kill_leftovers(process.pid)
    run = Run(tuple(command[3:]), process.returncode, out_path.read_text(errors="replace"),
              err_path.read_text(errors="replace"), time.monotonic() - started, usage.ru_maxrss / 1024)
    out_path.unlink()
    err_path.unlink()
    return run


def kill_leftovers(session_id: int) -> None:
    """Kill what is left of a process group this test started (e.g. orphaned pool workers)."""
    try:
        os.killpg(session_id, signal.SIGKILL)
    except ProcessLookupError:
        pass
