"""Run parse and clean in worker processes, one document per call, each call within a time budget.

A worker that crashes, is killed (SIGKILL, the OOM killer) or overruns `settings.document_budget`
fails the one call it was running: the caller gets a WorkerError for that source, the worker is
replaced, and every other call goes on. That is what `concurrent.futures.ProcessPoolExecutor`
cannot give: one dead worker breaks its whole pool (BrokenProcessPool) for every pending call.

Workers are started by multiprocessing's `forkserver`: they are forked from a clean, single-threaded
server process, never from the aggregator process itself, so no worker inherits the writer lock
(an flock is shared by every process holding a copy of its file descriptor, and a PostgreSQL
advisory lock lives as long as a copy of its session's socket) nor any thread's held mutex. A worker
whose parent died exits by itself. No business logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Self, TypeVar

from aggregator.errors import WorkerError

T = TypeVar("T")

log = logging.getLogger("aggregator.workers")

#: how long close() waits for a worker to exit after its pipe closed, before killing it
CLOSE_WAIT_SECONDS = 2.0
#: how long a new worker may take to import the stages before it counts as failed
START_TIMEOUT_SECONDS = 60.0
#: what a worker imports before it says it is ready, so a document's budget never pays for imports
PRELOAD_MODULES = (
    "aggregator.update", "aggregator.items", "aggregator.identity", "aggregator.categories", "pypinyin",
    "aggregator.parse", "aggregator.clean", "aggregator.similar.detect",
    "numpy",  # signing imports it on first use (similar/signature.py): 70-200 ms a worker would otherwise pay
)
#: how often a worker checks that its parent is still alive
PARENT_CHECK_SECONDS = 1.0


class WorkerPool:
    """`size` worker processes; `await pool.run(source_name, function, *args)` runs one call in one of them.

    Workers start on first need (a pass of 304s starts none), so a pool is cheap to create; being
    forked by the forkserver, they may start at any time, threads and locks notwithstanding. Use a pool
    from one event loop. `function` and `args` must pickle (module-level functions, records).
    """

    def __init__(self, size: int, budget_seconds: float, *, preload: tuple[str, ...] = PRELOAD_MODULES) -> None:
        if size < 1:
            raise ValueError(f"workers: pool size must be >= 1, not {size}")
        self.budget_seconds = budget_seconds
        self._context: ForkServerContext = multiprocessing.get_context("forkserver")
        # the server imports the stages once; every worker forked from it has them without paying again
        self._context.set_forkserver_preload(list(preload))
        self._idle: list[_Worker] = []
        #: every worker started and not stopped, idle or busy
        self._alive: set[_Worker] = set()
        self._slots: asyncio.Semaphore | None = None
        self._size = size
        self._preload = preload
        #: workers replaced after a crash or an overrun, for logs and tests
        self.replaced = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def start_all(self) -> None:
        """Start every worker now and wait until each has imported the stages (the daemon does this at
        start, so its first polls do not wait for imports); one that fails to start is replaced later."""
        while len(self._alive) < self._size:
            self._idle.append(await asyncio.to_thread(self._start))
        await asyncio.gather(*(self._is_ready(worker) for worker in self._idle))

    def pids(self) -> list[int]:
        """The process ids of the workers started so far."""
        return [worker.process.pid for worker in self._alive if worker.process.pid is not None]

    async def run(self, source_name: str, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker; its exception re-raised here; WorkerError when the worker dies
        or the call overruns the budget (the worker is then killed and replaced)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            # the first start waits for the forkserver to import the stages: not in the event loop's thread
            worker = self._idle.pop() if self._idle else await asyncio.to_thread(self._start)
            healthy = False
            try:
                if not await self._is_ready(worker):
                    # died while idle (the OOM killer picks large processes) or at start: one fresh try
                    worker = self._replace(worker)
                    if not await self._is_ready(worker):
                        raise WorkerError(source_name, f"parse: a worker process failed to start "
                                          f"({worker.describe_exit()})")
                result = await self._call(worker, source_name, function, args)
                healthy = True
                return result
            finally:
                # a cancelled or failed call leaves the worker busy or dead: never reuse it
                self._idle.append(worker if healthy else self._replace(worker))

    async def _is_ready(self, worker: _Worker) -> bool:
        """Whether the worker has imported the stages and can take a call (its start is not budgeted)."""
        if not worker.ready:
            if not await _readable(worker, START_TIMEOUT_SECONDS):
                return False
            try:
                worker.ready = worker.connection.recv() == ("ready", None)
            except (EOFError, OSError):
                return False
        return worker.ready and worker.process.is_alive()

    async def _call(
        self, worker: _Worker, source_name: str, function: Callable[..., T], args: tuple[Any, ...]
    ) -> T:
        try:
            worker.connection.send((function, args))
        except (BrokenPipeError, ConnectionResetError):
            raise WorkerError(source_name, f"parse: the worker process died ({worker.describe_exit()})") from None
        if not await _readable(worker, self.budget_seconds):
            raise WorkerError(
                source_name,
                f"parse: a document took longer than its budget of {self.budget_seconds:g} s "
                "(settings.document_budget); its worker process was killed",
            )
        try:
            outcome, value = worker.connection.recv()
        except (EOFError, OSError):
            raise WorkerError(source_name, f"parse: the worker process died ({worker.describe_exit()})") from None
        if outcome == "error":
            raise value
        result: T = value
        return result

    def _start(self) -> _Worker:
        if not self._alive and not self.replaced:
            log.info("workers: parse/clean pool of %d workers started", self._size)
        worker = _Worker.start(self._context, self._preload)
        self._alive.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop(kill=True)
        self._alive.discard(worker)
        self.replaced += 1
        return self._start()

    def close(self) -> None:
        """Stop every worker: each exits when its pipe closes; one that does not (busy) is killed."""
        workers, self._idle, self._alive = list(self._alive), [], set()
        for worker in workers:
            worker.connection.close()
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.stop(kill=True)


async def _readable(worker: _Worker, timeout_seconds: float) -> bool:
    """Wait until the worker's pipe has something to read (a reply, or EOF when it died); False on timeout."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not readable.done():
            readable.set_result(None)

    fd = worker.connection.fileno()
    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(readable, timeout_seconds)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True


class _Worker:
    """One worker process and the parent's end of its pipe. No business logic."""

    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        #: set once the worker said it imported the stages
        self.ready = False

    @classmethod
    def start(cls, context: ForkServerContext, preload: tuple[str, ...]) -> _Worker:
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(target=_serve, args=(child_end, os.getpid(), preload), name="aggregator-worker",
                                  daemon=True)
        process.start()
        child_end.close()
        return cls(process, parent_end)

    def stop(self, *, kill: bool) -> None:
        if kill and self.process.is_alive():
            self.process.kill()
        self.process.join(CLOSE_WAIT_SECONDS)
        with contextlib.suppress(OSError):
            self.connection.close()
        with contextlib.suppress(ValueError):  # still running after the join: leave it to the kernel
            self.process.close()

    def describe_exit(self) -> str:
        self.process.join(CLOSE_WAIT_SECONDS)
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


def _serve(connection: Connection, parent_pid: int, preload: tuple[str, ...]) -> None:
    """The worker's loop: receive (function, args), send ("ok", result) or ("error", exception)."""
    # Ctrl-C reaches the whole process group; the parent decides when workers stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    for module in preload:
        importlib.import_module(module)
    try:
        connection.send(("ready", None))
    except OSError:  # BrokenPipeError: the pool closed while this worker was starting
        return
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return  # the parent closed the pipe (or died)
        try:
            reply: tuple[str, Any] = ("ok", function(*args))
        except Exception as e:  # handed to the caller, who decides what it means
            reply = ("error", e)
        try:
            connection.send(reply)
        except OSError:
            return  # the parent closed the pipe (or died) while this call ran
        except Exception as e:  # the result or the error does not pickle: report that instead
            connection.send(("error", RuntimeError(f"workers: cannot send back {type(reply[1]).__name__}: {e}")))


def _exit_with_parent(parent_pid: int) -> None:
    """A worker busy with a runaway document never reads its closed pipe: leave when the parent is gone."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid was reused by another user's process: the parent is gone
            os._exit(1)
