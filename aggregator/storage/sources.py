"""Per-source state queries: validators, next poll, failures, last error, redirects. No business logic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from aggregator.models import ErrorInfo, SourceState
from aggregator.storage.schema import sources, upsert

_STATE_COLUMNS = (
    "etag",
    "last_modified",
    "next_poll_at",
    "failures",
    "last_error",
    "last_success_at",
    "last_polled_at",
    "last_status",
    "moved_to",
    "moved_count",
    "retired_url",
    "config_url",
    "skipped_items",
)


def select_source_states(connection: Connection) -> dict[str, SourceState]:
    rows = connection.execute(select(sources).order_by(sources.c.name)).mappings()
    return {row["name"]: _state_from_row(row) for row in rows}


def select_source_state(connection: Connection, name: str) -> SourceState | None:
    row = connection.execute(select(sources).where(sources.c.name == name)).mappings().first()
    return None if row is None else _state_from_row(row)


def write_source_state(connection: Connection, state: SourceState) -> None:
    """Insert or replace every field of the source's state."""
    write_source_states(connection, [state])


def write_source_states(connection: Connection, states: Sequence[SourceState]) -> None:
    """Insert or replace every field of each state: one statement, executed for all rows at once."""
    if states:
        connection.execute(upsert(connection, sources, ["name"], _STATE_COLUMNS), [_state_row(s) for s in states])


def _state_row(state: SourceState) -> dict[str, Any]:
    values = {name: getattr(state, name) for name in _STATE_COLUMNS}
    values["last_error"] = None if state.last_error is None else _error_to_json(state.last_error)
    values["skipped_items"] = dict(state.skipped_items) or None
    return {"name": state.name, **values}


def _state_from_row(row: Any) -> SourceState:
    fields = {name: row[name] for name in _STATE_COLUMNS}
    fields["last_error"] = None if row["last_error"] is None else _error_from_json(row["last_error"])
    fields["skipped_items"] = dict(row["skipped_items"] or {})
    return SourceState(name=row["name"], **fields)


def _error_to_json(error: ErrorInfo) -> dict[str, str]:
    if error.at.tzinfo is None:
        raise ValueError(f"store: naive ErrorInfo.at {error.at!r}; every datetime must be aware")
    return {
        "type_name": error.type_name,
        "message": error.message,
        "stage": error.stage,
        "at": error.at.astimezone(UTC).isoformat(),
        "traceback_str": error.traceback_str,
    }


def _error_from_json(data: dict[str, str]) -> ErrorInfo:
    return ErrorInfo(
        type_name=data["type_name"],
        message=data["message"],
        stage=data["stage"],
        at=datetime.fromisoformat(data["at"]),
        traceback_str=data.get("traceback_str", ""),
    )
