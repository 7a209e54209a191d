"""Table tests for parse/times.py: every supported form, naive times in the source timezone."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.times import to_utc

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 2026-11-24 14:00 in Shanghai
NOW = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


CASES = [
    # RFC 822 / RFC 5322
    ("Mon, 24 Jan 2022 00:48:09 +0800", utc(2022, 1, 23, 16, 48, 9), "rfc822_with_offset"),
    ("Mon, 24 Jan 2022 00:48:09 GMT", utc(2022, 1, 24, 0, 48, 9), "rfc822_gmt"),
    ("Mon, 24 Jan 2022 00:48:09 -0000", utc(2022, 1, 24, 0, 48, 9), "rfc822_minus_zero_is_utc"),
    ("Mon, 24 Jan 2022 00:48:09 EST", utc(2022, 1, 24, 5, 48, 9), "rfc822_named_us_zone"),
    ("Mon, 24 Jan 2022 00:48:09", utc(2022, 1, 23, 16, 48, 9), "rfc822_without_zone_is_local"),
    ("24 Jan 2022 00:48 CCT", utc(2022, 1, 23, 16, 48), "rfc822_unknown_zone_is_local"),
    ("Mon, 24 Jan 2022 00:48:09 CST", utc(2022, 1, 23, 16, 48, 9), "rfc822_cst_is_china_standard_time"),
    ("Mon Jan 24 00:48:09 CST 2022", utc(2022, 1, 23, 16, 48, 9), "java_date_tostring_cst"),
    ("Thu, 01 Jan 04 19:48:21 GMT", utc(2004, 1, 1, 19, 48, 21), "rfc822_two_digit_year"),
    # ISO 8601 / W3C-DTF
    ("2022-01-24T00:48:09+08:00", utc(2022, 1, 23, 16, 48, 9), "iso_with_offset"),
    ("2022-01-24T00:48:09Z", utc(2022, 1, 24, 0, 48, 9), "iso_zulu"),
    ("2022-01-24T00:48:09.123456789-05:00", utc(2022, 1, 24, 5, 48, 9, 123456), "iso_fraction_truncated"),
    ("2022-01-24T00:48:09+0800", utc(2022, 1, 23, 16, 48, 9), "iso_offset_without_colon"),
    ("2022-01-24T00:48+08", utc(2022, 1, 23, 16, 48), "iso_hour_only_offset"),
    ("2022-01-24T00:48:09", utc(2022, 1, 23, 16, 48, 9), "iso_naive_is_local"),
    ("2022-01-24", utc(2022, 1, 23, 16, 0), "w3c_date_only"),
    ("2022-01", utc(2021, 12, 31, 16, 0), "w3c_year_month"),
    ("2022", utc(2021, 12, 31, 16, 0), "w3c_year"),
    ("20220124T004809Z", utc(2022, 1, 24, 0, 48, 9), "iso_basic_format"),
    # what Chinese CMSes and APIs write
    ("2022-01-24 00:48:09", utc(2022, 1, 23, 16, 48, 9), "space_separated_naive"),
    ("2022-1-4 8:05", utc(2022, 1, 4, 0, 5), "unpadded_fields"),
    ("2022/01/24 00:48", utc(2022, 1, 23, 16, 48), "slash_separated"),
    ("2022.01.24", utc(2022, 1, 23, 16, 0), "dot_separated"),
    ("2022-01-24 00:48:09 UTC", utc(2022, 1, 24, 0, 48, 9), "space_separated_utc"),
    ("2022年01月24日 00:48", utc(2022, 1, 23, 16, 48), "chinese_date_and_time"),
    ("2022年1月24日", utc(2022, 1, 23, 16, 0), "chinese_date_unpadded"),
    ("2022年01月24日00:48:09", utc(2022, 1, 23, 16, 48, 9), "chinese_date_time_without_space"),
    ("2022年01月24日 08时30分", utc(2022, 1, 24, 0, 30), "chinese_hour_minute_characters"),
    ("２０２２年０１月２４日　００：４８", utc(2022, 1, 23, 16, 48), "full_width_digits_and_space"),
    ("  2022-01-24 00:48:09\n", utc(2022, 1, 23, 16, 48, 9), "surrounding_whitespace"),
    # without a year: this year in Shanghai, or last year when that would be > 1 day ahead
    ("01-24 00:48", utc(2026, 1, 23, 16, 48), "month_day_this_year"),
    ("11-25 13:00", utc(2026, 11, 25, 5, 0), "month_day_tomorrow_is_still_this_year"),
    ("12-31 23:50", utc(2025, 12, 31, 15, 50), "month_day_in_future_is_last_year"),
    ("1月24日 00:48", utc(2026, 1, 23, 16, 48), "chinese_month_day"),
    # relative to now (14:00 in Shanghai)
    ("刚刚", NOW, "just_now"),
    ("30秒前", utc(2026, 11, 24, 5, 59, 30), "seconds_ago"),
    ("5分钟前", utc(2026, 11, 24, 5, 55), "minutes_ago"),
    ("3小时前", utc(2026, 11, 24, 3, 0), "hours_ago"),
    ("3 个小时前", utc(2026, 11, 24, 3, 0), "hours_ago_with_measure_word"),
    ("2天前", utc(2026, 11, 22, 6, 0), "days_ago"),
    ("今天 09:15", utc(2026, 11, 24, 1, 15), "today_at"),
    ("昨天 12:30", utc(2026, 11, 23, 4, 30), "yesterday_at"),
    ("前天 23:59:59", utc(2026, 11, 22, 15, 59, 59), "day_before_yesterday_at"),
]

UNREADABLE = [
    ("", "empty"),
    ("   ", "blank"),
    ("sometime last week", "words"),
    ("2022-13-01", "month_13"),
    ("2022-02-30 10:00", "february_30"),
    ("2022年01月24日 25:00", "hour_25"),
    ("2022-01-24T00:48:09+25:00", "offset_beyond_a_day"),
    ("02-29 10:00", "leap_day_in_a_common_year"),
    ("5分钟后", "future_relative"),
    ("NW202201242257831752", "an_info_code"),
]


@pytest.mark.parametrize(("value", "expected"), [c[:2] for c in CASES], ids=[c[2] for c in CASES])
def test_supported_form_is_read_as_utc(value: str, expected: datetime) -> None:
    found = to_utc(value, SHANGHAI, NOW)
    assert found == expected
    assert found is not None and found.tzinfo is UTC


@pytest.mark.parametrize("value", [c[0] for c in UNREADABLE], ids=[c[1] for c in UNREADABLE])
def test_unreadable_value_gives_none_not_a_guess(value: str) -> None:
    assert to_utc(value, SHANGHAI, NOW) is None


def test_naive_time_follows_the_source_timezone_not_utc() -> None:
    assert to_utc("2022-01-24 00:48:09", ZoneInfo("Europe/Berlin"), NOW) == utc(2022, 1, 23, 23, 48, 9)
    assert to_utc("2022-01-24 00:48:09", ZoneInfo("UTC"), NOW) == utc(2022, 1, 24, 0, 48, 9)


def test_cst_in_an_american_source_is_its_own_central_time() -> None:
    chicago = ZoneInfo("America/Chicago")
    assert to_utc("Mon, 24 Jan 2022 00:48:09 CST", chicago, NOW) == utc(2022, 1, 24, 6, 48, 9)


def test_relative_forms_depend_only_on_the_now_passed_in() -> None:
    other_now = datetime(2030, 6, 1, 0, 0, tzinfo=UTC)
    assert to_utc("5分钟前", SHANGHAI, other_now) == utc(2030, 5, 31, 23, 55)
    # 2030-06-01 00:00 UTC is 08:00 on 1 June in Shanghai, so "yesterday" is 31 May there
    assert to_utc("昨天 12:30", SHANGHAI, other_now) == utc(2030, 5, 31, 4, 30)


@given(
    value=st.one_of(
        st.text(max_size=60),
        st.text(alphabet="0123456789-/.:年月日时分秒前天小时刚昨今 TZ+GMTCSTMonJan,", max_size=40),
    )
)
def test_any_string_gives_an_aware_utc_datetime_or_none(value: str) -> None:
    found = to_utc(value, SHANGHAI, NOW)
    assert found is None or found.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["1" * 100_000, "1 " * 50_000 + "秒前", "2022-01-01" + " 1" * 50_000, "Mon, " * 20_000],
    ids=["digit-run", "digits-and-spaces", "date-then-numbers", "day-names"],
)
def test_a_100_kb_text_is_no_date_and_is_refused_in_linear_time(text: str) -> None:
    started = time.monotonic()
    assert to_utc(text, ZoneInfo("Asia/Shanghai"), datetime(2026, 11, 24, tzinfo=UTC)) is None
    assert time.monotonic() - started < 1.0  # generous: a check of complexity, not a benchmark
