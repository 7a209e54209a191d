"""Progress of `poll --all`: plain lines when not on a terminal, a redrawn bar when on one."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from aggregator.models import ErrorInfo, UpdateOutcome
from aggregator.ops.progress import Progress, describe_outcome
from aggregator.ops.status import display_width

ERROR = ErrorInfo(
    "FetchError", "fetch: HTTP 503 Service Unavailable", "fetch", datetime(2026, 11, 24, tzinfo=UTC)
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (
            UpdateOutcome("nantong", "new", inserted=3, updated=1, unchanged=5, duration_seconds=0.421),
            "nantong: new (3 new, 1 updated, 5 unchanged) 0.42s",
        ),
        (UpdateOutcome("nantong", "not_modified", duration_seconds=0.05), "nantong: not modified 0.05s"),
        (
            UpdateOutcome("nantong", "error", error=ERROR, duration_seconds=1.0),
            "nantong: error: fetch: HTTP 503 Service Unavailable 1.00s",
        ),
        (
            UpdateOutcome(
                "nantong", "retired", error=ErrorInfo("FetchError", "fetch: HTTP 410 Gone", "fetch", ERROR.at)
            ),
            "nantong: retired: fetch: HTTP 410 Gone 0.00s",
        ),
    ],
    ids=["counts", "not-modified", "error-with-message", "retired-with-message"],
)
def test_describe_outcome(outcome: UpdateOutcome, expected: str) -> None:
    assert describe_outcome(outcome) == expected


def test_plain_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(total=10, stream=stream)

    progress.on_outcome(UpdateOutcome("a", "new", inserted=2))
    progress.on_outcome(UpdateOutcome("b", "error", error=ERROR))
    progress.close()

    assert stream.getvalue() == (
        "[ 1/10] a: new (2 new, 0 updated, 0 unchanged) 0.00s\n"
        "[ 2/10] b: error: fetch: HTTP 503 Service Unavailable 0.00s\n"
    )


def test_unknown_total_counts_up() -> None:
    stream = io.StringIO()
    progress = Progress(total=None, stream=stream)

    progress.on_outcome(UpdateOutcome("a", "unchanged", unchanged=4))

    assert stream.getvalue() == "[1] a: unchanged (0 new, 0 updated, 4 unchanged) 0.00s\n"


def test_terminal_gets_one_redrawn_bar_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    stream = _Terminal()
    progress = Progress(total=4, stream=stream)

    progress.on_outcome(UpdateOutcome("a", "new", inserted=1))
    progress.on_outcome(UpdateOutcome("b", "not_modified"))
    progress.close()

    output = stream.getvalue()
    assert output.count("\n") == 1 and output.endswith("\n")
    last_frame = output.rstrip("\n").split("\r\x1b[2K")[-1]
    assert last_frame == f"[{'#' * 12}{'.' * 12}] 2/4  b: not modified 0.00s"


def test_terminal_prints_failures_as_whole_lines_above_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    stream = _Terminal()
    progress = Progress(total=2, stream=stream)

    progress.on_outcome(UpdateOutcome("b", "error", error=ERROR))
    progress.on_outcome(UpdateOutcome("a", "unchanged"))
    progress.close()

    lines = stream.getvalue().split("\n")
    assert lines[0] == "\r\x1b[2Kb: error: fetch: HTTP 503 Service Unavailable 0.00s"
    assert lines[1].split("\r\x1b[2K")[-1].startswith(f"[{'#' * 24}] 2/2, 1 failed  a: unchanged")


def test_bar_never_wraps_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    stream = _Terminal()
    progress = Progress(total=3, stream=stream)

    progress.on_outcome(UpdateOutcome("南通日报新闻-很长的来源名字-很长的来源名字", "new", inserted=1))

    frame = stream.getvalue().split("\r\x1b[2K")[-1]
    assert frame.endswith("…")
    # wide characters count twice: the frame must stay under 40 terminal columns
    assert display_width(frame) < 40


def test_close_without_any_outcome_prints_nothing_on_a_terminal() -> None:
    stream = _Terminal()

    Progress(total=0, stream=stream).close()

    assert stream.getvalue() == ""
