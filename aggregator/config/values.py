"""Check one feeds.toml value (URL, timezone, cron, selector, …); each check raises ValueError with the
message ops will read, or returns the value unchanged. No business logic.

config/load.py attaches these to its fields with pydantic's AfterValidator, so a failure is reported with
the key and line it came from.
"""

from __future__ import annotations

import codecs
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: store values kept as URLs; anything else is a SQLite file path
STORE_URL_PREFIXES = ("postgresql://", "postgresql+psycopg://", "sqlite://")
_LISTEN_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
#: where the search for a cron expression's first fire time starts: a leap year, so "0 0 29 2 *" fires in it
_CRON_SEARCH_START = datetime(2000, 1, 1, tzinfo=UTC)


def check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as e:
        raise ValueError(f"must be an http or https URL, not {value!r} ({e})") from e
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"must be an http or https URL with a host, not {value!r}")
    return value


def check_url_template(value: str) -> str:
    """An http(s) URL that may hold `{id}`, the article id filled in per item."""
    placeholders = set(re.findall(r"\{([^{}]*)\}", value))
    if placeholders - {"id"}:
        unknown = ", ".join(sorted("{" + name + "}" for name in placeholders - {"id"}))
        raise ValueError(f"must use only the placeholder {{id}}, not {unknown}, in {value!r}")
    try:
        check_http_url(value.replace("{id}", "0"))
    except ValueError:
        raise ValueError(f"must be an http or https URL with a host (and may contain {{id}}), not {value!r}") from None
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"must be an IANA timezone such as \"Asia/Shanghai\", not {value!r}") from e
    return value


def check_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError as e:
        raise ValueError(f"must be a character encoding Python knows, such as \"gb18030\", not {value!r}") from e
    return value


def check_cron(value: str) -> str:
    """Five crontab fields, checked by the scheduler that will run them (imported only here)."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"must be a cron expression of 5 fields (minute hour day month weekday), not {value!r}")
    if any(char.isdigit() for char in fields[4]):
        # APScheduler 3 counts weekday 0 as Monday, crontab as Sunday (agronholm/apscheduler#286,
        # CronTrigger.from_crontab docstring): names mean the same day to both
        raise ValueError(f"must name weekdays (mon-fri, sun), not number them: {value!r} "
                         "(the scheduler counts 0 as Monday, crontab as Sunday)")
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as e:
        raise ValueError(f"must be a valid cron expression, not {value!r}: {e}") from e
    # each field may be valid while their combination names no date ("0 0 30 2 *"): the scheduler
    # would then never poll the source; it searches up to the year 9999 and returns None
    if trigger.get_next_fire_time(None, _CRON_SEARCH_START) is None:
        raise ValueError(f"must be a cron expression that fires (this one never does): {value!r}")
    return value


def check_listen(value: str) -> str:
    match = _LISTEN_RE.match(value)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise ValueError(f"must be HOST:PORT such as \"127.0.0.1:8080\", not {value!r}")
    return value


def check_css_selector(value: str) -> str:
    """Translated as the cleaner translates it: HTML rules, and no namespace prefixes (`svg|a`).

    cssselect is imported here, by the first selector to check: most sources have none."""
    from cssselect import SelectorError

    from aggregator.selectors import css_to_xpath

    try:
        css_to_xpath(value)
    except SelectorError as e:  # the refused namespace prefix is an ExpressionError, a SelectorError
        raise ValueError(f"must be a valid CSS selector, not {value!r}: {e}") from e
    return value


def check_regex(value: str) -> str:
    if not value:
        raise ValueError("must be a non-empty regular expression (an empty one matches between every character)")
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"must be a valid regular expression, not {value!r}: {e}") from e
    return value


def check_replacement(template: str, pattern: str) -> str:
    """A `re.sub` template for `pattern` (already checked): its group references exist, no lone backslash."""
    try:
        # re parses the template before it looks for a match, so an empty string checks it all
        re.compile(pattern).sub(template, "")
    except (re.error, IndexError) as e:  # an unknown \g<name> is an IndexError (CPython 3.11 re._parser)
        raise ValueError(f"must be a valid replacement template for the pattern: {e}") from e
    return template


def check_store(value: str) -> str:
    if not value:
        raise ValueError("must be a SQLite file path or a postgresql:// URL, not ''")
    if "://" in value and not value.startswith(STORE_URL_PREFIXES):
        schemes = ", ".join(STORE_URL_PREFIXES)
        raise ValueError(f"must be a SQLite file path or a URL starting with {schemes}, not {value!r}")
    return value
