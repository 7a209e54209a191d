"""Config across machines: a worker whose feeds.toml differs from the one recorded in the store leaves the
sources it disagrees on to the workers that share their definition, and says so loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from aggregator.cluster.definitions import config_hash, definition_hash
from aggregator.config.load import parse_config
from tests.cluster_processes import AggregatorProcess, close_all, compose_command, wait_until
from tests.conftest import fresh_store_url
from tests.fixture_server import FixtureServer, Route

RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>a</title>'
       b"<link>https://example.com/a.html</link><guid>a</guid></item></channel></rss>")
#: a short interval keeps the first polls (spread over min(interval, 10 s)) within seconds
HEADER = ('[settings]\nallow_private_networks = true\nper_host_delay = "0.01s"\nlease = "3s"\ninterval = "2s"\n\n'
          '[categories.news]\ntitle = "News"\n\n')


def _source(name: str, url: str) -> str:
    return f'[[sources]]\nname = "{name}"\nurl = "{url}"\ncategories = ["news"]\n\n'


def test_a_definition_hash_covers_the_source_and_the_defaults_it_inherits(tmp_path: Path) -> None:
    base = HEADER + _source("a", "http://127.0.0.1/a.xml") + _source("b", "http://127.0.0.1/b.xml")
    config = parse_config(base, tmp_path / "feeds.toml")
    slower = parse_config(base.replace('interval = "2s"', 'interval = "3s"'), tmp_path / "feeds.toml")
    moved = parse_config(base.replace("/b.xml", "/b2.xml"), tmp_path / "feeds.toml")
    elsewhere = parse_config(base + '\n', tmp_path / "other" / "feeds.toml", {"AGGREGATOR_STORE": "postgresql://x/y"})

    assert definition_hash(config, config.source("a")) != definition_hash(slower, slower.source("a"))
    assert definition_hash(config, config.source("a")) == definition_hash(moved, moved.source("a"))
    assert definition_hash(config, config.source("b")) != definition_hash(moved, moved.source("b"))
    # where the file lies and which store it names are the machine's business, not the cluster's
    assert config_hash(config) == config_hash(elsewhere) != config_hash(moved)


@pytest.mark.slow
def test_a_worker_with_a_different_feeds_toml_does_not_poll_the_sources_it_disagrees_on(
    feed_server: FixtureServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for path in ("/same.xml", "/changed-old.xml", "/changed-new.xml", "/dropped.xml", "/added.xml"):
        feed_server.routes[path] = Route(body=RSS.replace(b"<guid>a", path.encode() + b"<guid>a"))
    recorded, different = tmp_path / "recorded" / "feeds.toml", tmp_path / "different" / "feeds.toml"
    recorded.parent.mkdir()
    different.parent.mkdir()
    recorded.write_text(HEADER + _source("same", feed_server.url("/same.xml"))
                        + _source("changed", feed_server.url("/changed-old.xml"))
                        + _source("dropped", feed_server.url("/dropped.xml")), encoding="utf-8")
    different.write_text(HEADER + _source("same", feed_server.url("/same.xml"))
                         + _source("changed", feed_server.url("/changed-new.xml"))
                         + _source("added", feed_server.url("/added.xml")), encoding="utf-8")
    with fresh_store_url("postgresql", tmp_path, request) as url:
        env = {**os.environ, "AGGREGATOR_STORE": url}
        migrate = AggregatorProcess(compose_command("migrate", recorded), env)
        assert migrate.process.wait(timeout=30) == 0, migrate.log
        migrate.close()
        odd = AggregatorProcess(compose_command("worker", different), env)
        processes = [odd]
        try:
            odd.wait_until_started()
            odd.wait_for_log(r"differs from the feeds.toml recorded in the store .* does not poll the 2 source\(s\) "
                             r"whose definition it does not share: added, changed")
            wait_until(lambda: feed_server.hits["/same.xml"] >= 2, 20, "the shared source to be polled twice")
            # by now every recorded source has been due at least once: the odd worker left them alone
            assert feed_server.hits["/changed-new.xml"] == feed_server.hits["/added.xml"] == 0
            assert feed_server.hits["/changed-old.xml"] == feed_server.hits["/dropped.xml"] == 0
            # the cluster holds the writer lock shared: a cron `poll` on the same store refuses (exit 3)
            poll = subprocess.run([sys.executable, "-m", "aggregator", "poll", "--lock-timeout", "0.5", "--config",
                                   str(recorded)], env=env, capture_output=True, text=True, timeout=60, check=False)
            assert poll.returncode == 3, poll.stderr
            # a worker on the recorded file polls what the odd one left alone
            processes.append(AggregatorProcess(compose_command("worker", recorded), env))
            processes[-1].wait_until_started()
            wait_until(lambda: feed_server.hits["/changed-old.xml"] >= 1 and feed_server.hits["/dropped.xml"] >= 1,
                       20, "the recorded definitions to be polled")
            with psycopg.connect(url, autocommit=True) as db:
                workers = db.execute("SELECT count(*), count(DISTINCT config_hash) FROM workers").fetchone()
        finally:
            close_all(processes)
    assert feed_server.hits["/changed-new.xml"] == feed_server.hits["/added.xml"] == 0
    assert workers == (2, 2)


def test_a_role_other_than_all_needs_a_postgresql_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator import cli

    monkeypatch.delenv("AGGREGATOR_STORE", raising=False)
    config = tmp_path / "feeds.toml"
    config.write_text(HEADER + _source("a", "http://127.0.0.1/a.xml"), encoding="utf-8")

    assert cli.main(["run", "--role", "worker", "--config", str(config)]) == cli.EXIT_CONFIG
    assert "run --role worker needs a postgresql:// store" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
