"""`aggregator status`: one row per configured source from its stored state, as a table or JSON.

Pure: the caller reads the states and item counts from storage and passes `now`.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aggregator.config.load import Config, SourceConfig
from aggregator.models import SourceState, SourceStatus, StoryCounts
from aggregator.schedule import is_retired

if TYPE_CHECKING:
    from aggregator.cluster.workers import WorkerRow

#: a last error longer than this is cut in the table (JSON keeps all of it)
ERROR_COLUMN_CHARS = 70
_HEADERS = ("SOURCE", "STATE", "LAST SUCCESS", "FAILS", "NEXT POLL", "ITEMS", "HTTP", "LAST ERROR")


@dataclass(frozen=True, slots=True)
class StatusRow:
    """What ops need to know about one source."""

    source: str
    state: SourceStatus
    url: str
    last_success_at: datetime | None
    last_polled_at: datetime | None
    #: consecutive failed polls (0 after a success)
    failures: int
    #: None when the source is not scheduled (disabled, retired) or never polled
    next_poll_at: datetime | None
    items: int
    last_http_status: int | None
    last_error: str | None
    #: the stage that failed ("fetch", "parse", ...), so the row says where to look
    last_error_stage: str | None
    last_error_at: datetime | None
    #: what ops should do, e.g. update a moved URL in feeds.toml
    hint: str | None
    #: items the last successful poll skipped, by reason code ("identity", "url", "detail", "clean", "storage")
    skipped_items: Mapping[str, int]
    #: the `now` the row was made at, for relative times in the table
    as_of: datetime
    #: stories of two or more items that hold an item of this source (issue 14)
    stories: int = 0
    #: items of this source that joined an earlier item's story
    merged_items: int = 0


def status_rows(
    config: Config, states: Mapping[str, SourceState], items_per_source: Mapping[str, int], now: datetime,
    stories_per_source: Mapping[str, StoryCounts] | None = None,
) -> list[StatusRow]:
    """One row per source of the configuration, in feeds.toml order."""
    stories = stories_per_source or {}
    rows = []
    for source in config.sources:
        row = _make_row(source, states.get(source.name), items_per_source.get(source.name, 0), now)
        counts = stories.get(source.name)
        if counts is not None:
            row = dataclasses.replace(row, stories=counts.stories, merged_items=counts.merged_items)
        rows.append(row)
    return rows


def _make_row(source: SourceConfig, state: SourceState | None, items: int, now: datetime) -> StatusRow:
    state = state or SourceState(name=source.name)
    status = _classify(source, state)
    error = state.last_error
    return StatusRow(
        source=source.name,
        state=status,
        url=source.url,
        last_success_at=state.last_success_at,
        last_polled_at=state.last_polled_at,
        failures=state.failures,
        next_poll_at=state.next_poll_at if status in ("ok", "failing") else None,
        items=items,
        last_http_status=state.last_status,
        last_error=error.message if error else None,
        last_error_stage=error.stage if error else None,
        last_error_at=error.at if error else None,
        hint=_hint(source, state, status),
        skipped_items=dict(state.skipped_items),
        as_of=now,
    )


def _classify(source: SourceConfig, state: SourceState) -> SourceStatus:
    if not source.enabled:
        return "disabled"
    if is_retired(state.retired_url, source.url):
        return "retired"
    if state.failures > 0:
        return "failing"
    if state.last_polled_at is None:
        return "new"
    return "ok"


def _hint(source: SourceConfig, state: SourceState, status: SourceStatus) -> str | None:
    if status == "retired":
        return "gone (HTTP 410): not polled until its url in feeds.toml changes"
    # A redirect remembered for an older config URL says nothing about the current one.
    belongs_to_url = state.config_url is None or state.config_url == source.url
    if state.moved_to and state.moved_to != source.url and belongs_to_url:
        return f"moved permanently: update feeds.toml url to {state.moved_to}"
    return None


def format_status(rows: Sequence[StatusRow], as_json: bool) -> str:
    """The rows as an aligned table for people, or as JSON (ISO 8601 UTC times) for scripts."""
    if as_json:
        return json.dumps([_row_json(row) for row in rows], ensure_ascii=False, indent=2)
    return _format_table(rows)


def _row_json(row: StatusRow) -> dict[str, object]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "source": row.source,
        "state": row.state,
        "url": row.url,
        "last_success_at": iso(row.last_success_at),
        "last_polled_at": iso(row.last_polled_at),
        "consecutive_failures": row.failures,
        "next_poll_at": iso(row.next_poll_at),
        "items": row.items,
        "last_http_status": row.last_http_status,
        "last_error": row.last_error,
        "last_error_stage": row.last_error_stage,
        "last_error_at": iso(row.last_error_at),
        "hint": row.hint,
        "stories": row.stories,
        "merged_items": row.merged_items,
        "skipped_items": sum(row.skipped_items.values()),
        "skipped_reasons": dict(sorted(row.skipped_items.items())),
    }


def _format_table(rows: Sequence[StatusRow]) -> str:
    if not rows:
        return "no sources configured"
    cells = [_HEADERS, *(_row_cells(row) for row in rows)]
    widths = [max(display_width(line[i]) for line in cells) for i in range(len(_HEADERS))]
    lines: list[str] = []
    for index, line in enumerate(cells):
        lines.append("  ".join(_pad(cell, width) for cell, width in zip(line, widths)).rstrip())
        hint = rows[index - 1].hint if index > 0 else None
        if hint:
            lines.append(f"  hint: {hint}")
    return "\n".join(lines)


def _row_cells(row: StatusRow) -> tuple[str, ...]:
    return (
        row.source,
        row.state,
        _format_relative(row.last_success_at, row.as_of) if row.last_success_at else "never",
        str(row.failures),
        _next_poll_cell(row),
        str(row.items),
        str(row.last_http_status) if row.last_http_status is not None else "-",
        _error_cell(row),
    )


def _next_poll_cell(row: StatusRow) -> str:
    if row.next_poll_at is None:
        return "-"
    if row.next_poll_at <= row.as_of:
        return "due"
    return _format_relative(row.next_poll_at, row.as_of)


def _error_cell(row: StatusRow) -> str:
    """The last error on one line, prefixed with its stage unless the message starts with it, cut to fit."""
    if row.last_error is None:
        return "-"
    error = row.last_error
    if not error.startswith(f"{row.last_error_stage}:"):
        error = f"{row.last_error_stage}: {error}"
    error = " ".join(error.split())
    if len(error) > ERROR_COLUMN_CHARS:
        error = error[: ERROR_COLUMN_CHARS - 1] + "…"
    if row.last_error_at is not None:
        error = f"{error} ({_format_relative(row.last_error_at, row.as_of)})"
    return error


def _format_relative(moment: datetime, now: datetime) -> str:
    """ "3m ago" / "in 12m": ops read ages faster than timestamps."""
    delta = moment - now
    span = _format_span(abs(delta))
    return f"in {span}" if delta > timedelta(0) else f"{span} ago"


def _format_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit_seconds, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= unit_seconds:
            return f"{seconds // unit_seconds}{unit}"
    return f"{seconds}s"


def display_width(text: str) -> int:
    """Terminal columns of `text`: Chinese characters take two (Unicode UAX #11 wide and fullwidth)."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def format_workers(workers: Sequence[WorkerRow], now: datetime) -> str:
    """The processes of a PostgreSQL store: id, host, role, last heartbeat, sources held right now."""
    if not workers:
        return "\nno workers registered"
    headers = ("worker", "host", "role", "heartbeat", "sources held")
    cells = [headers, *((w.id, w.host, w.role, _format_relative(w.heartbeat_at, now), str(w.sources_held))
                        for w in workers)]
    widths = [max(display_width(line[i]) for line in cells) for i in range(len(headers))]
    lines = ["  ".join(_pad(cell, width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    return "\n" + "\n".join(lines)
