"""A worker's polling: claim due sources from the store, poll each through the Updater, release it with its next time.

The schedule lives in the `sources` table: update.py stores each outcome's next_poll_at as with one
process (interval, server hints, backoff); this loop only turns it into a cron time for cron sources
(schedule.follow_outcome, as the single-process daemon does) and hands the lease back. At most
settings.concurrency polls run at once per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from aggregator.cluster.leases import claim_sources, next_due_at, release_source
from aggregator.config.load import Config, SourceConfig
from aggregator.errors import StorageError
from aggregator.models import UpdateOutcome
from aggregator.schedule import follow_outcome
from aggregator.update import CronOf, Updater, utc_now

log = logging.getLogger("aggregator.cluster")

#: an idle worker looks for due sources at least this often
CLAIM_IDLE_SECONDS = 1.0


class ClusterPoller:
    """The claim loop of one worker; `run()` returns once `stop` is set and its polls finished or were cancelled."""

    def __init__(self, engine: Engine, worker_id: str, updater: Updater, stop: asyncio.Event,
                 *, on_outcome: Callable[[UpdateOutcome], None],
                 on_claim: Callable[[float], None]) -> None:
        self._engine = engine
        self._worker_id = worker_id
        self.updater = updater
        self._by_name = {source.name: source for source in updater.config.sources}
        #: names this worker may claim; None: every recorded source (its feeds.toml is the cluster's)
        self.only: frozenset[str] | None = None
        self._stop = stop
        self._on_outcome = on_outcome
        self._on_claim = on_claim
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()

    @property
    def config(self) -> Config:
        return self.updater.config

    def use(self, updater: Updater, only: frozenset[str] | None) -> None:
        """Poll with a new configuration (a reload) from the next claim on."""
        self.updater, self.only = updater, only
        self._by_name = {source.name: source for source in updater.config.sources}

    @property
    def in_flight(self) -> set[asyncio.Task[Any]]:
        return self._in_flight

    async def run(self) -> None:
        while not self._stop.is_set():
            free = self.config.settings.concurrency - len(self._in_flight)
            claimed: list[str] = []
            if free > 0:
                claimed = await self._claim(free)
                for name in claimed:
                    self._start(name)
            if free > 0 and len(claimed) == free:
                continue  # more may be due right now
            await self._sleep(await self._idle_seconds() if free > 0 else CLAIM_IDLE_SECONDS)

    async def _claim(self, limit: int) -> list[str]:
        started = time.monotonic()
        lease = self.config.settings.lease
        try:
            names = await asyncio.to_thread(claim_sources, self._engine, self._worker_id, limit, lease, self.only)
        except StorageError as e:
            log.error("%s; claiming again in %.0fs", e, CLAIM_IDLE_SECONDS)
            return []
        self._on_claim(time.monotonic() - started)
        return names

    async def _idle_seconds(self) -> float:
        try:
            due = await asyncio.to_thread(next_due_at, self._engine, self.only)
        except StorageError:
            return CLAIM_IDLE_SECONDS
        if due is None:
            return CLAIM_IDLE_SECONDS
        return min(max((due - utc_now()).total_seconds(), 0.01), CLAIM_IDLE_SECONDS)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def wake(self) -> None:
        self._wake.set()

    def _start(self, name: str) -> None:
        source = self._by_name.get(name)
        if source is None:  # recorded but not in this file: `only` keeps this from happening
            later = utc_now() + self.config.settings.lease
            asyncio.get_running_loop().run_in_executor(None, release_source, self._engine, self._worker_id, name, later)
            return
        task = asyncio.create_task(self._poll(source), name=f"poll {name}")
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _poll(self, source: SourceConfig) -> None:
        outcome: UpdateOutcome | None
        try:
            outcome = await self.updater.update_source(source)
        except StorageError as e:
            log.error("%s; polling it again later", e, extra={"source": source.name})
            outcome = None
        if outcome is not None:
            self._on_outcome(outcome)
        next_poll = self._next_poll(source, outcome)
        try:
            kept = await asyncio.to_thread(release_source, self._engine, self._worker_id, source.name, next_poll)
        except StorageError as e:
            log.error("%s; the lease of source=%s runs out by itself", e, source.name, extra={"source": source.name})
            return
        if not kept:
            log.warning("cluster: source=%s: the lease ran out during the poll (a heartbeat came late)",
                        source.name, extra={"source": source.name})

    def _next_poll(self, source: SourceConfig, outcome: UpdateOutcome | None) -> datetime | None:
        """As the single-process daemon's job: the outcome's time (a cron time for a cron source, through
        the Updater's `cron_of`), or never (retired)."""
        if outcome is not None and outcome.status == "retired":
            log.warning("daemon: source=%s is gone (HTTP 410); not polled until its url in feeds.toml "
                        "changes", source.name, extra={"source": source.name})
            return None
        return follow_outcome(outcome, utc_now(), self.config.interval_of(source), self.updater.cron_of(source))


def cron_fires(config: Config) -> CronOf:
    """The Updater's `cron_of` for a cluster worker: a cron source's next fire time at or after a moment."""
    from aggregator.daemon.scheduler import cron_trigger  # apscheduler: the daemon's

    def fires(source: SourceConfig) -> Callable[[datetime], datetime | None] | None:
        if source.cron is None:
            return None
        trigger = cron_trigger(source.cron, config.timezone_of(source))

        def next_fire(moment: datetime) -> datetime | None:
            fire: datetime | None = trigger.get_next_fire_time(None, max(moment, utc_now()))
            return fire

        return next_fire

    return fires
