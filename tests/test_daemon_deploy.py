"""The deployment files (Dockerfile, docker-compose.yml, deploy/aggregator.service) agree with the code.

No Docker engine or systemd runs here: the tests read the files and check what they tell the daemon
(command line, paths, ports, exit codes, grace periods) against the CLI and the daemon, so a renamed
option or a changed exit code cannot leave them stale.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from aggregator import cli
from aggregator.config.load import load_config
from aggregator.daemon.scheduler import SHUTDOWN_GRACE_SECONDS
from aggregator.serve.app import parse_listen
from tests.conftest import REPO_ROOT

RUN_HANDLER = cli.build_parser().parse_args(["run"]).handler


def _dockerfile() -> dict[str, str]:
    """Instruction → its argument text (continuation lines joined; the last one of a name wins)."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, argument = line.strip().partition(" ")
            instructions[name] = argument.strip()
    return instructions


def _unit_service_section() -> dict[str, list[str]]:
    """The [Service] section of the systemd unit: key → every value it is given."""
    section: dict[str, list[str]] = {}
    current = None
    for line in (REPO_ROOT / "deploy/aggregator.service").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line
        elif current == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return section


def test_the_image_runs_the_daemon_with_its_config_store_and_port_where_compose_expects_them() -> None:
    docker = _dockerfile()
    compose = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    args = cli.build_parser().parse_args(json.loads(docker["CMD"]))
    workdir = PurePosixPath(docker["WORKDIR"])
    _, port = parse_listen(args.listen)

    assert json.loads(docker["ENTRYPOINT"]) == ["aggregator"]
    assert args.handler is RUN_HANDLER
    assert PurePosixPath(args.config) == workdir / "feeds.toml"
    assert docker["EXPOSE"] == str(port)
    assert f"http://127.0.0.1:{port}/healthz" in docker["HEALTHCHECK"]
    assert json.loads(docker["VOLUME"]) == [str(workdir / "store")]
    # the shipped feeds.toml keeps the database and the feed files under store/, i.e. on the volume
    shipped = load_config(REPO_ROOT / "feeds.toml", env={}).settings
    for path in (shipped.store, shipped.output_dir):
        assert Path(path).resolve().is_relative_to(REPO_ROOT / "store"), path
    # the compose services (tests/test_cluster_deploy.py) mount feeds.toml where the image's CMD reads it
    assert f"- ./feeds.toml:{args.config}:ro\n" in compose
    grace = re.search(r"^\s*stop_grace_period: (\d+)s$", compose, re.MULTILINE)
    assert grace is not None and int(grace.group(1)) > SHUTDOWN_GRACE_SECONDS


def test_the_systemd_unit_runs_the_daemon_reloads_on_sighup_and_stops_restarting_on_a_bad_config() -> None:
    service = _unit_service_section()
    [exec_start] = service["ExecStart"]
    command = shlex.split(exec_start)
    [workdir] = service["WorkingDirectory"]
    config = next(value.removeprefix("AGGREGATOR_CONFIG=") for value in service["Environment"]
                  if value.startswith("AGGREGATOR_CONFIG="))

    assert PurePosixPath(command[0]).name == "aggregator"
    assert cli.build_parser().parse_args(command[1:]).handler is RUN_HANDLER
    assert PurePosixPath(config) == PurePosixPath(workdir) / "feeds.toml"
    assert service["ReadWritePaths"] == [str(PurePosixPath(workdir) / "store")]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["RestartPreventExitStatus"] == [str(cli.EXIT_CONFIG)]
    assert service["KillMode"] == ["mixed"]
    assert int(service["TimeoutStopSec"][0]) > SHUTDOWN_GRACE_SECONDS


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit_file() -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(REPO_ROOT / "deploy/aggregator.service")],
                            capture_output=True, text=True, timeout=60, check=False)

    # the only complaint allowed: the virtualenv of a real installation is not on this machine
    problems = [line for line in result.stderr.splitlines() if "is not executable" not in line]
    assert problems == []
