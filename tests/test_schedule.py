"""Table tests for the pure poll-time decisions in aggregator.schedule, the daemon's included."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from aggregator import schedule
from aggregator.models import ErrorInfo, UpdateOutcome
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", timedelta(seconds=120)),
        ("  120 ", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        (http_date(NOW + timedelta(seconds=90)), timedelta(seconds=90)),
        (http_date(NOW - timedelta(hours=1)), timedelta(0)),
        ("Tuesday, 24-Nov-26 06:05:00 GMT", timedelta(minutes=5)),
        ("Tue Nov 24 06:10:00 2026", timedelta(minutes=10)),
        ("99999999999999999999999999", schedule.MAX_SERVER_DELAY),
        ("9" * 5000, schedule.MAX_SERVER_DELAY),
    ],
    ids=[
        "absent", "empty", "delay_seconds", "delay_seconds_with_spaces", "zero", "negative_is_invalid",
        "fraction_is_invalid", "garbage", "imf_fixdate_in_future", "date_in_past_means_now", "rfc850_date",
        "asctime_date", "huge_delay_is_capped", "more_digits_than_int_accepts_is_capped",
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(value: str | None, expected: timedelta | None) -> None:
    assert schedule.parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "ttl_minutes", "expected"),
    [
        ({}, None, None),
        ({"cache-control": "max-age=600"}, None, timedelta(minutes=10)),
        ({"cache-control": "public, max-age=\"600\""}, None, timedelta(minutes=10)),
        ({"cache-control": "max-age=600", "age": "100"}, None, timedelta(seconds=500)),
        ({"cache-control": "max-age=60", "age": "600"}, None, timedelta(0)),
        ({"cache-control": "max-age=600", "expires": http_date(NOW + timedelta(hours=5))}, None,
         timedelta(minutes=10)),
        ({"cache-control": "no-cache, max-age=600"}, 30, timedelta(minutes=30)),
        ({"cache-control": "no-store", "expires": http_date(NOW + timedelta(hours=5))}, None, None),
        ({"expires": http_date(NOW + timedelta(hours=2)), "date": http_date(NOW - timedelta(hours=1))}, None,
         timedelta(hours=3)),
        ({"expires": http_date(NOW + timedelta(hours=2))}, None, timedelta(hours=2)),
        ({"expires": "0"}, 30, timedelta(0)),
        ({"expires": http_date(NOW - timedelta(hours=2))}, None, timedelta(0)),
        ({}, 45, timedelta(minutes=45)),
        ({}, 0, None),
        ({"Cache-Control": "max-age=120"}, None, timedelta(minutes=2)),
        ({"cache-control": "max-age=oops"}, 20, timedelta(minutes=20)),
        ({"cache-control": "max-age=99999999999"}, None, schedule.MAX_SERVER_DELAY),
    ],
    ids=[
        "nothing_known", "max_age", "max_age_quoted_among_others", "max_age_minus_age",
        "age_beyond_max_age_is_stale", "max_age_beats_expires", "no_cache_leaves_only_ttl",
        "no_store_ignores_expires", "expires_minus_date", "expires_minus_now_without_date",
        "invalid_expires_is_already_expired", "expires_in_past", "rss_ttl", "zero_ttl_is_no_hint",
        "header_names_in_any_case", "malformed_max_age_is_ignored", "absurd_max_age_is_capped",
    ],
)
def test_freshness_hint_follows_cache_control_then_expires_then_ttl(
    headers: dict[str, str], ttl_minutes: int | None, expected: timedelta | None
) -> None:
    assert schedule.freshness_hint(headers, NOW, ttl_minutes) == expected


@pytest.mark.parametrize(
    ("interval", "hint", "max_interval", "expected_delay"),
    [
        (15 * MINUTE, None, 360 * MINUTE, 15 * MINUTE),
        (15 * MINUTE, timedelta(0), 360 * MINUTE, 15 * MINUTE),
        (15 * MINUTE, 60 * MINUTE, 360 * MINUTE, 60 * MINUTE),
        (15 * MINUTE, 24 * 60 * MINUTE, 360 * MINUTE, 360 * MINUTE),
        (60 * MINUTE, 90 * MINUTE, 30 * MINUTE, 60 * MINUTE),
    ],
    ids=["no_hint_uses_interval", "hint_below_interval_is_raised", "hint_within_bounds_is_used",
         "hint_above_max_is_capped", "interval_wins_over_smaller_max"],
)
def test_next_poll_clamps_the_hint_to_interval_and_max(
    interval: timedelta, hint: timedelta | None, max_interval: timedelta, expected_delay: timedelta
) -> None:
    assert schedule.next_poll_at(NOW, interval, hint, max_interval) == NOW + expected_delay


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (1, 0.5, 15 * MINUTE),
        (2, 0.5, 30 * MINUTE),
        (3, 0.5, 60 * MINUTE),
        (1, 0.0, 12 * MINUTE),
        (1, 0.999, timedelta(seconds=15 * 60 * 1.1996)),
        (6, 0.5, 480 * MINUTE),
        (7, 0.5, 720 * MINUTE),
        (7, 0.0, 576 * MINUTE),
        (7, 0.999, 720 * MINUTE),
        (10_000, 0.5, 720 * MINUTE),
        (0, 0.5, 15 * MINUTE),
    ],
    ids=["first_failure_waits_one_interval", "second_doubles", "third_doubles_again", "jitter_low_is_minus_20pc",
         "jitter_high_is_nearly_plus_20pc", "below_cap", "capped", "capped_spreads_downwards",
         "never_above_cap", "huge_failure_count_does_not_overflow", "zero_failures_is_one_interval"],
)
def test_backoff_grows_exponentially_with_jitter_and_cap(failures: int, jitter: float, expected: timedelta) -> None:
    delay = schedule.backoff_delay(failures, 15 * MINUTE, 720 * MINUTE, jitter)
    assert abs(delay - expected) < timedelta(milliseconds=1)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.5], ids=["negative", "one", "above_one"])
def test_backoff_refuses_jitter_outside_unit_interval(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        schedule.backoff_delay(1, MINUTE, 60 * MINUTE, jitter)


@pytest.mark.parametrize(
    ("retry_after", "expected_delay"),
    [
        (None, 60 * MINUTE),
        (5 * MINUTE, 60 * MINUTE),
        (3 * 60 * MINUTE, 3 * 60 * MINUTE),
        (48 * 60 * MINUTE, 48 * 60 * MINUTE),
    ],
    ids=["backoff_without_retry_after", "earlier_retry_after_loses", "later_retry_after_wins",
         "retry_after_beyond_max_backoff_is_honoured"],
)
def test_next_poll_after_failure_takes_the_later_of_backoff_and_retry_after(
    retry_after: timedelta | None, expected_delay: timedelta
) -> None:
    at = schedule.next_poll_after_failure(NOW, 3, 15 * MINUTE, 720 * MINUTE, retry_after, 0.5)
    assert at == NOW + expected_delay


@pytest.mark.parametrize(
    ("name", "interval"),
    [("nantongribao-rss", 15 * MINUTE), ("南通日报", 15 * MINUTE), ("a", 2 * MINUTE), ("", 1 * MINUTE),
     ("b", timedelta(seconds=1))],
    ids=["ascii_name", "chinese_name", "short_interval_limits_window", "empty_name", "one_second_interval"],
)
def test_spread_offset_lies_within_the_window(name: str, interval: timedelta) -> None:
    offset = schedule.spread_offset(name, interval)
    assert timedelta(0) <= offset < min(interval, schedule.MAX_SPREAD)


def test_spread_offsets_of_many_sources_cover_the_window() -> None:
    offsets = sorted(schedule.spread_offset(f"source-{i}", 15 * MINUTE) for i in range(100))
    assert len(set(offsets)) == 100
    assert offsets[0] < MINUTE
    assert offsets[-1] > 4 * MINUTE


def test_spread_offset_is_the_same_in_every_process() -> None:
    code = ("from datetime import timedelta; from aggregator.schedule import spread_offset; "
            "print(spread_offset('nantongribao', timedelta(minutes=15)))")
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30,
                       cwd=REPO_ROOT, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{schedule.spread_offset('nantongribao', 15 * MINUTE)}\n"}


@pytest.mark.parametrize(
    ("next_poll", "expected"),
    [(None, True), (NOW - MINUTE, True), (NOW, True), (NOW + MINUTE, False)],
    ids=["never_polled", "past", "exactly_now", "future"],
)
def test_is_due_when_next_poll_is_not_in_the_future(next_poll: datetime | None, expected: bool) -> None:
    assert schedule.is_due(next_poll, NOW) is expected


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (NOW + 7 * MINUTE, NOW + 7 * MINUTE),
        (NOW + 30 * 24 * 60 * MINUTE, NOW + 12 * 60 * MINUTE),
        (NOW - 3 * MINUTE, NOW + schedule.spread_offset("nantong", 15 * MINUTE)),
        (None, NOW + schedule.spread_offset("nantong", 15 * MINUTE)),
    ],
    ids=[
        "stored-time-ahead-is-kept",
        "absurd-stored-time-is-capped",
        "overdue-is-spread-not-immediate",
        "never-polled-is-spread",
    ],
)
def test_resume_at(stored: datetime | None, expected: datetime) -> None:
    assert schedule.resume_at("nantong", stored, 15 * MINUTE, 12 * 60 * MINUTE, NOW) == expected


def test_overdue_sources_do_not_all_resume_at_once() -> None:
    names = [f"source-{index}" for index in range(50)]

    starts = {schedule.resume_at(name, NOW - MINUTE, 15 * MINUTE, 12 * 60 * MINUTE, NOW) for name in names}

    assert len(starts) == 50
    assert max(starts) - min(starts) > 3 * MINUTE
    assert all(NOW <= start < NOW + 5 * MINUTE for start in starts)


ERROR = ErrorInfo("FetchError", "fetch: HTTP 503 Service Unavailable", "fetch", NOW)


def _cron_fire(moment: datetime) -> datetime:
    """Stands in for a cron trigger firing on every full hour."""
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _cron_never_fires(moment: datetime) -> None:
    """Stands in for an expression such as "0 0 30 2 *" (30 February)."""
    return


@pytest.mark.parametrize(
    ("outcome", "next_cron_fire", "expected"),
    [
        (UpdateOutcome("a", "new", next_poll_at=NOW + 15 * MINUTE), None, NOW + 15 * MINUTE),
        (UpdateOutcome("a", "error", error=ERROR, next_poll_at=NOW + 2 * MINUTE), None, NOW + 2 * MINUTE),
        (UpdateOutcome("a", "retired"), None, NOW + 5 * MINUTE),
        (None, None, NOW + 5 * MINUTE),
        (UpdateOutcome("a", "new", next_poll_at=NOW + 15 * MINUTE), _cron_fire, NOW + 60 * MINUTE),
        (UpdateOutcome("a", "error", error=ERROR, next_poll_at=NOW + 90 * MINUTE), _cron_fire,
         NOW + 120 * MINUTE),
        (None, _cron_fire, NOW + 60 * MINUTE),
        (UpdateOutcome("a", "new", next_poll_at=NOW + 15 * MINUTE), _cron_never_fires, None),
    ],
    ids=["interval-follows-next-poll", "interval-follows-backoff", "no-time-waits-one-interval",
         "no-outcome-waits-one-interval", "cron-success-keeps-cron-times",
         "cron-failure-waits-for-the-backoff-then-the-next-cron-time", "no-outcome-waits-for-the-next-cron-time",
         "cron-that-never-fires-again-stays-paused"],
)
def test_follow_outcome(
    outcome: UpdateOutcome | None,
    next_cron_fire: Callable[[datetime], datetime | None] | None,
    expected: datetime | None,
) -> None:
    assert schedule.follow_outcome(outcome, NOW, 5 * MINUTE, next_cron_fire) == expected
