"""Source leases in PostgreSQL: claim due sources with FOR UPDATE SKIP LOCKED, renew them, release them. No business logic.

A claim marks the source's row with the worker and a lease expiry; nobody else claims it until the
worker releases it with its next poll time, or the lease runs out (the worker died: its heartbeat stopped
renewing) and any worker's heartbeat sweeps it free. Claims only ever walk unleased rows (a partial
index), so a claim costs the same with 10 or 10,000 sources in flight. Times are the database's own clock, so machines with skewed clocks agree on who holds what.
These statements run outside the store's write lock: they touch only the lease columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import String

from aggregator.storage.errors import wrap_storage_errors

@contextlib.contextmanager
def coordination_transaction(engine: Engine, action: str) -> Iterator[Connection]:
    """A transaction of lease bookkeeping, committed without waiting for the WAL flush.

    Losing the last milliseconds of these writes to a database crash is harmless (a lease runs out, a
    source is polled once more), and the flush is most of their cost: a claim takes ~1 ms instead of
    several (https://www.postgresql.org/docs/current/wal-async-commit.html). Item writes stay synchronous.
    """
    with wrap_storage_errors(action), engine.begin() as connection:
        connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
        yield connection


#: matches the partial index ix_sources_claimable (storage/schema.py)
_CLAIMABLE = "leased_by IS NULL AND definition_hash IS NOT NULL AND next_poll_at <= now()"

_CLAIM = """
    WITH due AS (
        SELECT name FROM sources WHERE {claimable}
        ORDER BY next_poll_at LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    UPDATE sources SET leased_by = :worker, lease_until = now() + :lease
    FROM due WHERE sources.name = due.name
    RETURNING sources.name
"""
_CLAIM_ANY = text(_CLAIM.format(claimable=_CLAIMABLE))
#: for a worker whose feeds.toml differs from the recorded one: only the sources it shares
_CLAIM_ONLY = text(_CLAIM.format(claimable=_CLAIMABLE + " AND name = ANY(:only)")).bindparams(
    bindparam("only", type_=ARRAY(String)))


def claim_sources(engine: Engine, worker_id: str, limit: int, lease: timedelta,
                  only: Collection[str] | None = None) -> list[str]:
    """Lease up to `limit` due sources (earliest due first) to `worker_id`; `only` restricts the names."""
    if limit <= 0:
        return []
    params: dict[str, object] = {"limit": limit, "worker": worker_id, "lease": lease}
    if only is not None:
        params["only"] = sorted(only)
    with coordination_transaction(engine, "could not claim due sources") as connection:
        return list(connection.execute(_CLAIM_ANY if only is None else _CLAIM_ONLY, params).scalars())


def release_source(engine: Engine, worker_id: str, name: str, next_poll_at: datetime | None) -> bool:
    """End the lease with the source's next poll time (None: never due again); False if it was lost."""
    with coordination_transaction(engine, f"could not release source {name}") as connection:
        result = connection.execute(
            text("UPDATE sources SET leased_by = NULL, lease_until = NULL, next_poll_at = :next_poll"
                 " WHERE name = :name AND leased_by = :worker"),
            {"name": name, "worker": worker_id, "next_poll": next_poll_at})
        return result.rowcount == 1


def next_due_at(engine: Engine, only: Collection[str] | None = None) -> datetime | None:
    """When the next unleased source falls due."""
    query = "SELECT min(next_poll_at) FROM sources WHERE leased_by IS NULL AND definition_hash IS NOT NULL"
    statement = text(query + (" AND name = ANY(:only)" if only is not None else ""))
    params: dict[str, object] = {}
    if only is not None:
        statement = statement.bindparams(bindparam("only", type_=ARRAY(String)))
        params["only"] = sorted(only)
    with wrap_storage_errors("could not read the next due time"), engine.connect() as connection:
        value = connection.execute(statement, params).scalar()
    assert value is None or isinstance(value, datetime)
    return value


def renew_leases(engine: Engine, worker_id: str, lease: timedelta) -> None:
    """The heartbeat: renew every source, host slot and named lease this worker holds (long polls keep
    theirs), and free the sources whose lease ran out (a dead worker's) for the next claim."""
    params = {"worker": worker_id, "lease": lease}
    with coordination_transaction(engine, "could not renew leases") as connection:
        connection.execute(text("UPDATE sources SET leased_by = NULL, lease_until = NULL"
                                " WHERE leased_by IS NOT NULL AND lease_until < now()"))
        connection.execute(text("UPDATE sources SET lease_until = now() + :lease WHERE leased_by = :worker"),
                           params)
        connection.execute(text("UPDATE host_slots SET lease_until = now() + :lease WHERE worker_id = :worker"),
                           params)
        connection.execute(text("UPDATE cluster_leases SET lease_until = now() + :lease WHERE holder = :worker"),
                           params)


def release_all(engine: Engine, worker_id: str) -> None:
    """At a clean stop: free what this worker still holds, so nobody waits for its leases to run out."""
    params = {"worker": worker_id}
    with coordination_transaction(engine, "could not release leases") as connection:
        connection.execute(text("UPDATE sources SET leased_by = NULL, lease_until = NULL WHERE leased_by = :worker"),
                           params)
        connection.execute(text("DELETE FROM host_slots WHERE worker_id = :worker"), params)
        connection.execute(text("DELETE FROM cluster_leases WHERE holder = :worker"), params)


def take_named_lease(engine: Engine, name: str, holder: str, lease: timedelta) -> bool:
    """Hold the lease `name` (e.g. the publisher's) if it is free, expired or already ours."""
    with coordination_transaction(engine, f"could not take the {name} lease") as connection:
        row = connection.execute(text("""
            INSERT INTO cluster_leases (name, holder, lease_until) VALUES (:name, :holder, now() + :lease)
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
                WHERE cluster_leases.holder = excluded.holder OR cluster_leases.lease_until < now()
            RETURNING holder
        """), {"name": name, "holder": holder, "lease": lease}).first()
    return row is not None
