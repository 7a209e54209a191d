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
from aggregator.errors import FetchError, ParseError
from aggregator.models import ErrorInfo, Fetched, NotModified, SourceState, UpdateOutcome
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
        (UpdateOutcome("a", "new", next_poll_at=NOW + 60 * MINUTE), _cron_fire, NOW + 60 * MINUTE),
        (None, _cron_fire, NOW + 60 * MINUTE),
        (UpdateOutcome("a", "new", next_poll_at=None), _cron_never_fires, None),
    ],
    ids=["interval-follows-next-poll", "interval-follows-backoff", "no-time-waits-one-interval",
         "no-outcome-waits-one-interval", "cron-follows-the-cron-time-the-poll-stored",
         "no-outcome-waits-for-the-next-cron-time", "cron-that-never-fires-again-stays-paused"],
)
def test_follow_outcome(
    outcome: UpdateOutcome | None,
    next_cron_fire: Callable[[datetime], datetime | None] | None,
    expected: datetime | None,
) -> None:
    assert schedule.follow_outcome(outcome, NOW, 5 * MINUTE, next_cron_fire) == expected


# --- the source state machine: one row per transition -----------------------------------------------

URL = "https://example.cn/feed.xml"
MOVED = "https://example.cn/new-feed.xml"
INTERVAL = 15 * MINUTE
TIMING = schedule.PollTiming(INTERVAL, 360 * MINUTE, 720 * MINUTE)
CRON_TIMING = schedule.PollTiming(90 * MINUTE, 360 * MINUTE, 720 * MINUTE, _cron_fire)
NEVER_TIMING = schedule.PollTiming(INTERVAL, 360 * MINUTE, 720 * MINUTE, _cron_never_fires)
#: a source that has been polled before: validators, one failure, a redirect seen once
BEFORE = SourceState(
    name="s", etag='"v1"', last_modified="Mon, 23 Nov 2026 06:00:00 GMT", next_poll_at=NOW, failures=1,
    last_error=ERROR, last_success_at=NOW - 60 * MINUTE, last_polled_at=NOW - 15 * MINUTE, last_status=503,
    moved_to=MOVED, moved_count=1, config_url=URL,
)


def _fetched(url: str = URL, headers: dict[str, str] | None = None, redirect: str | None = None) -> Fetched:
    return Fetched(url, url, 200, headers or {}, b"<rss/>", NOW, permanent_redirect=redirect)


def _not_modified(headers: dict[str, str] | None = None) -> NotModified:
    return NotModified(URL, headers or {}, NOW)


def _succeeded(**changes: object) -> SourceState:
    """BEFORE after a success: failures and errors cleared, the redirect forgotten, polled now."""
    fields: dict[str, object] = {
        "etag": None, "last_modified": None, "failures": 0, "last_error": None, "last_success_at": NOW,
        "last_polled_at": NOW, "last_status": 200, "moved_to": None, "moved_count": 0, "retired_url": None,
        "next_poll_at": NOW + INTERVAL,
    }
    return BEFORE.replace(**{**fields, **changes})


def _failed(exc: Exception, stage: str = "fetch", **changes: object) -> SourceState:
    fields: dict[str, object] = {
        "failures": 2, "last_error": ErrorInfo.from_exception(exc, stage, NOW), "last_polled_at": NOW,
        "last_status": getattr(exc, "status", None), "next_poll_at": NOW + 30 * MINUTE,
    }
    return BEFORE.replace(**{**fields, **changes})


HTTP_503 = FetchError("s", URL, "fetch: HTTP 503 Service Unavailable", status=503)
HTTP_503_RETRY_LATER = FetchError("s", URL, "fetch: HTTP 503 Service Unavailable", status=503,
                                  retry_after_seconds=7200)
HTTP_410 = FetchError("s", URL, "fetch: HTTP 410 Gone", status=410)
MALFORMED = ParseError("s", URL, "parse: not a feed")

TRANSITIONS = [
    ("success_with_new_items_stores_the_validators_it_sent",
     lambda: schedule.after_response(BEFORE, URL, _fetched(headers={"etag": '"v2"'}), NOW, TIMING, inserted=2),
     _succeeded(etag='"v2"'), "new"),
    ("success_with_changed_items_only_is_updated",
     lambda: schedule.after_response(BEFORE, URL, _fetched(), NOW, TIMING, updated=1),
     _succeeded(), "updated"),
    ("success_with_nothing_new_is_unchanged_and_follows_the_server_hint",
     lambda: schedule.after_response(BEFORE, URL, _fetched(headers={"cache-control": "max-age=3600"}), NOW, TIMING),
     _succeeded(next_poll_at=NOW + 60 * MINUTE), "unchanged"),
    ("success_follows_the_rss_ttl",
     lambda: schedule.after_response(BEFORE, URL, _fetched(), NOW, TIMING, ttl_minutes=45),
     _succeeded(next_poll_at=NOW + 45 * MINUTE), "unchanged"),
    ("not_modified_keeps_the_validators_it_did_not_repeat",
     lambda: schedule.after_response(BEFORE, URL, _not_modified({"etag": '"v1"'}), NOW, TIMING),
     _succeeded(etag='"v1"', last_modified=BEFORE.last_modified, last_status=304), "not_modified"),
    ("failure_counts_and_backs_off",
     lambda: schedule.after_failure(BEFORE, URL, HTTP_503, "fetch", NOW, TIMING, 0.5),
     _failed(HTTP_503), "error"),
    ("failure_waits_for_a_later_retry_after",
     lambda: schedule.after_failure(BEFORE, URL, HTTP_503_RETRY_LATER, "fetch", NOW, TIMING, 0.5),
     _failed(HTTP_503_RETRY_LATER, next_poll_at=NOW + 120 * MINUTE), "error"),
    ("parse_failure_is_recorded_with_its_stage_and_no_http_status",
     lambda: schedule.after_failure(BEFORE, URL, MALFORMED, "parse", NOW, TIMING, 0.5),
     _failed(MALFORMED, "parse"), "error"),
    ("gone_retires_the_configured_url",
     lambda: schedule.after_failure(BEFORE, URL, HTTP_410, "fetch", NOW, TIMING, 0.5),
     _failed(HTTP_410, retired_url=URL), "retired"),
    ("permanent_redirect_to_the_same_target_is_counted",
     lambda: schedule.after_response(BEFORE, URL, _fetched(redirect=MOVED), NOW, TIMING),
     _succeeded(moved_to=MOVED, moved_count=2), "unchanged"),
    ("permanent_redirect_to_another_target_counts_again_from_one",
     lambda: schedule.after_response(BEFORE, URL, _fetched(redirect=MOVED + "?v=2"), NOW, TIMING),
     _succeeded(moved_to=MOVED + "?v=2", moved_count=1), "unchanged"),
    ("fetching_the_moved_url_itself_keeps_the_count",
     lambda: schedule.after_response(BEFORE, URL, _fetched(url=MOVED), NOW, TIMING),
     _succeeded(moved_to=MOVED, moved_count=1), "unchanged"),
    ("cron_source_success_keeps_its_cron_times",
     lambda: schedule.after_response(BEFORE, URL, _fetched(), NOW, CRON_TIMING),
     _succeeded(next_poll_at=NOW + 60 * MINUTE), "unchanged"),
    ("cron_source_failure_waits_for_the_backoff_then_the_next_cron_time",
     lambda: schedule.after_failure(BEFORE.replace(failures=0), URL, HTTP_503, "fetch", NOW, CRON_TIMING, 0.5),
     _failed(HTTP_503, failures=1, next_poll_at=NOW + 120 * MINUTE), "error"),
    ("cron_that_never_fires_again_has_no_next_poll",
     lambda: schedule.after_response(BEFORE, URL, _fetched(), NOW, NEVER_TIMING),
     _succeeded(next_poll_at=None), "unchanged"),
]


@pytest.mark.parametrize(("transition", "state", "status"), [row[1:] for row in TRANSITIONS],
                         ids=[row[0] for row in TRANSITIONS])
def test_poll_transition(
    transition: Callable[[], schedule.Transition], state: SourceState, status: str
) -> None:
    result = transition()
    assert (result.state, result.status) == (state, status)
    assert result.error == (state.last_error if status in ("error", "retired") else None)


@pytest.mark.parametrize(
    ("stored", "url", "expected"),
    [
        (None, URL, SourceState(name="s", config_url=URL)),
        (BEFORE, URL, BEFORE),
        (BEFORE.replace(config_url=None), URL, BEFORE.replace(config_url=None)),
        (BEFORE.replace(retired_url=URL), MOVED, SourceState(name="s", config_url=MOVED,
                                                             last_success_at=BEFORE.last_success_at)),
    ],
    ids=["never_polled_starts_afresh", "same_url_keeps_its_state", "state_from_before_urls_were_kept_is_kept",
         "url_changed_resets_all_but_the_last_success"],
)
def test_state_for(stored: SourceState | None, url: str, expected: SourceState) -> None:
    assert schedule.state_for("s", url, stored) == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (BEFORE, URL),
        (BEFORE.replace(moved_count=schedule.MOVED_AFTER_POLLS - 1), URL),
        (BEFORE.replace(moved_count=schedule.MOVED_AFTER_POLLS), MOVED),
        (BEFORE.replace(retired_url=URL), None),
        (BEFORE.replace(retired_url="https://example.cn/old.xml"), URL),
    ],
    ids=["configured_url", "redirect_not_yet_announced_often_enough", "redirect_announced_often_enough_is_followed",
         "retired_url_is_not_polled", "retirement_of_an_older_url_does_not_count"],
)
def test_url_to_poll(state: SourceState, expected: str | None) -> None:
    assert schedule.url_to_poll(state, URL) == expected
