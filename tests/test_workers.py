"""workers: a crashing, killed or runaway call fails only itself; workers never hold the writer lock.

Real worker processes throughout; the functions they run are defined here, at module level, so the
workers can import them.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aggregator.errors import ParseError, WorkerError
from aggregator.workers import WorkerPool
from tests.conftest import REPO_ROOT

#: workers import this module before they say they are ready, as they import the stages in real use
PRELOAD = ("tests.test_workers",)


def double(value: int) -> int:
    return value * 2


def refuse(url: str) -> int:
    raise ParseError("s", url, "parse: not JSON")


def die_by_sigkill() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def spin(seconds: float) -> int:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return 1


def my_pid() -> int:
    return os.getpid()


def test_a_call_returns_its_result_and_errors_come_back_as_raised() -> None:
    async def main(pool: WorkerPool) -> None:
        assert await pool.run("s", double, 21) == 42
        with pytest.raises(ParseError) as caught:
            await pool.run("s", refuse, "http://x/a.json")
        assert (caught.value.url, str(caught.value)) == ("http://x/a.json", "parse: not JSON")

    with WorkerPool(1, 10.0, preload=PRELOAD) as pool:
        asyncio.run(main(pool))


def test_a_killed_worker_fails_its_call_only_and_is_replaced() -> None:
    async def main(pool: WorkerPool) -> list[object]:
        return await asyncio.gather(
            pool.run("bad", die_by_sigkill), pool.run("good", spin, 0.3), pool.run("good2", double, 4),
            return_exceptions=True,
        )

    with WorkerPool(2, 10.0, preload=PRELOAD) as pool:
        results = asyncio.run(main(pool))
        assert isinstance(results[0], WorkerError)
        assert results[0].source == "bad"
        assert "worker process died (killed by SIGKILL)" in str(results[0])
        assert results[1:] == [1, 8]
        assert pool.replaced == 1
        assert asyncio.run(pool.run("after", double, 5)) == 10


def test_a_call_over_the_budget_is_stopped_and_its_worker_replaced() -> None:
    async def main(pool: WorkerPool) -> list[object]:
        return await asyncio.gather(pool.run("slow", spin, 30.0), pool.run("quick", double, 1),
                                    return_exceptions=True)

    with WorkerPool(2, 0.5, preload=PRELOAD) as pool:
        started = time.monotonic()
        results = asyncio.run(main(pool))
        assert time.monotonic() - started < 5.0
        assert isinstance(results[0], WorkerError)
        assert "longer than its budget of 0.5 s" in str(results[0])
        assert results[1] == 2
        killed = set(pool.pids())
        assert asyncio.run(pool.run("next", double, 3)) == 6
        assert pool.replaced == 1
    assert killed  # the replacement ran the next call


def test_a_worker_that_died_while_idle_is_replaced_before_the_next_call() -> None:
    with WorkerPool(1, 10.0, preload=PRELOAD) as pool:
        first = asyncio.run(pool.run("s", my_pid))
        os.kill(first, signal.SIGKILL)
        time.sleep(0.2)
        second = asyncio.run(pool.run("s", my_pid))
    assert second != first


def test_workers_are_not_children_of_the_aggregator_process() -> None:
    # forked by the forkserver: nothing of the parent's (an flock, a database socket) is inherited
    with WorkerPool(1, 10.0, preload=PRELOAD) as pool:
        pid = asyncio.run(pool.run("s", my_pid))
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent != os.getpid()


_LOCK_HOLDER = textwrap.dedent(
    """
    import asyncio, fcntl, os, sys
    from aggregator.workers import WorkerPool
    from tests.test_workers import spin

    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with WorkerPool(1, 60.0, preload=("tests.test_workers",)) as pool:
        async def main():
            task = asyncio.create_task(pool.run("s", spin, 30.0))
            while not pool.pids():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            print(" ".join(map(str, pool.pids())), flush=True)
            await task
        asyncio.run(main())
    """
)


def test_a_busy_worker_outliving_its_killed_parent_does_not_hold_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "store.lock"
    with subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(lock)], cwd=REPO_ROOT,
                          stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        parent.kill()
    assert Path(f"/proc/{worker_pid}").exists()  # still spinning on its document
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free at once
    finally:
        os.close(fd)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{worker_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    stat = Path(f"/proc/{worker_pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # it left with its parent
