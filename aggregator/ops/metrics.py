"""Prometheus metrics of the daemon, fed from UpdateOutcome records; one registry per instance, no globals.

The names follow the Prometheus naming guide (https://prometheus.io/docs/practices/naming/): a unit
suffix in every name (`_seconds`, `_bytes`), `_total` on counters. Per-source labels are bounded by
feeds.toml; a source removed from the configuration is forgotten so its series disappear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import get_args, get_type_hints

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from aggregator.models import SourceState, StoryCounts, UpdateOutcome

#: fetch latency buckets in seconds: loopback answers in milliseconds, a slow newspaper server in
#: tens of seconds, and settings.timeout defaults to 30 s.
FETCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: outcomes that count as a successful poll (they reset the consecutive failures)
SUCCESS_STATUSES = frozenset({"new", "updated", "unchanged", "not_modified"})

#: every UpdateOutcome.status, to drop a forgotten source's poll counters
OUTCOME_STATUSES: tuple[str, ...] = get_args(get_type_hints(UpdateOutcome)["status"])
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Counters and gauges of one daemon; `render_metrics()` gives the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.polls = Counter(
            "aggregator_polls",
            "Polls by source and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "aggregator_fetch_seconds",
            "Time spent fetching a source (network part of a poll).",
            buckets=FETCH_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.bytes_fetched = Counter(
            "aggregator_fetched_bytes",
            "Response body bytes fetched, by source.",
            ["source"],
            registry=self.registry,
        )
        self.items_inserted = Counter(
            "aggregator_items_inserted",
            "New items stored, by source.",
            ["source"],
            registry=self.registry,
        )
        self.items_updated = Counter(
            "aggregator_items_updated",
            "Stored items whose content changed, by source.",
            ["source"],
            registry=self.registry,
        )
        self.items_merged = Counter(
            "aggregator_items_merged",
            "New items that joined an earlier item's story (same-story detection), by source.",
            ["source"],
            registry=self.registry,
        )
        self.stories = Gauge(
            "aggregator_stories",
            "Stories of two or more items in the store.",
            registry=self.registry,
        )
        self.story_merged_items = Gauge(
            "aggregator_story_merged_items",
            "Items in the store that joined an earlier item's story.",
            registry=self.registry,
        )
        self.consecutive_failures = Gauge(
            "aggregator_source_consecutive_failures",
            "Failed polls in a row; one success resets it.",
            ["source"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "aggregator_source_last_success_timestamp_seconds",
            "Unix time of the last successful poll.",
            ["source"],
            registry=self.registry,
        )

    def load_states(self, states: Mapping[str, SourceState], source_names: Iterable[str]) -> None:
        """Start the per-source gauges from what storage remembers, so a restart does not reset them."""
        for name in source_names:
            state = states.get(name)
            self.consecutive_failures.labels(name).set(state.failures if state else 0)
            if state is not None and state.last_success_at is not None:
                self.last_success.labels(name).set(state.last_success_at.timestamp())

    def load_story_counts(self, counts: StoryCounts) -> None:
        """Set the story gauges from the store's totals (at start, and after a poll that merged items)."""
        self.stories.set(counts.stories)
        self.story_merged_items.set(counts.merged_items)

    def record_outcome(self, outcome: UpdateOutcome, finished_at: datetime) -> None:
        """Count one poll; `finished_at` stamps a success (the outcome itself carries no time)."""
        name = outcome.source_name
        self.polls.labels(name, outcome.status).inc()
        if outcome.error is None and outcome.status == "retired":
            return  # nothing was fetched (a "retired" outcome with an error is the 410 answer itself)
        self.fetch_seconds.observe(outcome.fetch_seconds)
        self.bytes_fetched.labels(name).inc(outcome.bytes_fetched)
        self.items_inserted.labels(name).inc(outcome.inserted)
        self.items_updated.labels(name).inc(outcome.updated)
        self.items_merged.labels(name).inc(outcome.merged)
        if outcome.error is not None:
            # counted like the store counts it, so the gauge agrees with `status` and survives restarts
            self.consecutive_failures.labels(name).inc()
        elif outcome.status in SUCCESS_STATUSES:
            self.consecutive_failures.labels(name).set(0)
            self.last_success.labels(name).set(finished_at.timestamp())

    def forget_source(self, name: str) -> None:
        """Drop every series of a source that left the configuration."""
        for family in (
            self.bytes_fetched,
            self.items_inserted,
            self.items_updated,
            self.items_merged,
            self.consecutive_failures,
            self.last_success,
        ):
            family.remove(name)
        for status in OUTCOME_STATUSES:
            self.polls.remove(name, status)

    def render_metrics(self) -> bytes:
        """The Prometheus text exposition of this registry (serve it with METRICS_CONTENT_TYPE)."""
        return generate_latest(self.registry)
