"""Decide when and what each source polls next, and what each poll does to its state: pure functions.

Nothing here reads the clock, the config file or the store; callers pass `now`, intervals and a jitter
value, so every decision is a table test away (like reader's `HTTPInfo.get_update_after(now)` and its
`Decider`). The source state machine lives here (success, not modified, failure and backoff, permanent
redirect, gone, URL changed → one Transition: the new state and the outcome), as does the daemon's own
timing (where a source resumes after a restart, when its job runs after a poll).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from aggregator.config.load import SourceConfig
from aggregator.errors import FetchError
from aggregator.models import ErrorInfo, Fetched, NotModified, OutcomeStatus, SourceState, UpdateOutcome

#: a Retry-After or freshness lifetime longer than this is a broken header, not advice; the cap also keeps
#: `now + delay` far from datetime's overflow
MAX_SERVER_DELAY = timedelta(days=365)
#: sources sharing an interval are spread over at most this window (see spread_offset)
MAX_SPREAD = timedelta(minutes=5)
#: backoff jitter spreads the delay by this fraction either way
BACKOFF_SPREAD = 0.2
#: polls in a row that must announce the same permanent redirect before we follow it (issue 4)
MOVED_AFTER_POLLS = 3

_DELAY_SECONDS_RE = re.compile(r"^[0-9]+$")
_MAX_AGE_RE = re.compile(r"^max-age\s*=\s*\"?([0-9]+)\"?$", re.IGNORECASE)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as a delay from `now`, or None when absent or unreadable.

    RFC 9110 §10.2.3: `Retry-After = HTTP-date / delay-seconds`, delay-seconds being 1*DIGIT.
    A date in the past means "now" (zero delay).
    """
    if value is None or not (text := value.strip()):
        return None
    if _DELAY_SECONDS_RE.match(text):
        return _seconds_capped(text)
    moment = _parse_http_date(text)
    if moment is None:
        return None
    return min(max(moment - now, timedelta(0)), MAX_SERVER_DELAY)


def freshness_hint(headers: Mapping[str, str], now: datetime, ttl_minutes: int | None) -> timedelta | None:
    """How long the response says it stays fresh, or None when it says nothing.

    Order (RFC 9111 §4.2.1): Cache-Control max-age (minus Age, §4.2.3), else Expires − Date (or − now
    without a Date), else the RSS <ttl>. no-store/no-cache (§5.2.2.4, §5.2.2.5) switch the HTTP
    freshness off, so only the ttl can speak. An invalid Expires (e.g. "0") means already expired (§5.3).
    """
    cache_control = _header(headers, "cache-control")
    directives = [part.strip() for part in (cache_control or "").split(",") if part.strip()]
    uncacheable = any(d.lower() in ("no-store", "no-cache") for d in directives)
    if not uncacheable:
        max_age = _find_max_age(directives)
        if max_age is not None:
            return _clamp_server_delay(max_age - _parse_age(_header(headers, "age")))
        expires_value = _header(headers, "expires")
        if expires_value is not None:
            expires = _parse_http_date(expires_value)
            if expires is None:
                return timedelta(0)
            date = _parse_http_date(_header(headers, "date") or "") or now
            return _clamp_server_delay(expires - date)
    if ttl_minutes is not None and ttl_minutes > 0:
        return _clamp_server_delay(timedelta(minutes=ttl_minutes))
    return None


def next_poll_at(now: datetime, interval: timedelta, hint: timedelta | None, max_interval: timedelta) -> datetime:
    """The next poll after a success: the server's hint clamped to [interval, max_interval].

    The configured interval is a floor (we never poll more often than asked, even if the server says
    max-age=0), and it wins over a smaller max_interval.
    """
    if hint is None:
        return now + interval
    return now + max(interval, min(hint, max_interval))


def backoff_delay(failures: int, interval: timedelta, max_backoff: timedelta, jitter: float) -> timedelta:
    """Exponential backoff: interval, 2×, 4×… for 1, 2, 3… failures, capped at max_backoff.

    `jitter` in [0, 1) moves the delay by up to ±20 % so sources that failed together (one host down)
    do not retry together; the result never exceeds max_backoff.
    """
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), not {jitter!r}")
    # cap the exponent before multiplying: 2**10000 seconds does not fit a timedelta
    doublings = min(max(failures - 1, 0), 64)
    base_seconds = min(interval.total_seconds() * 2.0**doublings, max_backoff.total_seconds())
    spread_seconds = base_seconds * BACKOFF_SPREAD
    jittered_seconds = base_seconds - spread_seconds + 2 * spread_seconds * jitter
    return timedelta(seconds=min(jittered_seconds, max_backoff.total_seconds()))


def next_poll_after_failure(
    now: datetime,
    failures: int,
    interval: timedelta,
    max_backoff: timedelta,
    retry_after: timedelta | None,
    jitter: float,
) -> datetime:
    """The next poll after a failure: the backoff, or the server's Retry-After when that is later.

    Retry-After is honoured beyond max_backoff: the server asked us to stay away (RFC 9110 §10.2.3),
    and parse_retry_after already caps absurd values.
    """
    delay = backoff_delay(failures, interval, max_backoff, jitter)
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return now + delay


def spread_offset(source_name: str, interval: timedelta) -> timedelta:
    """A stable offset in [0, min(interval, 5 min)) derived from the name.

    Sources sharing an interval would otherwise all fire at start-up together. sha256, not hash():
    str hashes are salted per process, and the offset must survive restarts.
    """
    window = min(interval, MAX_SPREAD)
    digest = hashlib.sha256(source_name.encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return timedelta(microseconds=int(window / timedelta(microseconds=1) * fraction))


def is_due(next_poll_at: datetime | None, now: datetime) -> bool:
    """Whether a source should be polled at `now`; one never polled is due."""
    return next_poll_at is None or next_poll_at <= now


def resume_at(
    name: str, stored: datetime | None, interval: timedelta, max_delay: timedelta, now: datetime
) -> datetime:
    """First poll after a start: the stored next-poll time when still ahead, else soon, spread by name.

    A restart therefore never polls everything at once. `max_delay` bounds a stored time that lies
    absurdly far ahead (the clock was wrong when it was stored).
    """
    if stored is not None and stored > now:
        return min(stored, now + max_delay)
    return now + spread_offset(name, interval)


def follow_outcome(
    outcome: UpdateOutcome | None,
    now: datetime,
    interval: timedelta,
    next_cron_fire: Callable[[datetime], datetime | None] | None,
) -> datetime | None:
    """When a source's job runs next after a poll; None only for a cron expression that never fires again.

    The outcome's next_poll_at already follows the source's interval or cron times (PollTiming). No
    outcome (the store failed before the poll was recorded) means one more interval, or the next cron
    time (`next_cron_fire` gives a cron source's first fire time at or after a moment).
    """
    if outcome is None:
        return next_cron_fire(now) if next_cron_fire is not None else now + interval
    if next_cron_fire is None:
        return outcome.next_poll_at or now + interval
    return outcome.next_poll_at


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup; Fetched.headers are lower-cased already, other callers' may not be."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def _find_max_age(directives: list[str]) -> timedelta | None:
    for directive in directives:
        if match := _MAX_AGE_RE.match(directive):
            return _seconds_capped(match.group(1))
    return None


def _parse_age(value: str | None) -> timedelta:
    """Age header (RFC 9111 §5.1): non-negative seconds; anything else counts as 0."""
    if value is None or not _DELAY_SECONDS_RE.match(value.strip()):
        return timedelta(0)
    return _seconds_capped(value.strip())


def _parse_http_date(value: str) -> datetime | None:
    """HTTP-date (RFC 9110 §5.6.7, all three legacy forms) → aware UTC datetime, or None."""
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    # HTTP-date is always GMT; parsedate_to_datetime returns naive for a "-0000" zone
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _seconds_capped(digits: str) -> timedelta:
    """Cap before building the timedelta: a 30-digit header value would overflow it (and int() refuses
    more than 4300 digits, CPython's gh-95778 limit)."""
    cap_seconds = int(MAX_SERVER_DELAY.total_seconds())
    seconds = int(digits) if len(digits) <= len(str(cap_seconds)) else cap_seconds
    return timedelta(seconds=min(seconds, cap_seconds))


def _clamp_server_delay(delay: timedelta) -> timedelta:
    return min(max(delay, timedelta(0)), MAX_SERVER_DELAY)


def is_retired(retired_url: str | None, url: str) -> bool:
    """A 410 retired the URL that answered it; ops editing the URL in feeds.toml revives the source."""
    return retired_url is not None and retired_url == url


# --- the source state machine ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollTiming:
    """How often one source may be polled: its interval or cron times, and the caps on hints and backoff."""

    interval: timedelta
    max_interval: timedelta
    max_backoff: timedelta
    #: a cron source's first fire time at or after a moment (None: never again); None for interval sources
    next_cron_fire: Callable[[datetime], datetime | None] | None = None

    def after_success(self, now: datetime, hint: timedelta | None) -> datetime | None:
        """An interval source: the server's hint clamped (next_poll_at). A cron source keeps its cron times."""
        if self.next_cron_fire is not None:
            return self.next_cron_fire(now)
        return next_poll_at(now, self.interval, hint, self.max_interval)

    def after_failure(
        self, now: datetime, failures: int, retry_after: timedelta | None, jitter: float
    ) -> datetime | None:
        """The backoff or Retry-After (next_poll_after_failure); a cron source then waits for its next cron time."""
        delay_until = next_poll_after_failure(now, failures, self.interval, self.max_backoff, retry_after, jitter)
        if self.next_cron_fire is not None:
            return self.next_cron_fire(delay_until)
        return delay_until


@dataclass(frozen=True, slots=True)
class Transition:
    """What one poll does to a source: the state to store and the outcome to report."""

    state: SourceState
    status: OutcomeStatus
    error: ErrorInfo | None = None


def state_for(name: str, url: str, stored: SourceState | None) -> SourceState:
    """The stored state, reset when ops changed the source's URL in feeds.toml.

    Validators, redirects, failures, the retirement and the next poll time belong to the old URL; only
    the last success is kept (for `status`).
    """
    if stored is None:
        return SourceState(name=name, config_url=url)
    if stored.config_url not in (None, url):
        return SourceState(name=name, config_url=url, last_success_at=stored.last_success_at)
    return stored


def url_to_poll(state: SourceState, url: str) -> str | None:
    """The URL to fetch: the configured one, or where it moved once MOVED_AFTER_POLLS polls in a row said
    so (301/308); None when a 410 retired it."""
    if is_retired(state.retired_url, url):
        return None
    if state.moved_to and state.moved_count >= MOVED_AFTER_POLLS:
        return state.moved_to
    return url


def select_due(
    sources: Iterable[SourceConfig], states: Mapping[str, SourceState], now: datetime
) -> list[SourceConfig]:
    """Enabled, not retired sources whose next poll time has come."""
    due = []
    for source in sources:
        state = state_for(source.name, source.url, states.get(source.name))
        if source.enabled and url_to_poll(state, source.url) is not None and is_due(state.next_poll_at, now):
            due.append(source)
    return due


def after_response(
    state: SourceState,
    url: str,
    response: Fetched | NotModified,
    now: datetime,
    timing: PollTiming,
    *,
    ttl_minutes: int | None = None,
    inserted: int = 0,
    updated: int = 0,
) -> Transition:
    """A 2xx or 304 from `response.url`, which stored `inserted` new and `updated` changed items.

    Failures and the retirement are cleared; a 304 keeps the validators it did not repeat, a 2xx keeps
    only those it sent. A permanent redirect is counted while it names the same target; fetching the
    target itself keeps the count (url_to_poll then follows it).
    """
    moved_to, moved_count = None, 0
    if response.url == state.moved_to:
        moved_to, moved_count = state.moved_to, state.moved_count
    elif isinstance(response, Fetched) and response.permanent_redirect:
        moved_to = response.permanent_redirect
        moved_count = state.moved_count + 1 if moved_to == state.moved_to else 1
    not_modified = isinstance(response, NotModified)
    hint = freshness_hint(response.headers, now, ttl_minutes)
    new_state = state.replace(
        etag=response.headers.get("etag") or (state.etag if not_modified else None),
        last_modified=response.headers.get("last-modified") or (state.last_modified if not_modified else None),
        failures=0, last_error=None, last_success_at=now, last_polled_at=now, last_status=response.status,
        moved_to=moved_to, moved_count=moved_count, retired_url=None, config_url=url,
        next_poll_at=timing.after_success(now, hint),
    )
    status: OutcomeStatus = (
        "not_modified" if not_modified else "new" if inserted else "updated" if updated else "unchanged"
    )
    return Transition(new_state, status)


def after_failure(
    state: SourceState, url: str, exc: Exception, stage: str, now: datetime, timing: PollTiming, jitter: float
) -> Transition:
    """A poll that failed at `stage`: one more failure, backed off; HTTP 410 Gone retires `url`."""
    http_status = exc.status if isinstance(exc, FetchError) else None
    retry_seconds = exc.retry_after_seconds if isinstance(exc, FetchError) else None
    retry_after = timedelta(seconds=retry_seconds) if retry_seconds is not None else None
    failures = state.failures + 1
    error = ErrorInfo.from_exception(exc, stage, now)
    gone = http_status == 410
    new_state = state.replace(
        failures=failures, last_error=error, last_polled_at=now, last_status=http_status,
        next_poll_at=timing.after_failure(now, failures, retry_after, jitter),
        config_url=url, retired_url=url if gone else None,
    )
    return Transition(new_state, "retired" if gone else "error", error)
