"""A clean install runs: every import is declared, every module imports, `run` and `serve` start.

These tests guard against what happened once: the daemon imported a package that only the developer's
machine had, so `pip install .` gave a program that died at start. They run under the interpreter of the
brand-new virtual environment that ./scripts/test (= .ci/run) creates, so nothing outside pyproject.toml
can make them pass.
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

import aggregator
from tests.conftest import REPO_ROOT

#: how long a started process may take to answer /healthz (a fresh venv imports everything cold)
START_SECONDS = 60.0
MINIMAL_CONFIG = """\
[settings]
allow_private_networks = true
listen = "127.0.0.1:{port}"

[categories.news]
title = "News"

[[sources]]
name = "local"
url = "http://127.0.0.1:9/feed.xml"
categories = ["news"]
"""


def _normalized(name: str) -> str:
    """PEP 503 name normalisation: `Pydantic_Core` and `pydantic-core` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_distributions(*extras: str) -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    names = {_normalized(m.group(0)) for r in requirements if (m := re.match(r"[A-Za-z0-9._-]+", r))}
    return names - {"aggregator"}


def _imported_top_level_names(folder: Path) -> dict[str, set[str]]:
    """Top-level module name → the files importing it, over every import statement (lazy ones included)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _undeclared_imports(folder: Path, declared: set[str]) -> list[str]:
    distributions = packages_distributions()
    problems = []
    for name, files in sorted(_imported_top_level_names(folder).items()):
        if name in sys.stdlib_module_names or name in ("aggregator", "tests", "bench"):
            continue
        owners = {_normalized(d) for d in distributions.get(name, [])}
        if not owners:
            problems.append(f"{name}: imported by {', '.join(sorted(files))} but installed by no distribution")
        elif not owners & declared:
            problems.append(f"{name}: from {', '.join(sorted(owners))}, imported by {', '.join(sorted(files))},"
                            " is not declared in pyproject.toml")
    return problems


def test_every_third_party_import_of_the_package_is_a_declared_dependency() -> None:
    assert _undeclared_imports(REPO_ROOT / "aggregator", _declared_distributions("postgresql")) == []


def test_every_third_party_import_of_the_tests_is_declared_in_the_test_extra() -> None:
    declared = _declared_distributions("postgresql", "test")
    assert _undeclared_imports(REPO_ROOT / "tests", declared) == []


def test_the_suite_runs_in_a_virtual_environment_that_sees_no_global_packages() -> None:
    if os.environ.get("CI") != "true" and sys.prefix == sys.base_prefix:
        pytest.skip("not in a virtual environment: run ./scripts/test, which creates a fresh one")
    assert sys.prefix != sys.base_prefix, "the suite must run in the fresh venv that ./scripts/test creates"
    config = (Path(sys.prefix) / "pyvenv.cfg").read_text(encoding="utf-8")
    assert re.search(r"^include-system-site-packages\s*=\s*false\s*$", config, re.MULTILINE), config
    assert not any(path.startswith(sys.base_prefix) and "site-packages" in path for path in sys.path), sys.path


def test_every_module_of_the_package_imports_in_a_fresh_interpreter() -> None:
    walked = pkgutil.walk_packages(aggregator.__path__, "aggregator.")
    # __main__ runs the CLI when imported: it is started as `python -m aggregator` instead
    names = sorted(info.name for info in walked if not info.name.endswith(".__main__"))
    assert "aggregator.daemon.scheduler" in names and "aggregator.fetch.client" in names
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stderr
    as_module = subprocess.run([sys.executable, "-m", "aggregator", "--version"], capture_output=True, text=True,
                               timeout=60, cwd=REPO_ROOT, check=False)
    assert (as_module.returncode, as_module.stdout.strip()) == (0, f"aggregator {aggregator.__version__}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as e:
        return e.code


@contextmanager
def _started(command: list[str], cwd: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running until its /healthz answers 200; stopped with SIGTERM afterwards."""
    log = cwd / "process.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command} exited {process.returncode}: {log.read_text(errors='replace')}")
            try:
                if _healthz(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{command} did not answer /healthz within {START_SECONDS} s")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("command", ["run", "serve"])
def test_run_and_serve_start_from_the_installed_script_and_answer_healthz(command: str, tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "feeds.toml").write_text(MINIMAL_CONFIG.format(port=port), encoding="utf-8")
    script = Path(sys.executable).with_name("aggregator")
    with _started([str(script), command], tmp_path, port) as process:
        assert process.poll() is None
    assert process.returncode == 0


def _dockerfile_command() -> tuple[list[str], list[str], str]:
    """The image's ENTRYPOINT + CMD, the HEALTHCHECK probe, and its WORKDIR, as the Dockerfile says them."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, argument = line.strip().partition(" ")
            instructions[name] = argument.strip()
    command = json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"])
    probe = json.loads(instructions["HEALTHCHECK"].partition(" CMD ")[2])
    return command, probe, instructions["WORKDIR"]


@pytest.mark.slow
def test_the_wheel_installs_in_a_second_fresh_venv_and_runs_the_image_command_line(tmp_path: Path) -> None:
    """Docker has no engine on these machines: the image's install (`pip install` of the project) and its
    exact command line are run as processes instead; only the paths and the port are moved into tmp_path."""
    wheels, env_dir, workdir = tmp_path / "wheels", tmp_path / "venv", tmp_path / "srv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO_ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = wheels.glob("aggregator-*.whl")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{wheel}[postgresql]"], check=True,
                   capture_output=True, timeout=600)
    command, probe, image_workdir = _dockerfile_command()
    port = _free_port()
    workdir.mkdir()
    (workdir / "feeds.toml").write_text(MINIMAL_CONFIG.format(port=port), encoding="utf-8")
    image_port = re.search(r":(\d+)/healthz", " ".join(probe))
    assert image_port is not None

    def local(argument: str) -> str:
        return (argument.replace(image_workdir, str(workdir)).replace("0.0.0.0:", "127.0.0.1:")
                .replace(f":{image_port.group(1)}", f":{port}"))

    command = [str(env_dir / "bin" / command[0]), *map(local, command[1:])]
    with _started(command, workdir, port):
        probe_command = [str(python) if probe[0] == "python" else probe[0], *map(local, probe[1:])]
        assert subprocess.run(probe_command, timeout=30, check=False).returncode == 0
