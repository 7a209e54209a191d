"""Show the progress of a `poll --all` or an import: a redrawn bar on a terminal, one plain line per step otherwise.

Plain lines keep cron mail and log collectors readable (no carriage returns or escape codes in them);
failures are always printed as whole lines, also above the bar, so none scrolls away unseen.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TextIO

from aggregator.models import UpdateOutcome
from aggregator.ops.status import display_width

BAR_CELLS = 24
#: ANSI "erase entire line" (ECMA-48 EL with parameter 2), after a carriage return to column 0
_ERASE_LINE = "\r\x1b[2K"


@dataclass(frozen=True, slots=True)
class ProgressStep:
    """One finished unit of work as the display shows it: a polled source, an imported batch."""

    name: str
    #: what the step came to, as `poll` reports it ("new", "not_modified", "error", ...)
    status: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: the failure's message; a step with one counts as failed
    error: str | None = None
    duration_seconds: float = 0.0

    @classmethod
    def of_outcome(cls, outcome: UpdateOutcome) -> ProgressStep:
        return cls(
            outcome.source_name, outcome.status, outcome.inserted, outcome.updated, outcome.unchanged,
            outcome.error.message if outcome.error else None, outcome.duration_seconds,
        )


def describe_outcome(outcome: UpdateOutcome) -> str:
    """One line for a poll: `name: new (3 new, 1 updated, 5 unchanged) 0.42s`."""
    return describe_step(ProgressStep.of_outcome(outcome))


def describe_step(step: ProgressStep) -> str:
    """One line for a step: `name: new (3 new, 1 updated, 5 unchanged) 0.42s`, or `name: error: message 1.00s`."""
    label = step.status.replace("_", " ")
    if step.error is not None:
        detail = f": {step.error}"
    elif step.inserted or step.updated or step.unchanged:
        detail = f" ({step.inserted} new, {step.updated} updated, {step.unchanged} unchanged)"
    else:
        detail = ""
    return f"{step.name}: {label}{detail} {step.duration_seconds:.2f}s"


class Progress:
    """Progress over `total` steps (None: unknown) on `stream`: `advance` per step, then `close`."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self._total = total
        self._done = 0
        self._failed = 0
        self._stream = stream
        self._is_tty = stream.isatty()
        self._bar_shown = False

    def on_outcome(self, outcome: UpdateOutcome) -> None:
        """A source polled (Updater's `on_outcome` callback)."""
        self.advance(ProgressStep.of_outcome(outcome))

    def advance(self, step: ProgressStep) -> None:
        self._done += 1
        line = describe_step(step)
        if step.error is not None:
            self._failed += 1
        if not self._is_tty:
            self._stream.write(f"[{self._count()}] {line}\n")
        elif step.error is not None:
            self._stream.write(f"{_ERASE_LINE}{line}\n{self._render_bar(line)}")
        else:
            self._stream.write(_ERASE_LINE + self._render_bar(line))
        self._bar_shown = self._is_tty
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line so whatever is printed next starts on a fresh one."""
        if self._bar_shown:
            self._stream.write("\n")
            self._stream.flush()
            self._bar_shown = False

    def _count(self) -> str:
        if self._total is None:
            return str(self._done)
        return f"{self._done:>{len(str(self._total))}}/{self._total}"

    def _render_bar(self, last_line: str) -> str:
        failed = f", {self._failed} failed" if self._failed else ""
        if self._total is None:
            bar = f"{self._done} done{failed}  {last_line}"
        else:
            filled = min(BAR_CELLS * self._done // self._total, BAR_CELLS) if self._total else BAR_CELLS
            bar = f"[{'#' * filled}{'.' * (BAR_CELLS - filled)}] {self._count()}{failed}  {last_line}"
        return _fit(bar, shutil.get_terminal_size().columns)


def _fit(text: str, columns: int) -> str:
    # A line as wide as the terminal wraps, and "\r" would then redraw only its last part.
    if display_width(text) < columns:
        return text
    kept, width = [], 0
    for char in text:
        width += display_width(char)
        if width >= columns - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"
