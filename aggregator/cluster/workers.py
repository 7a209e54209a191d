"""The `workers` table: each process of a shared store registers, beats, and is listed by `status` and /metrics.

No business logic. A worker's heartbeat also renews its leases (leases.renew_leases); a worker that
stopped beating is shown with the age of its last beat and forgotten after STALE_WORKER_AGE.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, text

from aggregator.cluster.leases import coordination_transaction
from aggregator.storage.errors import wrap_storage_errors
from aggregator.storage.schema import upsert, workers

#: a worker silent this long is deleted from the table by the others' heartbeats
STALE_WORKER_AGE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One process as `status` and /metrics show it."""

    id: str
    host: str
    pid: int
    role: str
    started_at: datetime
    heartbeat_at: datetime
    #: sources it holds a lease on right now (polls in flight)
    sources_held: int


def new_worker_id() -> str:
    """host-pid-random: readable in logs, unique across restarts and machines."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def register_worker(engine: Engine, worker_id: str, role: str, config_hash: str, now: datetime) -> None:
    values = {"id": worker_id, "host": socket.gethostname(), "pid": os.getpid(), "role": role,
              "config_hash": config_hash, "started_at": now, "heartbeat_at": now}
    with coordination_transaction(engine, "could not register the worker") as connection:
        connection.execute(upsert(connection, workers, ["id"], [k for k in values if k != "id"]), values)


def beat(engine: Engine, worker_id: str, config_hash: str) -> None:
    """Stamp the heartbeat (database clock) and forget workers silent for STALE_WORKER_AGE."""
    with coordination_transaction(engine, "could not record the heartbeat") as connection:
        connection.execute(text("UPDATE workers SET heartbeat_at = now(), config_hash = :hash WHERE id = :id"),
                           {"id": worker_id, "hash": config_hash})
        connection.execute(text("DELETE FROM workers WHERE heartbeat_at < now() - :age"), {"age": STALE_WORKER_AGE})


def deregister_worker(engine: Engine, worker_id: str) -> None:
    with coordination_transaction(engine, "could not deregister the worker") as connection:
        connection.execute(delete(workers).where(workers.c.id == worker_id))


def list_workers(engine: Engine) -> list[WorkerRow]:
    """Every registered process, with the number of source leases it holds; oldest first."""
    held = text("SELECT leased_by, count(*) FROM sources WHERE leased_by IS NOT NULL AND lease_until > now()"
                " GROUP BY leased_by")
    with wrap_storage_errors("could not list workers"), engine.connect() as connection:
        counts: dict[str, int] = dict(connection.execute(held).tuples().all())
        rows = connection.execute(select(workers).order_by(workers.c.started_at, workers.c.id)).mappings().all()
    return [WorkerRow(row["id"], row["host"], row["pid"], row["role"], row["started_at"], row["heartbeat_at"],
                      int(counts.get(row["id"], 0))) for row in rows]
