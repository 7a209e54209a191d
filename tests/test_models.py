"""models: the records are immutable, and ErrorInfo records a failure as data."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from aggregator.errors import FetchError
from aggregator.models import ErrorInfo, RawItem, SourceState

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def test_error_info_records_type_message_stage_time_and_traceback() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as cause:
            raise FetchError("nantong", "http://x/", "fetch: x refused the connection") from cause
    except FetchError as exc:
        info = ErrorInfo.from_exception(exc, exc.stage, NOW)
    assert (info.type_name, info.stage, info.at) == ("FetchError", "fetch", NOW)
    assert info.message == "fetch: x refused the connection: ConnectionRefusedError: [Errno 111] Connection refused"
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in info.traceback_str
    assert "FetchError" in info.traceback_str


def test_source_state_replace_returns_a_changed_copy() -> None:
    state = SourceState(name="s", etag='"1"', failures=2)
    changed = state.replace(failures=0, etag=None)
    assert (changed.name, changed.failures, changed.etag) == ("s", 0, None)
    assert (state.failures, state.etag) == (2, '"1"')


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RawItem(title="a").title = "b"  # type: ignore[misc]
