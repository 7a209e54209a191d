"""`aggregator run --role worker|publisher|web|all` on a PostgreSQL store: one process of a cluster.

Every role registers in `workers`, beats every third of settings.lease (renewing its leases) and serves
/healthz, /metrics and the published documents from the store on --listen. `worker` claims and polls
due sources (cluster/poller.py) under host limits shared through the store (cluster/hosts.py);
`publisher` publishes owed categories while it holds the publisher lease (cluster/publisher.py); `web`
only serves; `all` is the three at once. A SQLite store keeps the single-process daemon (scheduler.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from sqlalchemy import text

from aggregator.cluster.definitions import (
    compare_config,
    config_hash,
    record_config,
    recorded_config_hash,
    warn_if_different,
)
from aggregator.cluster.documents import StoreFeedApp
from aggregator.cluster.hosts import SharedHostLimiter
from aggregator.cluster.leases import release_all, renew_leases
from aggregator.cluster.metrics import ClusterMetrics
from aggregator.cluster.poller import ClusterPoller, cron_fires
from aggregator.cluster.publisher import ClusterPublisher
from aggregator.cluster.workers import beat, deregister_worker, new_worker_id, register_worker
from aggregator.config.load import Config, load_config
from aggregator.daemon.http import HttpThread, SwappableApp, bind_listener, create_metrics_app, listener_url
from aggregator.errors import AggregatorError, ConfigError, StorageError
from aggregator.fetch.client import HttpFetcher
from aggregator.models import UpdateOutcome
from aggregator.ops.metrics import Metrics
from aggregator.serve.app import ASGIApp
from aggregator.storage import SqlStorage, open_storage, wrap_storage_errors
from aggregator.storage.lock import advisory_key
from aggregator.update import Updater, utc_now
from aggregator.workers import WorkerPool

log = logging.getLogger("aggregator.daemon.scheduler")

Role = Literal["worker", "publisher", "web", "all"]
ROLES: tuple[Role, ...] = ("worker", "publisher", "web", "all")
#: in-flight polls get this long after SIGTERM (as the single-process daemon)
SHUTDOWN_GRACE_SECONDS = 8.0
#: /healthz fails when the heartbeat has not reached the store for this many leases
HEALTHY_LEASES = 1.0
#: worker processes for parsing and cleaning (aggregator/workers.py), as the single-process daemon
WORKER_PROCESSES = 2
#: threads for the coordination queries (claims, host slots, leases), below the store's connection pool
#: (SQLAlchemy's 5 + 10 overflow) so a thread never waits for a connection
DB_THREADS = 12


def is_shared_store(store: str) -> bool:
    """Whether `store` is a PostgreSQL URL (many processes); a SQLite file keeps one writer."""
    return store.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def run_role(config_path: Path, role: Role, *, listen: str | None, env: Mapping[str, str]) -> int:
    """Run one cluster process until SIGTERM/SIGINT, then return 0."""
    config = load_config(config_path, env)
    storage = open_storage(config.settings.store)
    if not isinstance(storage, SqlStorage) or not storage.is_shared:
        storage.close()
        raise AggregatorError(f"run: --role {role} needs a postgresql:// store; a SQLite store has one process")
    worker_id = new_worker_id()
    try:
        with (
            _sharing_the_store(storage),
            bind_listener(listen or config.settings.listen) as listener,
            WorkerPool(WORKER_PROCESSES, config.settings.document_budget.total_seconds()) as workers,
        ):
            process = ClusterProcess(config_path, env, config, storage, role, worker_id, workers)
            asyncio.run(process.run(listener))
    finally:
        with contextlib.suppress(StorageError):
            release_all(storage.engine, worker_id)
            deregister_worker(storage.engine, worker_id)
        storage.close()
    return 0


@contextlib.contextmanager
def _sharing_the_store(storage: SqlStorage) -> Iterator[None]:
    """Hold the store's writer lock shared for the process's life: any number of cluster processes run
    together, while a cron `poll` (which takes it exclusively) exits 3 instead of polling beside them."""
    with wrap_storage_errors(f"could not take the writer lock of {storage.url}"):
        connection = storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        with wrap_storage_errors(f"could not take the writer lock of {storage.url}"):
            connection.execute(text("SELECT pg_advisory_lock_shared(:key)"),
                               {"key": advisory_key(connection, "writer")})
        yield
    finally:
        connection.invalidate()  # the session, and its lock, end here
        connection.close()


class ClusterProcess:
    """One cluster process; `run()` returns after SIGTERM/SIGINT."""

    def __init__(self, config_path: Path, env: Mapping[str, str], config: Config, storage: SqlStorage, role: Role,
                 worker_id: str, workers: WorkerPool) -> None:
        self._config_path = config_path
        self._env = env
        self._config = config
        self._storage = storage
        self._engine = storage.engine
        self._role = role
        self._id = worker_id
        self._workers = workers
        self._metrics = Metrics()
        self._cluster_metrics = ClusterMetrics(self._metrics, self._engine)
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._last_beat = time.monotonic()
        self._recorded_hash = ""
        self._poller: ClusterPoller | None = None
        self._publisher: ClusterPublisher | None = None

    async def run(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        # asyncio.to_thread's pool: the default (cores + 4) would queue claims behind host-slot queries
        loop.set_default_executor(ThreadPoolExecutor(DB_THREADS, thread_name_prefix="aggregator-db"))
        now = utc_now()
        await asyncio.to_thread(record_config, self._engine, self._config, self._id, now, force=False)
        await asyncio.to_thread(register_worker, self._engine, self._id, self._role, config_hash(self._config), now)
        only = await self._compare()
        http = HttpThread(SwappableApp(self._http_app()), listener)
        http.start()
        tasks = [asyncio.create_task(self._heartbeat(), name="heartbeat")]
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(asyncio.to_thread, http.stop)
            if self._role in ("worker", "all"):
                limiter = SharedHostLimiter(self._engine, self._id, self._config.settings.per_host_concurrency,
                                            self._config.settings.per_host_delay, self._config.settings.lease)
                fetcher = await stack.enter_async_context(HttpFetcher(self._config.settings, limiter=limiter))
                updater = Updater(self._config, self._storage, fetcher, workers=self._workers,
                                  cron_of=cron_fires(self._config))
                self._poller = ClusterPoller(self._engine, self._id, updater, self._stop,
                                             on_outcome=self._record_outcome,
                                             on_claim=self._cluster_metrics.claim_seconds.observe)
                self._poller.only = only
                tasks.append(asyncio.create_task(self._poller.run(), name="poller"))
            if self._role in ("publisher", "all"):
                self._publisher = ClusterPublisher(self._storage, self._config, self._id, self._stop)
                tasks.append(asyncio.create_task(self._publisher.run(), name="publisher"))
            log.info("daemon: started: role=%s worker=%s; %d sources in feeds.toml; store %s; listening on %s",
                     self._role, self._id, len(self._config.sources), self._storage.url, listener_url(listener))
            await self._stop.wait()
            await self._drain(tasks)
        log.info("daemon: stopped")

    def _request_stop(self, signum: int) -> None:
        if self._stop.is_set() and self._poller is not None:
            for task in self._poller.in_flight:
                task.cancel()
            return
        log.info("daemon: %s: stopping", signal.Signals(signum).name)
        self._stop.set()
        if self._poller is not None:
            self._poller.wake()

    async def _drain(self, tasks: list[asyncio.Task[None]]) -> None:
        if self._poller is not None and self._poller.in_flight:
            _, late = await asyncio.wait(set(self._poller.in_flight), timeout=SHUTDOWN_GRACE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        heartbeat = tasks[0]
        heartbeat.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _http_app(self) -> ASGIApp:
        return StoreFeedApp(self._config, self._engine, extra_routes=[("/metrics", create_metrics_app(self._metrics))],
                            is_alive=self._is_alive)

    def _is_alive(self) -> bool:
        return time.monotonic() - self._last_beat < self._config.settings.lease.total_seconds() * HEALTHY_LEASES

    def _record_outcome(self, outcome: UpdateOutcome) -> None:
        self._metrics.record_outcome(outcome, utc_now())

    async def _compare(self) -> frozenset[str] | None:
        """Compare this process's feeds.toml with the recorded one; the names it may claim (None: all)."""
        view = await asyncio.to_thread(compare_config, self._engine, self._config)
        self._recorded_hash = view.recorded_hash
        warn_if_different(view, self._config)
        return None if view.matches and view.recorded_hash == config_hash(self._config) else view.agreed

    async def _heartbeat(self) -> None:
        """Beat, renew leases, and follow a newly recorded feeds.toml or a SIGHUP, every third of a lease."""
        while True:
            period = self._config.settings.lease.total_seconds() / 3
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), period)
            try:
                await asyncio.to_thread(renew_leases, self._engine, self._id, self._config.settings.lease)
                await asyncio.to_thread(beat, self._engine, self._id, config_hash(self._config))
                self._last_beat = time.monotonic()
                if self._reload.is_set():
                    self._reload.clear()
                    await self._reload_config()
                view_hash = await asyncio.to_thread(recorded_config_hash, self._engine)
                if view_hash != self._recorded_hash:
                    log.info("cluster: a new feeds.toml was recorded in the store; comparing")
                    await self._apply_view()
            except StorageError as e:
                log.error("%s; beating again in %.0fs", e, period)

    async def _reload_config(self) -> None:
        try:
            self._config = load_config(self._config_path, self._env)
        except ConfigError as e:
            log.error("config: rejected the edit of %s; still running on the last good configuration",
                      self._config_path)
            for problem in e.problems:
                log.error("config: %s", problem)
            return
        log.info("config: %s reloaded (SIGHUP)", self._config_path)
        if self._publisher is not None:
            self._publisher.config = self._config
        await self._apply_view()

    async def _apply_view(self) -> None:
        only = await self._compare()
        if self._poller is not None:
            old = self._poller.updater
            self._poller.use(Updater(self._config, self._storage, old.fetcher, workers=self._workers,
                                     cron_of=cron_fires(self._config)), only)

