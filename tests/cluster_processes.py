"""`aggregator` processes of a PostgreSQL cluster for tests: started with a command line, logs collected.

No business logic. The command lines are docker-compose.yml's own (`compose_command`), so the tests run
what the deployment runs, as processes, where no Docker engine is available.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

START_SECONDS = 20.0


def compose_services() -> dict[str, dict[str, object]]:
    data = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services: dict[str, dict[str, object]] = data["services"]
    return services


def compose_command(service: str, config: Path, listen: str = "127.0.0.1:0") -> list[str]:
    """The service's `command` from docker-compose.yml, with this test's feeds.toml and a free port."""
    command = compose_services()[service]["command"]
    assert isinstance(command, list)
    args = [str(arg) for arg in command]
    args[args.index("--config") + 1] = str(config)
    if "--listen" in args:
        args[args.index("--listen") + 1] = listen
    return args


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class AggregatorProcess:
    """`python -m aggregator <args>` with stderr collected line by line."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.url = ""
        self._lock = threading.Lock()
        self.process = subprocess.Popen([sys.executable, "-m", "aggregator", *args], cwd=REPO_ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = START_SECONDS) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def logged() -> bool:
            match = re.search(pattern, self.log)
            if match:
                found.append(match)
            elif self.process.poll() is not None:
                raise AssertionError(f"process exited with {self.process.returncode}:\n{self.log}")
            return match is not None

        try:
            wait_until(logged, timeout, f"log line /{pattern}/")
        except AssertionError as e:
            raise AssertionError(f"{e}; it logged:\n{self.log[-5000:]}") from None
        return found[0]

    def wait_until_started(self) -> AggregatorProcess:
        self.url = self.wait_for_log(r"daemon: started: .* listening on (http://\S+)").group(1)
        return self

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()


def close_all(processes: Sequence[AggregatorProcess]) -> None:
    """SIGTERM to every process at once, then wait for each (they drain in parallel)."""
    for process in processes:
        if process.process.poll() is None:
            process.process.terminate()
    for process in processes:
        process.close()
