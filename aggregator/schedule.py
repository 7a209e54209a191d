"""Decide when each source is polled next: pure functions of the response, the failures and `now`.

Nothing here reads the clock or the config; callers pass `now`, intervals and a jitter value, so every
decision is a table test away (like reader's `HTTPInfo.get_update_after(now)`). The daemon's own timing
(where a source resumes after a restart, when its job runs after a poll) is decided here too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from aggregator.models import UpdateOutcome

#: a Retry-After or freshness lifetime longer than this is a broken header, not advice; the cap also keeps
#: `now + delay` far from datetime's overflow
MAX_SERVER_DELAY = timedelta(days=365)
#: sources sharing an interval are spread over at most this window (see spread_offset)
MAX_SPREAD = timedelta(minutes=5)
#: backoff jitter spreads the delay by this fraction either way
BACKOFF_SPREAD = 0.2

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

    An interval source follows the outcome's next_poll_at (interval, server hints, backoff: see
    next_poll_at and next_poll_after_failure). A cron source (`next_cron_fire` gives its first fire time
    at or after a moment) keeps its cron times, except that after a failure it first waits for the
    backoff or Retry-After. No outcome (the store failed before the poll was recorded) means one more
    interval, or the next cron time.
    """
    next_poll = outcome.next_poll_at if outcome is not None else None
    if next_cron_fire is None:
        return next_poll or now + interval
    if outcome is not None and outcome.error is not None and next_poll is not None:
        return next_cron_fire(next_poll)
    return next_cron_fire(now)


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
