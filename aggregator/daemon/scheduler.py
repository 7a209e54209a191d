"""`aggregator run`: poll every source on its own schedule, publish what changed, reload feeds.toml live.

The daemon is the store's single writer: it holds `storage.writer_lock` for its whole life, polls
through one Updater (which touches storage only in the event loop's thread), publishes from one task
(never two writers of a feed file) and serves feeds, /healthz and /metrics from a uvicorn thread.
When to poll next is decided in schedule.py (through update.py, which the daemon hands its cron times):
the daemon follows each outcome's `next_poll_at`. The only module that runs apscheduler (3.x, see pyproject.toml); config/values.py
only uses it to check cron expressions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.config.load import Config, SourceConfig, load_config
from aggregator.config.diff import ConfigDiff, diff_configs, keep_restart_settings
from aggregator.daemon.http import HttpThread, SwappableApp, bind_listener, create_metrics_app, listener_url
from aggregator.daemon.publish_queue import PublishQueue
from aggregator.errors import ConfigError, StorageError
from aggregator.fetch.client import HttpFetcher
from aggregator.ops.metrics import Metrics
from aggregator.models import ErrorInfo, SourceState, UpdateOutcome
from aggregator.schedule import follow_outcome, resume_at, spread_offset, state_for, url_to_poll
from aggregator.serve.app import ASGIApp, create_app
from aggregator.storage import Storage, open_storage
from aggregator.update import Updater, utc_now
from aggregator.workers import WorkerPool

log = logging.getLogger("aggregator.daemon.scheduler")

#: a cron `poll` holding the store gets this long to finish its pass before the daemon gives up
WRITER_LOCK_WAIT_SECONDS = 60.0
#: in-flight polls get this long after SIGTERM; `docker stop` sends SIGKILL 10 s after SIGTERM
SHUTDOWN_GRACE_SECONDS = 8.0
#: how often feeds.toml's signature (mtime, inode, size) is compared
CONFIG_CHECK_SECONDS = 1.0
#: a changed feeds.toml must stay the same this long before it is read
CONFIG_SETTLE_SECONDS = 0.2
#: how often the scheduler proves it runs jobs, for /healthz
HEARTBEAT_SECONDS = 1.0
#: /healthz fails when the scheduler has not run its heartbeat job for this long
HEARTBEAT_STALE_SECONDS = 15.0
#: a daemon task (publisher, config watcher) that failed is started again after this long
SUPERVISOR_RESTART_SECONDS = 1.0
#: sources added or changed by a reload are first polled within this window, spread by name
RELOAD_SPREAD = timedelta(seconds=10)
#: cron sources sharing an expression would all fire on the same second
CRON_JITTER_SECONDS = 30
#: processes for parsing and cleaning, so a large document does not stall the event loop's timers, and
#: one that overruns settings.document_budget can be stopped (aggregator/workers.py)
WORKER_PROCESSES = 2


def run_daemon(config_path: Path, *, listen: str | None, env: Mapping[str, str]) -> int:
    """Run until SIGTERM/SIGINT, then return 0.

    Start-up failures raise for cli.main to report: ConfigError, StoreLockedError (another writer
    holds the store), AggregatorError (store unreachable, address in use).
    """
    config = load_config(config_path, env)
    storage = open_storage(config.settings.store)
    try:
        with (
            storage.writer_lock(WRITER_LOCK_WAIT_SECONDS),
            bind_listener(listen or config.settings.listen) as listener,
            WorkerPool(WORKER_PROCESSES, config.settings.document_budget.total_seconds()) as workers,
        ):
            daemon = Daemon(config_path, env, config, storage, workers)
            asyncio.run(daemon.run(listener))
    finally:
        storage.close()
    return 0


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """A 5-field crontab expression in `timezone`, fired with up to CRON_JITTER_SECONDS of jitter."""
    # from_crontab's field order; config/load.py admits weekday names only, which mean the same day to
    # crontab and to APScheduler 3, whose numbers start at Monday (agronholm/apscheduler#286)
    minute, hour, day, month, day_of_week = expression.split()
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week,
                       timezone=ZoneInfo(timezone), jitter=CRON_JITTER_SECONDS)


class Daemon:
    """One running `aggregator run`; `run()` returns after SIGTERM/SIGINT and a clean shutdown."""

    def __init__(self, config_path: Path, env: Mapping[str, str], config: Config, storage: Storage,
                 workers: WorkerPool) -> None:
        self._config_path = config_path
        self._env = env
        self._config = config
        self._sources = {source.name: source for source in config.sources}
        self._storage = storage
        self._workers = workers
        self._metrics = Metrics()
        self._scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self._fetcher: HttpFetcher | None = None
        self._fetcher_stack = contextlib.AsyncExitStack()
        self._updater: Updater | None = None
        self._http_app = SwappableApp(self._create_http_app(config))
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._closers: set[asyncio.Task[Any]] = set()
        self._reload_wanted = asyncio.Event()
        self._stop_wanted = asyncio.Event()
        self._publisher = PublishQueue(storage, config, self._stop_wanted)
        self._heartbeat = time.monotonic()

    async def run(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload_wanted.set)
        async with contextlib.AsyncExitStack() as stack:
            # unwound in reverse: HTTP stops, then the scheduler, then the fetchers close
            stack.push_async_callback(self._close_fetchers)
            await self._open_fetcher(self._config)
            await self._workers.start_all()
            states = self._storage.get_source_states()
            self._metrics.load_states(states, self._sources)
            self._metrics.load_story_counts(self._storage.story_counts())
            self._scheduler.start()
            stack.callback(self._scheduler.shutdown, wait=False)
            self._scheduler.add_job(self._beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), id="heartbeat")
            scheduled = self._schedule_at_start(states)
            http = HttpThread(self._http_app, listener)
            http.start()
            stack.push_async_callback(asyncio.to_thread, http.stop)
            log.info("daemon: started: %d of %d sources scheduled; store %s; listening on %s", scheduled,
                     len(self._config.sources), self._storage.url, listener_url(listener))
            self._publisher.request(None)  # also pays what a killed run left owed (publish_owed)
            publisher = supervise("publisher", self._publisher.run)
            watcher = supervise("config watcher", self._watch_config)
            await self._stop_wanted.wait()
            await self._drain(publisher, watcher)
        log.info("daemon: stopped")

    def _request_stop(self, signum: int) -> None:
        if self._stop_wanted.is_set():
            name, count = signal.Signals(signum).name, len(self._in_flight)
            log.warning("daemon: %s again: cancelling %d in-flight polls", name, count)
            for task in self._in_flight:
                task.cancel()
            return
        log.info("daemon: %s: stopping", signal.Signals(signum).name)
        self._stop_wanted.set()

    async def _drain(self, publisher: asyncio.Task[None], watcher: asyncio.Task[None]) -> None:
        """Stop scheduling, let in-flight polls finish within the grace period, publish what they changed."""
        self._scheduler.pause()
        watcher.cancel()
        if self._in_flight:
            count = len(self._in_flight)
            log.info("daemon: waiting up to %.0fs for %d in-flight polls", SHUTDOWN_GRACE_SECONDS, count)
            _, late = await asyncio.wait(set(self._in_flight), timeout=SHUTDOWN_GRACE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._publisher.close()
        await publisher

    # --- scheduling ---------------------------------------------------------------------------

    def _schedule_at_start(self, states: Mapping[str, SourceState]) -> int:
        now = utc_now()
        settings = self._config.settings
        scheduled = 0
        for source in self._config.sources:
            state = state_for(source.name, source.url, states.get(source.name))
            if not source.enabled:
                continue
            if url_to_poll(state, source.url) is None:
                log.warning("daemon: source=%s is retired (HTTP 410); change its url in feeds.toml to poll "
                            "it again", source.name, extra={"source": source.name})
                continue
            interval = self._config.interval_of(source)
            max_delay = max(interval, settings.max_interval, settings.max_backoff)
            scheduled += self._schedule(source, resume_at(source.name, state.next_poll_at, interval, max_delay, now))
        return scheduled

    def _schedule(self, source: SourceConfig, first_run: datetime) -> bool:
        """Add the source's job, first run at `first_run` (a cron source: its first cron time from there)."""
        trigger = self._trigger_for(source)
        if isinstance(trigger, CronTrigger):
            # first_run may be a stored cron time that includes its jitter: look from the start of the
            # jitter window, or that very fire would be passed over for the next one
            fire = trigger.get_next_fire_time(None, first_run - timedelta(seconds=CRON_JITTER_SECONDS))
            if fire is None:
                log.warning("daemon: source=%s: cron %r never fires; not scheduled", source.name, source.cron,
                            extra={"source": source.name})
                return False
            first_run = fire
            self._remember_next_poll(source.name, first_run)
        self._scheduler.add_job(self._poll_job, trigger, args=(source.name,), id=source.name,
                                name=f"poll {source.name}", replace_existing=True, next_run_time=first_run)
        return True

    def _unschedule(self, name: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(name)

    def _trigger_for(self, source: SourceConfig) -> BaseTrigger:
        if source.cron is not None:
            return cron_trigger(source.cron, self._config.timezone_of(source))
        # Only a fallback: after every poll the job is moved to the outcome's next_poll_at.
        return IntervalTrigger(seconds=self._config.interval_of(source).total_seconds(), timezone=UTC)

    def _create_http_app(self, config: Config) -> ASGIApp:
        """The feeds of `config`, /healthz answered from the scheduler's heartbeat, and /metrics."""
        metrics_app = create_metrics_app(self._metrics)
        return create_app(config, extra_routes=[("/metrics", metrics_app)], is_alive=self._is_alive)

    async def _beat(self) -> None:
        self._heartbeat = time.monotonic()

    def _is_alive(self) -> bool:
        # Read from the HTTP thread: a float, a bool and a dict replaced whole, each read atomically.
        if not self._scheduler.running or time.monotonic() - self._heartbeat >= HEARTBEAT_STALE_SECONDS:
            return False
        # a feed failing to publish for longer than a poll interval is stale to its readers (issue 10)
        return not self._publisher.overdue(self._config.settings.interval.total_seconds())

    async def _poll_job(self, name: str) -> None:
        """The job's run: hold the job and start the poll as a task of the daemon's own.

        The job stays paused until the poll has decided its next run. Polling inside the job instead
        would let a poll outlasting its interval find the job due again, and APScheduler would log
        "maximum number of running instances reached" every interval.
        """
        source, updater = self._sources.get(name), self._updater
        if source is None or updater is None:
            return
        with contextlib.suppress(JobLookupError):
            self._scheduler.pause_job(name)
        task = asyncio.create_task(self._poll(source, updater), name=f"poll {name}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _poll(self, source: SourceConfig, updater: Updater) -> None:
        outcome: UpdateOutcome | None
        try:
            outcome = await updater.update_source(source)
        except StorageError as e:
            # `e` names the store and the source; nothing was recorded, so the job decides alone
            log.error("%s; polling it again later", e, extra={"source": source.name})
            outcome = None
        except asyncio.CancelledError:
            # Storage writes are synchronous, so a cancelled poll saved all of itself or nothing.
            log.warning("daemon: source=%s poll cancelled at shutdown; it is repeated next start", source.name,
                        extra={"source": source.name})
            return
        except Exception as e:  # a bug must not pause the source for good: record it, keep the job scheduled
            log.exception("daemon: source=%s unexpected error; polling it again later", source.name,
                          extra={"source": source.name})
            self._record_unexpected(source.name, e)
            outcome = None
        self._after_poll(source, outcome)

    def _record_unexpected(self, name: str, error: Exception) -> None:
        """Store `error` as the source's last error, so `status` shows it."""
        now = utc_now()
        try:
            state = self._storage.get_source_state(name) or SourceState(name=name)
        except Exception:  # the state itself may be what is broken: start again from an empty one
            state = SourceState(name=name)
        try:
            self._storage.save_source_state(state.replace(
                failures=state.failures + 1, last_error=ErrorInfo.from_exception(error, "update", now),
                last_polled_at=now))
        except StorageError as e:
            log.error("%s; the error of source=%s is not recorded", e, name, extra={"source": name})

    def _after_poll(self, source: SourceConfig, outcome: UpdateOutcome | None) -> None:
        if outcome is not None and outcome.changed_categories:
            self._publisher.request(outcome.changed_categories)
        if outcome is not None and source.name in self._sources:  # a removed source's series stay dropped
            self._metrics.record_outcome(outcome, utc_now())
        if outcome is not None and outcome.merged:
            self._metrics.load_story_counts(self._storage.story_counts())
        if self._sources.get(source.name) != source:
            return  # a reload changed or removed the source meanwhile, and rescheduled it
        if outcome is not None and outcome.status == "retired":
            log.warning("daemon: source=%s is gone (HTTP 410); not polled until its url in feeds.toml "
                        "changes", source.name, extra={"source": source.name})
            self._unschedule(source.name)
            return
        self._resume(source, outcome)

    def _resume(self, source: SourceConfig, outcome: UpdateOutcome | None) -> None:
        """Release the job held during its poll, at the time schedule.follow_outcome decides."""
        job = self._scheduler.get_job(source.name)
        if job is None:
            return
        next_cron_fire = None
        if isinstance(job.trigger, CronTrigger):
            next_cron_fire = functools.partial(_next_fire_from, job.trigger)
        next_run = follow_outcome(outcome, utc_now(), self._config.interval_of(source), next_cron_fire)
        job.modify(next_run_time=next_run)  # None (a cron that never fires again) leaves it paused
        if next_cron_fire is not None and outcome is None:
            self._remember_next_poll(source.name, next_run)

    def _cron_of(self, source: SourceConfig) -> functools.partial[datetime | None] | None:
        """A cron source's fire times for the Updater, which stores the next one with the poll."""
        if source.cron is None:
            return None
        return functools.partial(_next_fire_from, cron_trigger(source.cron, self._config.timezone_of(source)))

    def _remember_next_poll(self, name: str, next_run: datetime | None) -> None:
        """Store a cron source's next poll when no poll stored it: at start, after a reload, after a failed store.

        `status` shows it and a restart resumes from it. Interval sources need no write: their job runs
        at the stored next_poll_at.
        """
        try:
            state = self._storage.get_source_state(name)
            if state is not None and state.next_poll_at != next_run:
                self._storage.save_source_state(state.replace(next_poll_at=next_run))
        except StorageError as e:
            log.error("%s; `status` may show an old next poll for source=%s", e, name, extra={"source": name})

    # --- configuration ------------------------------------------------------------------------

    async def _watch_config(self) -> None:
        """Reload on SIGHUP, or when feeds.toml changed and stays unchanged for a moment.

        The settle wait skips the half-written states of editors that truncate and rewrite in place.
        """
        applied = _file_signature(self._config_path)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_wanted.wait(), CONFIG_CHECK_SECONDS)
            current = _file_signature(self._config_path)
            if self._reload_wanted.is_set():
                self._reload_wanted.clear()
                await self._reload_config("SIGHUP")
                applied = current
            elif current is not None and current != applied:
                await asyncio.sleep(CONFIG_SETTLE_SECONDS)
                if _file_signature(self._config_path) == current:
                    await self._reload_config("file changed")
                    applied = current

    async def _reload_config(self, reason: str) -> None:
        try:
            new = load_config(self._config_path, self._env)
        except ConfigError as e:
            log.error("config: rejected the edit of %s (%s); still running on the last good configuration",
                      self._config_path, reason)
            for problem in e.problems:
                log.error("config: %s", problem)
            return
        new, kept = keep_restart_settings(self._config, new)
        for key, value in kept.items():
            log.warning("config: settings.%s changed; restart the daemon to apply it (still %s)", key, value)
        diff = diff_configs(self._config, new)
        if diff.is_empty():
            log.info("config: %s reloaded (%s): nothing changed", self._config_path, reason)
            return
        try:
            if diff.changed_settings:
                # first, so a fetcher that cannot be built leaves the running one, and the old config, in place
                await self._open_fetcher(new)
        except Exception:
            log.exception("config: could not apply the edit of %s (%s): the fetcher for the new settings "
                          "cannot be built; still running on the last good configuration", self._config_path, reason)
            return
        log.info("config: %s reloaded (%s): %s", self._config_path, reason, "; ".join(diff.describe()))
        self._apply_config(new, diff)

    def _apply_config(self, new: Config, diff: ConfigDiff) -> None:
        self._config = self._publisher.config = new
        self._workers.budget_seconds = new.settings.document_budget.total_seconds()
        self._sources = {source.name: source for source in new.sources}
        self._updater = self._make_updater()
        self._http_app.app = self._create_http_app(new)
        for name in diff.removed_sources:
            self._unschedule(name)
            self._metrics.forget_source(name)
        now = utc_now()
        for name, source in self._sources.items():
            if name in diff.added_sources or name in diff.changed_sources:
                self._unschedule(name)
                if source.enabled:
                    self._schedule(source, now + spread_offset(name, min(new.interval_of(source), RELOAD_SPREAD)))
            else:
                # the default interval or timezone may have changed; the next poll time stays
                with contextlib.suppress(JobLookupError):
                    self._scheduler.modify_job(name, trigger=self._trigger_for(source))
        if diff.changes_feeds():
            self._publisher.request(None)

    async def _open_fetcher(self, config: Config) -> None:
        """A fetcher for `config`'s settings; polls still using the previous one finish before it closes.
        Raises, changing nothing, when the new fetcher cannot be built."""
        old_fetcher, old_stack = self._fetcher, self._fetcher_stack
        stack = contextlib.AsyncExitStack()
        fetcher = await stack.enter_async_context(HttpFetcher(config.settings))
        self._fetcher, self._fetcher_stack = fetcher, stack
        self._updater = self._make_updater()
        if old_fetcher is not None:
            self._closers.add(asyncio.create_task(_close_after(old_stack, set(self._in_flight))))

    def _make_updater(self) -> Updater:
        assert self._fetcher is not None  # opened first thing in run()
        return Updater(self._config, self._storage, self._fetcher, workers=self._workers, cron_of=self._cron_of)

    async def _close_fetchers(self) -> None:
        await asyncio.gather(*self._closers)
        await self._fetcher_stack.aclose()


def supervise(name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
    """Run `run()` as a task that is restarted, after SUPERVISOR_RESTART_SECONDS, whenever it fails;
    each failure is logged with its traceback. It ends when `run()` returns or the task is cancelled."""

    async def keep_running() -> None:
        while True:
            try:
                await run()
                return
            except Exception:
                log.exception("daemon: task %s failed; restarting it in %.0fs", name, SUPERVISOR_RESTART_SECONDS)
            await asyncio.sleep(SUPERVISOR_RESTART_SECONDS)

    return asyncio.create_task(keep_running(), name=name)


async def _close_after(stack: contextlib.AsyncExitStack, users: set[asyncio.Task[Any]]) -> None:
    if users:
        await asyncio.wait(users)
    await stack.aclose()


def _next_fire_from(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    """The trigger's first fire at or after `moment`, never one that passed while the poll ran."""
    fire: datetime | None = trigger.get_next_fire_time(None, max(moment, utc_now()))
    return fire


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    """mtime, inode and size: an in-place write changes the first, an editor's rename the second."""
    try:
        stat = path.stat()
    except OSError:
        return None  # between an editor's unlink and rename
    return stat.st_mtime_ns, stat.st_ino, stat.st_size
