"""`aggregator status` rows: state per source, errors with their stage, hints, table and JSON output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.config.load import CategoryConfig, Config, SourceConfig
from aggregator.models import ErrorInfo, SourceState, SourceStatus, StoryCounts
from aggregator.ops.status import display_width, format_status, status_rows

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
URL = "https://feeds.example.com/nantong.xml"
NEW_URL = "https://news.example.com/nantong.xml"


def _config(*sources: SourceConfig) -> Config:
    return Config(
        path=Path("feeds.toml"),
        categories={"nantongribao": CategoryConfig(title="南通日报新闻")},
        sources=sources,
    )


def _source(name: str = "nantong", url: str = URL, enabled: bool = True) -> SourceConfig:
    return SourceConfig(name=name, url=url, categories=("nantongribao",), enabled=enabled)


def _error(message: str = "fetch: HTTP 503 Service Unavailable", stage: str = "fetch") -> ErrorInfo:
    return ErrorInfo("FetchError", message, stage, NOW - timedelta(minutes=3))


POLLED = SourceState(
    "nantong",
    last_polled_at=NOW - timedelta(minutes=3),
    last_success_at=NOW - timedelta(minutes=3),
    next_poll_at=NOW + timedelta(minutes=12),
    last_status=200,
    config_url=URL,
)


@pytest.mark.parametrize(
    ("source", "state", "expected"),
    [
        (_source(), None, "new"),
        (_source(), POLLED, "ok"),
        (_source(), POLLED.replace(failures=2, last_error=_error()), "failing"),
        (_source(), POLLED.replace(retired_url=URL, failures=1, last_status=410), "retired"),
        (_source(url=NEW_URL), POLLED.replace(retired_url=URL, last_status=410), "ok"),
        (_source(enabled=False), POLLED.replace(retired_url=URL), "disabled"),
    ],
    ids=[
        "never-polled-is-new",
        "polled-fine-is-ok",
        "failures-make-failing",
        "gone-url-is-retired",
        "changed-url-revives-a-retired-source",
        "disabled-wins-over-everything",
    ],
)
def test_state_of_a_source(source: SourceConfig, state: SourceState | None, expected: SourceStatus) -> None:
    states = {} if state is None else {state.name: state}

    [row] = status_rows(_config(source), states, {}, NOW)

    assert row.state == expected


def test_row_carries_last_error_with_its_stage_and_counts() -> None:
    state = POLLED.replace(failures=3, last_error=_error("parse: not XML", "parse"), last_status=200)

    [row] = status_rows(_config(_source()), {"nantong": state}, {"nantong": 42}, NOW)

    assert (row.last_error, row.last_error_stage, row.last_error_at) == (
        "parse: not XML",
        "parse",
        NOW - timedelta(minutes=3),
    )
    assert (row.failures, row.items, row.last_http_status) == (3, 42, 200)
    assert row.last_success_at == NOW - timedelta(minutes=3)
    assert row.next_poll_at == NOW + timedelta(minutes=12)


def test_rows_follow_feeds_toml_order_and_ignore_sources_no_longer_configured() -> None:
    config = _config(_source("zhe"), _source("alpha"))
    states = {"removed-long-ago": SourceState("removed-long-ago")}

    rows = status_rows(config, states, {"removed-long-ago": 7}, NOW)

    assert [row.source for row in rows] == ["zhe", "alpha"]


def test_a_retired_or_disabled_source_has_no_next_poll() -> None:
    config = _config(_source("gone"), _source("off", enabled=False))
    states = {"gone": POLLED.replace(name="gone", retired_url=URL), "off": POLLED.replace(name="off")}

    rows = status_rows(config, states, {}, NOW)

    assert [row.next_poll_at for row in rows] == [None, None]
    assert rows[0].hint == "gone (HTTP 410): not polled until its url in feeds.toml changes"


def test_a_permanent_redirect_tells_ops_to_update_feeds_toml() -> None:
    state = POLLED.replace(moved_to=NEW_URL, moved_count=3)

    [row] = status_rows(_config(_source()), {"nantong": state}, {}, NOW)

    assert row.hint == f"moved permanently: update feeds.toml url to {NEW_URL}"


@pytest.mark.parametrize(
    "state",
    [
        POLLED.replace(moved_to=NEW_URL, config_url="https://old.example.com/feed"),
        POLLED.replace(moved_to=URL),
    ],
    ids=["redirect-of-an-older-config-url", "redirect-to-where-feeds-toml-already-points"],
)
def test_no_move_hint_when_it_does_not_apply_to_the_configured_url(state: SourceState) -> None:
    [row] = status_rows(_config(_source()), {"nantong": state}, {}, NOW)

    assert row.hint is None


def test_json_output_has_one_object_per_source_with_iso_times() -> None:
    state = POLLED.replace(failures=1, last_error=_error(), moved_to=NEW_URL, skipped_items={"url": 2, "clean": 1})
    rows = status_rows(
        _config(_source(), _source("南通日报", url=NEW_URL)), {"nantong": state}, {"nantong": 5}, NOW
    )

    data = json.loads(format_status(rows, as_json=True))

    assert data[0] == {
        "source": "nantong",
        "state": "failing",
        "url": URL,
        "last_success_at": "2026-11-24T05:57:00+00:00",
        "last_polled_at": "2026-11-24T05:57:00+00:00",
        "consecutive_failures": 1,
        "next_poll_at": "2026-11-24T06:12:00+00:00",
        "items": 5,
        "last_http_status": 200,
        "last_error": "fetch: HTTP 503 Service Unavailable",
        "last_error_stage": "fetch",
        "last_error_at": "2026-11-24T05:57:00+00:00",
        "hint": f"moved permanently: update feeds.toml url to {NEW_URL}",
        "stories": 0,
        "merged_items": 0,
        "skipped_items": 3,
        "skipped_reasons": {"clean": 1, "url": 2},
    }
    assert data[1]["source"] == "南通日报"
    assert (data[1]["skipped_items"], data[1]["skipped_reasons"]) == (0, {})
    assert data[1]["state"] == "new"
    assert data[1]["last_success_at"] is None


def test_rows_carry_the_story_counts_of_their_source() -> None:
    counts = {"nantong": StoryCounts(stories=3, merged_items=2, signed_items=5)}
    [row] = status_rows(_config(_source()), {"nantong": POLLED}, {"nantong": 5}, NOW, counts)

    assert (row.stories, row.merged_items) == (3, 2)
    assert json.loads(format_status([row], as_json=True))[0]["merged_items"] == 2


def test_table_shows_relative_times_and_hints_under_their_row() -> None:
    config = _config(_source(), _source("failing"), _source("fresh"))
    states = {
        "nantong": POLLED.replace(moved_to=NEW_URL),
        "failing": POLLED.replace(
            name="failing",
            failures=2,
            last_error=_error(),
            next_poll_at=NOW - timedelta(seconds=5),
            last_status=503,
        ),
    }

    lines = format_status(status_rows(config, states, {"nantong": 12}, NOW), as_json=False).splitlines()

    assert lines[0].split() == [
        "SOURCE",
        "STATE",
        "LAST",
        "SUCCESS",
        "FAILS",
        "NEXT",
        "POLL",
        "ITEMS",
        "HTTP",
        "LAST",
        "ERROR",
    ]
    assert lines[1].split() == ["nantong", "ok", "3m", "ago", "0", "in", "12m", "12", "200", "-"]
    assert lines[2] == f"  hint: moved permanently: update feeds.toml url to {NEW_URL}"
    assert lines[3].split()[:8] == ["failing", "failing", "3m", "ago", "2", "due", "0", "503"]
    assert lines[3].endswith("fetch: HTTP 503 Service Unavailable (3m ago)")
    assert lines[4].split() == ["fresh", "new", "never", "0", "-", "0", "-", "-"]


def test_table_columns_line_up_with_chinese_source_names() -> None:
    config = _config(_source("南通日报"), _source("nantong-daily"))

    lines = format_status(status_rows(config, {}, {}, NOW), as_json=False).splitlines()

    state_columns = {display_width(line[: line.index("new")]) for line in lines[1:]}
    assert state_columns == {display_width(lines[0][: lines[0].index("STATE")])}


def test_table_cuts_a_long_error_but_json_keeps_it() -> None:
    long_message = "fetch: " + "connection reset by peer " * 10
    state = POLLED.replace(failures=1, last_error=_error(long_message))
    rows = status_rows(_config(_source()), {"nantong": state}, {}, NOW)

    table = format_status(rows, as_json=False)

    assert "…" in table
    assert long_message not in table
    assert json.loads(format_status(rows, as_json=True))[0]["last_error"] == long_message


def test_an_error_message_without_its_stage_gets_it_prefixed_in_the_table() -> None:
    state = POLLED.replace(failures=1, last_error=_error("database is locked", "store"))

    table = format_status(status_rows(_config(_source()), {"nantong": state}, {}, NOW), as_json=False)

    assert "store: database is locked (3m ago)" in table


def test_empty_configuration_says_so() -> None:
    assert format_status([], as_json=False) == "no sources configured"
    assert format_status([], as_json=True) == "[]"
