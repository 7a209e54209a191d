"""Read a date string from a source into an aware UTC datetime, naive times in the source's timezone.

Pure: relative forms ("5分钟前", "昨天 12:30") and month-day forms without a year are resolved
against the `now` passed in, never against the clock.

We read the raw string ourselves instead of trusting feedparser's `*_parsed` values, because
feedparser assumes UTC for a naive time (eight hours off for a Chinese source) and its lenient
W3C-DTF reader invents dates from strings it does not understand ("2022年01月24日" comes back as
2022-11-01). An unreadable string gives None, never a guess.

Forms, tried in this order (first match wins):
  刚刚 · N秒/分钟/小时/天前 · 今天/昨天/前天 HH:MM[:SS]
  2022年01月24日 [00:48[:09]] · 1月24日 [00:48]
  2022-01-24[( |T)00:48[:09[.fff]]][Z|±hh:mm|±hhmm] (also / and . as date separators) · 2022-01 · 2022
  01-24 00:48 (month-day: this year in the source timezone, or last year if that is > 1 day ahead)
  RFC 822 / RFC 5322 ("Mon, 24 Jan 2022 00:48:09 +0800", also Java's "Mon Jan 24 00:48:09 CST 2022")
  anything else datetime.fromisoformat accepts (ISO 8601 basic format "20220124T004809Z")
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_tz
from zoneinfo import ZoneInfo

#: how far ahead of `now` a month-day date may lie before we read it as last year's
#: (an item dated "12-31 23:50" seen at 00:05 on 1 January belongs to the year before)
MONTH_DAY_FUTURE_TOLERANCE = timedelta(days=1)

#: no date we read is longer; a longer text is not a date, and is never handed to the regexes below
#: (the longest RFC 822 form with a day name and a zone comment is under 50 characters)
MAX_DATE_CHARS = 100

_RELATIVE_UNITS = {
    "秒": timedelta(seconds=1),
    "分": timedelta(minutes=1),
    "分钟": timedelta(minutes=1),
    "小时": timedelta(hours=1),
    "个小时": timedelta(hours=1),
    "天": timedelta(days=1),
    "日": timedelta(days=1),
}
_DAY_WORDS = {"今天": 0, "昨天": 1, "前天": 2}

_HMS = r"(?P<H>\d{1,2})[:时](?P<M>\d{1,2})(?:[:分](?P<S>\d{1,2})秒?)?分?"
_RELATIVE_RE = re.compile(r"(?P<n>\d+)\s*(?P<unit>秒|分钟|分|个小时|小时|天|日)\s*前")
_DAY_WORD_RE = re.compile(r"(?P<word>今天|昨天|前天)\s*" + _HMS)
_CHINESE_RE = re.compile(r"(?:(?P<y>\d{4})\s*年\s*)?(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日(?:\s*" + _HMS + ")?")
_NUMERIC_RE = re.compile(
    r"(?P<y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"
    r"(?:(?:T|\s+)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<frac>\d+))?)?)?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_YEAR_MONTH_RE = re.compile(r"(?P<y>\d{4})(?:-(?P<m>\d{2}))?")
_MONTH_DAY_RE = re.compile(r"(?P<m>\d{1,2})-(?P<d>\d{1,2})\s+" + _HMS)
#: a zone token in an RFC 822 date: a numeric offset or a name from RFC 822 §5.1, as a whole word
_RFC822_ZONE_RE = re.compile(r"(?<![\w:])(?:[+-]\d{4}|UT|UTC|GMT|Z|[ECMP][SD]T)(?!\w)", re.IGNORECASE)
#: "CST" in a Chinese source is China Standard Time (Java's Date.toString on a server in China),
#: not the US Central time RFC 822 gives it, so it is read as a naive time in the source timezone
_AMBIGUOUS_ZONES = frozenset({"CST"})


def to_utc(value: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    """`value` as an aware UTC datetime, or None when it is not a date we can read."""
    # NFKC folds full-width digits, colons and spaces ("２０２２：０１") to ASCII
    text = " ".join(unicodedata.normalize("NFKC", value[:MAX_DATE_CHARS * 4]).split())
    if not text or len(text) > MAX_DATE_CHARS:
        return None
    local_now = now.astimezone(tz)
    for reader in (_read_relative, _read_chinese, _read_numeric, _read_month_day, _read_rfc822, _read_iso):
        try:
            found = reader(text, tz, local_now)
        except (ValueError, OverflowError):
            # a form matched but its fields are impossible (month 13, hour 25): not a date
            return None
        if found is not None:
            return found.astimezone(UTC)
    return None


def _read_relative(text: str, tz: ZoneInfo, local_now: datetime) -> datetime | None:
    if text == "刚刚":
        return local_now
    if match := _RELATIVE_RE.fullmatch(text):
        return local_now - int(match["n"]) * _RELATIVE_UNITS[match["unit"]]
    if match := _DAY_WORD_RE.fullmatch(text):
        day = local_now.date() - timedelta(days=_DAY_WORDS[match["word"]])
        return _wall_time(day, match, tz)
    return None


def _read_chinese(text: str, tz: ZoneInfo, local_now: datetime) -> datetime | None:
    match = _CHINESE_RE.fullmatch(text)
    if match is None:
        return None
    if match["y"] is None:
        return _month_day(match, tz, local_now)
    return _wall_time(date(int(match["y"]), int(match["m"]), int(match["d"])), match, tz)


def _read_numeric(text: str, tz: ZoneInfo, local_now: datetime) -> datetime | None:
    if match := _YEAR_MONTH_RE.fullmatch(text):
        # W3C-DTF reduced precision (https://www.w3.org/TR/NOTE-datetime): "1997" and "1997-07"
        return datetime(int(match["y"]), int(match["m"] or 1), 1, tzinfo=tz)
    match = _NUMERIC_RE.fullmatch(text)
    if match is None:
        return None
    micro = int((match["frac"] or "0")[:6].ljust(6, "0"))
    wall = datetime.combine(
        date(int(match["y"]), int(match["m"]), int(match["d"])),
        time(int(match["H"] or 0), int(match["M"] or 0), int(match["S"] or 0), micro),
    )
    return wall.replace(tzinfo=_numeric_zone(match["zone"]) or tz)


def _read_month_day(text: str, tz: ZoneInfo, local_now: datetime) -> datetime | None:
    match = _MONTH_DAY_RE.fullmatch(text)
    return None if match is None else _month_day(match, tz, local_now)


def _read_rfc822(text: str, tz: ZoneInfo, local_now: datetime) -> datetime | None:
    parts = parsedate_tz(text)
    if parts is None:
        return None
    year, month, day, hour, minute, second = parts[:6]
    wall = datetime(year, month, day, hour, minute, second)
    # parsedate_tz reports offset 0 both for "GMT" and for no zone at all, so look for the token
    zone = _RFC822_ZONE_RE.search(text)
    if zone is None or zone.group().upper() in _AMBIGUOUS_ZONES:
        return wall.replace(tzinfo=tz)
    return wall.replace(tzinfo=timezone(timedelta(seconds=parts[9] or 0)))


def _read_iso(text: str, tz: ZoneInfo, local_now: datetime) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def _month_day(match: re.Match[str], tz: ZoneInfo, local_now: datetime) -> datetime:
    found = _wall_time(date(local_now.year, int(match["m"]), int(match["d"])), match, tz)
    if found - local_now > MONTH_DAY_FUTURE_TOLERANCE:
        found = _wall_time(date(local_now.year - 1, int(match["m"]), int(match["d"])), match, tz)
    return found


def _wall_time(day: date, match: re.Match[str], tz: ZoneInfo) -> datetime:
    hour, minute, second = (int(match[g] or 0) for g in ("H", "M", "S"))
    return datetime.combine(day, time(hour, minute, second), tzinfo=tz)


def _numeric_zone(zone: str | None) -> tzinfo | None:
    if zone is None:
        return None
    if zone.upper() in ("Z", "UTC", "GMT"):
        return UTC
    digits = zone[1:].replace(":", "").ljust(4, "0")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return timezone(-offset if zone[0] == "-" else offset)
