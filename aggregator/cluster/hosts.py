"""Politeness across workers: per-host concurrency, minimum gap and Retry-After held in PostgreSQL.

`SharedHostLimiter` is fetch/hosts.py's HostLimiter for a cluster: besides the in-process FIFO per host,
each request takes a row in `host_slots` (leased like a source: a killed worker's slot expires) while
`host_pace` keeps the earliest next start and the host-wide deferral. Both are decided under the host
row's lock, on the database clock, so adding workers never hits one newspaper's server harder.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import Engine, text

from aggregator.fetch.hosts import HostDeferredError, HostLimiter
from aggregator.cluster.leases import coordination_transaction

#: how often a request waiting for a free slot of a busy host asks again
SLOT_RETRY_SECONDS = 0.05

_LOCK_PACE = text("""
    INSERT INTO host_pace (host) VALUES (:host)
    ON CONFLICT (host) DO UPDATE SET host = excluded.host
    RETURNING CAST(EXTRACT(EPOCH FROM next_start_at - clock_timestamp()) AS double precision),
              CAST(EXTRACT(EPOCH FROM deferred_until - clock_timestamp()) AS double precision)
""")
_TAKE_SLOT = text("""
    WITH active AS (SELECT count(*) AS n FROM host_slots WHERE host = :host AND lease_until > clock_timestamp())
    INSERT INTO host_slots (id, host, worker_id, lease_until)
    SELECT :id, :host, :worker, clock_timestamp() + :lease FROM active WHERE n < :limit
    RETURNING id
""")
_PACE = text("UPDATE host_pace SET next_start_at = clock_timestamp() + :gap WHERE host = :host")
_SWEEP = text("DELETE FROM host_slots WHERE host = :host AND lease_until < clock_timestamp()")
_RELEASE = text("DELETE FROM host_slots WHERE id = :id")
_DEFER = text("""
    INSERT INTO host_pace (host, deferred_until) VALUES (:host, clock_timestamp() + :pause)
    ON CONFLICT (host) DO UPDATE SET deferred_until =
        greatest(coalesce(host_pace.deferred_until, excluded.deferred_until), excluded.deferred_until)
""")


class SharedHostLimiter(HostLimiter):
    """HostLimiter whose limits hold across every worker of the store."""

    def __init__(self, engine: Engine, worker_id: str, per_host_concurrency: int,
                 per_host_delay: timedelta | None, lease: timedelta) -> None:
        # in-process: concurrency only (FIFO per host); the gap and the deferral are the database's
        super().__init__(per_host_concurrency, None)
        self._engine = engine
        self._worker_id = worker_id
        self._limit = per_host_concurrency
        self._gap = per_host_delay or timedelta(0)
        self._lease = lease

    @asynccontextmanager
    async def slot(self, host: str, *, max_deferral_seconds: float | None = None) -> AsyncIterator[None]:
        key = host.lower()
        async with super().slot(key):
            slot_id = await self._acquire(key, max_deferral_seconds)
            try:
                yield
            finally:
                await asyncio.to_thread(self._release, slot_id)

    def defer(self, host: str, seconds: float) -> None:
        """Host-wide Retry-After: every worker's next request to `host` waits (never shortens a deferral)."""
        with coordination_transaction(self._engine, f"could not defer host {host}") as connection:
            connection.execute(_DEFER, {"host": host.lower(), "pause": timedelta(seconds=seconds)})

    async def _acquire(self, host: str, max_deferral_seconds: float | None) -> str:
        slot_id = uuid.uuid4().hex
        while True:
            taken, wait_seconds, deferred_seconds = await asyncio.to_thread(self._try_take, host, slot_id)
            if taken:
                return slot_id
            if max_deferral_seconds is not None and deferred_seconds > max_deferral_seconds:
                raise HostDeferredError(host, deferred_seconds)
            await asyncio.sleep(max(wait_seconds, 0.001))

    def _try_take(self, host: str, slot_id: str) -> tuple[bool, float, float]:
        """One transaction under the host row's lock: (taken, seconds to wait, seconds still deferred)."""
        with coordination_transaction(self._engine, f"could not take a slot of host {host}") as connection:
            start_in, deferred_for = connection.execute(_LOCK_PACE, {"host": host}).one()
            wait = max(start_in or 0.0, deferred_for or 0.0)
            if wait > 0:
                return False, wait, deferred_for or 0.0
            params = {"id": slot_id, "host": host, "worker": self._worker_id, "lease": self._lease,
                      "limit": self._limit}
            if connection.execute(_TAKE_SLOT, params).first() is None:
                connection.execute(_SWEEP, {"host": host})
                return False, SLOT_RETRY_SECONDS, 0.0
            connection.execute(_PACE, {"host": host, "gap": self._gap})
            return True, 0.0, 0.0

    def _release(self, slot_id: str) -> None:
        with coordination_transaction(self._engine, "could not free a host slot") as connection:
            connection.execute(_RELEASE, {"id": slot_id})
