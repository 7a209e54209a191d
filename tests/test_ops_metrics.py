"""Metrics fed from UpdateOutcome records: counters, the latency histogram, per-source gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from aggregator.ops.metrics import METRICS_CONTENT_TYPE, Metrics
from aggregator.models import ErrorInfo, SourceState, UpdateOutcome

FINISHED = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def _error(now: datetime = FINISHED) -> ErrorInfo:
    return ErrorInfo("FetchError", "fetch: HTTP 503 Service Unavailable", "fetch", now)


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_polls_are_counted_by_source_and_outcome() -> None:
    metrics = Metrics()
    for outcome in (
        UpdateOutcome("a", "new", inserted=2),
        UpdateOutcome("a", "new", inserted=1),
        UpdateOutcome("a", "error", error=_error()),
        UpdateOutcome("b", "not_modified"),
    ):
        metrics.record_outcome(outcome, FINISHED)

    assert _sample(metrics, "aggregator_polls_total", source="a", outcome="new") == 2
    assert _sample(metrics, "aggregator_polls_total", source="a", outcome="error") == 1
    assert _sample(metrics, "aggregator_polls_total", source="b", outcome="not_modified") == 1
    assert _sample(metrics, "aggregator_polls_total", source="b", outcome="new") is None


def test_fetch_latency_lands_in_its_histogram_bucket() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("a", "unchanged", fetch_seconds=0.3), FINISHED)
    metrics.record_outcome(UpdateOutcome("b", "unchanged", fetch_seconds=4.0), FINISHED)

    assert _sample(metrics, "aggregator_fetch_seconds_bucket", le="0.25") == 0
    assert _sample(metrics, "aggregator_fetch_seconds_bucket", le="0.5") == 1
    assert _sample(metrics, "aggregator_fetch_seconds_bucket", le="5.0") == 2
    assert _sample(metrics, "aggregator_fetch_seconds_count") == 2
    assert _sample(metrics, "aggregator_fetch_seconds_sum") == 4.3


def test_bytes_and_items_accumulate_per_source() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("a", "new", inserted=3, updated=1, bytes_fetched=1000), FINISHED)
    metrics.record_outcome(UpdateOutcome("a", "updated", updated=2, bytes_fetched=500), FINISHED)

    assert _sample(metrics, "aggregator_fetched_bytes_total", source="a") == 1500
    assert _sample(metrics, "aggregator_items_inserted_total", source="a") == 3
    assert _sample(metrics, "aggregator_items_updated_total", source="a") == 3


def test_consecutive_failures_grow_until_one_success_resets_them() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("a", "error", error=_error()), FINISHED)
    metrics.record_outcome(UpdateOutcome("a", "error", error=_error()), FINISHED)
    assert _sample(metrics, "aggregator_source_consecutive_failures", source="a") == 2

    metrics.record_outcome(UpdateOutcome("a", "not_modified"), FINISHED)
    assert _sample(metrics, "aggregator_source_consecutive_failures", source="a") == 0


def test_last_success_timestamp_moves_on_success_only() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("a", "unchanged"), FINISHED)
    metrics.record_outcome(UpdateOutcome("a", "error", error=_error()), FINISHED + timedelta(minutes=5))

    assert (
        _sample(metrics, "aggregator_source_last_success_timestamp_seconds", source="a")
        == FINISHED.timestamp()
    )


def test_gauges_start_from_the_stored_states_after_a_restart() -> None:
    metrics = Metrics()
    states = {"a": SourceState("a", failures=4, last_success_at=FINISHED)}

    metrics.load_states(states, ["a", "never-polled"])

    assert _sample(metrics, "aggregator_source_consecutive_failures", source="a") == 4
    assert (
        _sample(metrics, "aggregator_source_last_success_timestamp_seconds", source="a")
        == FINISHED.timestamp()
    )
    assert _sample(metrics, "aggregator_source_consecutive_failures", source="never-polled") == 0
    assert _sample(metrics, "aggregator_source_last_success_timestamp_seconds", source="never-polled") is None


def test_a_retired_source_is_counted_without_a_fetch() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("a", "retired"), FINISHED)

    assert _sample(metrics, "aggregator_polls_total", source="a", outcome="retired") == 1
    assert _sample(metrics, "aggregator_fetch_seconds_count") == 0


def test_the_410_answer_that_retires_a_source_counts_as_a_fetch_and_a_failure() -> None:
    metrics = Metrics()
    gone = ErrorInfo("FetchError", "fetch: HTTP 410 Gone", "fetch", FINISHED)

    metrics.record_outcome(UpdateOutcome("a", "retired", error=gone, fetch_seconds=0.2, http_status=410), FINISHED)

    assert _sample(metrics, "aggregator_polls_total", source="a", outcome="retired") == 1
    assert _sample(metrics, "aggregator_fetch_seconds_count") == 1
    # as the store counts it, so the gauge reads the same after a restart (load_states)
    assert _sample(metrics, "aggregator_source_consecutive_failures", source="a") == 1


def test_a_forgotten_source_has_no_series_left() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("gone", "new", inserted=1, bytes_fetched=10), FINISHED)
    metrics.record_outcome(UpdateOutcome("gone", "error", error=_error()), FINISHED)
    metrics.record_outcome(UpdateOutcome("kept", "new", inserted=1), FINISHED)

    metrics.forget_source("gone")

    body = metrics.render_metrics().decode()
    assert 'source="gone"' not in body
    assert 'source="kept"' in body


def test_two_instances_share_nothing() -> None:
    first, second = Metrics(), Metrics()
    first.record_outcome(UpdateOutcome("a", "new", inserted=1), FINISHED)

    assert _sample(second, "aggregator_polls_total", source="a", outcome="new") is None


def test_exposition_parses_as_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.record_outcome(UpdateOutcome("南通日报", "new", inserted=1, fetch_seconds=0.1), FINISHED)

    families = {
        family.name: family for family in text_string_to_metric_families(metrics.render_metrics().decode())
    }

    assert {
        "aggregator_polls",
        "aggregator_fetch_seconds",
        "aggregator_fetched_bytes",
        "aggregator_items_inserted",
        "aggregator_items_updated",
        "aggregator_source_consecutive_failures",
        "aggregator_source_last_success_timestamp_seconds",
    } <= set(families)
    assert families["aggregator_fetch_seconds"].type == "histogram"
    assert METRICS_CONTENT_TYPE.startswith("text/plain")
