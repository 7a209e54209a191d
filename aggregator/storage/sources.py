"""Per-source state queries: validators, next poll, failures, last error, redirects. No business logic.

The row mapping (STATE_COLUMNS, state_row, state_from_row) is shared with lite.py, which runs the same
queries through sqlite3 alone: SQLAlchemy is imported by the queries here, not by this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aggregator.models import ErrorInfo, SourceState

if TYPE_CHECKING:
    from sqlalchemy import Connection

#: the columns of a SourceState besides its name, the key
STATE_COLUMNS = (
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
    from sqlalchemy import select

    from aggregator.storage.schema import sources

    rows = connection.execute(select(sources).order_by(sources.c.name)).mappings()
    return {row["name"]: state_from_row(row) for row in rows}


def select_source_state(connection: Connection, name: str) -> SourceState | None:
    from sqlalchemy import select

    from aggregator.storage.schema import sources

    row = connection.execute(select(sources).where(sources.c.name == name)).mappings().first()
    return None if row is None else state_from_row(row)


def write_source_state(connection: Connection, state: SourceState) -> None:
    """Insert or replace every field of the source's state."""
    write_source_states(connection, [state])


def write_source_states(connection: Connection, states: Sequence[SourceState]) -> None:
    """Insert or replace every field of each state: one statement, executed for all rows at once."""
    from aggregator.storage.schema import sources, upsert

    if states:
        connection.execute(upsert(connection, sources, ["name"], STATE_COLUMNS), [state_row(s) for s in states])


def state_row(state: SourceState) -> dict[str, Any]:
    """The row of a state: Python values (aware datetimes, dicts for the JSON columns)."""
    values = {name: getattr(state, name) for name in STATE_COLUMNS}
    values["last_error"] = None if state.last_error is None else _error_to_json(state.last_error)
    values["skipped_items"] = dict(state.skipped_items) or None
    return {"name": state.name, **values}


def state_from_row(row: Any) -> SourceState:
    """A state from a row mapping of Python values, as state_row makes them."""
    fields = {name: row[name] for name in STATE_COLUMNS}
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
