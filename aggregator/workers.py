"""The process pool `poll` parses and cleans in: started by the first document to parse, so a pass of 304s never starts it.

Workers come from a fork server that has already imported the parse and clean stages (and what
they import), so each worker starts by a fork of a warm interpreter, not by importing them again,
and the pool can start after the event loop and its resolver threads exist (forking a process with
threads is what the fork server avoids).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger("aggregator.workers")

P = ParamSpec("P")
T = TypeVar("T")

#: modules the fork server imports once for every worker (the worker functions live in update and items)
PRELOADED_MODULES = ["aggregator.update", "aggregator.items", "aggregator.parse", "aggregator.clean", "aggregator.identity"]


class LazyProcessPool(Executor):
    """A ProcessPoolExecutor of `max_workers` created at the first `submit`."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOADED_MODULES)
            self._pool = ProcessPoolExecutor(self._max_workers, mp_context=context)
            log.info("poll: parse/clean pool of %d workers started", self._max_workers)
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait, cancel_futures=cancel_futures)

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown(wait=True)
