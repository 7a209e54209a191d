"""/metrics of a cluster process: every worker from the `workers` table, the backlog, claims and queries.

Read from the store at each scrape (a few indexed queries), so any replica's /metrics shows the whole
cluster: which workers beat (and how long ago), how many sources each holds, how many sources are due
and not yet claimed, how many categories wait for the publisher. Per process: claim latency and the
number of SQL statements sent (divide by polls for queries per poll).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, exc, text

from aggregator.cluster.workers import list_workers
from aggregator.ops.metrics import Metrics

#: claim round trips take milliseconds; a contended or remote database tens of them
CLAIM_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ClusterMetrics:
    """The per-process cluster series, registered into the daemon's Metrics registry."""

    def __init__(self, metrics: Metrics, engine: Engine) -> None:
        self.claim_seconds = Histogram("aggregator_claim_seconds", "Time one claim of due sources took.",
                                       buckets=CLAIM_SECONDS_BUCKETS, registry=metrics.registry)
        self.statements = Counter("aggregator_db_statements", "SQL statements this process sent to the store.",
                                  registry=metrics.registry)
        metrics.registry.register(_StoreCollector(engine))

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            self.statements.inc()


class _StoreCollector(Collector):
    """Collected at scrape time from the store; a store that does not answer yields no cluster series."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            workers = list_workers(self._engine)
            with self._engine.connect() as connection:
                due = connection.execute(text(
                    "SELECT count(*) FROM sources WHERE leased_by IS NULL AND definition_hash IS NOT NULL"
                    " AND next_poll_at <= now()")).scalar_one()
                owed = connection.execute(text("SELECT count(*) FROM publish_owed")).scalar_one()
        except exc.SQLAlchemyError:
            return
        labels = ["worker", "host", "role"]
        heartbeat = GaugeMetricFamily("aggregator_worker_heartbeat_timestamp_seconds",
                                      "Unix time of each worker's last heartbeat.", labels=labels)
        held = GaugeMetricFamily("aggregator_worker_sources_held", "Sources each worker holds a lease on.",
                                 labels=labels)
        for worker in workers:
            heartbeat.add_metric([worker.id, worker.host, worker.role], worker.heartbeat_at.timestamp())
            held.add_metric([worker.id, worker.host, worker.role], worker.sources_held)
        yield heartbeat
        yield held
        yield GaugeMetricFamily("aggregator_workers", "Registered worker processes.", value=len(workers))
        yield GaugeMetricFamily("aggregator_sources_due", "Sources due and not claimed by any worker.", value=due)
        yield GaugeMetricFamily("aggregator_publish_owed_categories", "Categories waiting for the publisher.",
                                value=owed)
