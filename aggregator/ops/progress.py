"""Show the progress of a `poll --all`: a redrawn bar on a terminal, one plain line per source otherwise.

Plain lines keep cron mail and log collectors readable (no carriage returns or escape codes in them);
failures are always printed as whole lines, also above the bar, so none scrolls away unseen.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from aggregator.models import UpdateOutcome
from aggregator.ops.status import display_width

BAR_CELLS = 24
#: ANSI "erase entire line" (ECMA-48 EL with parameter 2), after a carriage return to column 0
_ERASE_LINE = "\r\x1b[2K"


def describe_outcome(outcome: UpdateOutcome) -> str:
    """One line for a poll: `name: new (3 new, 1 updated, 5 unchanged) 0.42s`."""
    label = outcome.status.replace("_", " ")
    if outcome.error is not None:
        detail = f": {outcome.error.message}"
    elif outcome.inserted or outcome.updated or outcome.unchanged:
        detail = f" ({outcome.inserted} new, {outcome.updated} updated, {outcome.unchanged} unchanged)"
    else:
        detail = ""
    return f"{outcome.source_name}: {label}{detail} {outcome.duration_seconds:.2f}s"


class Progress:
    """Progress over `total` polls (None: unknown) on `stream`: `advance` per outcome, then `close`."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self._total = total
        self._done = 0
        self._failed = 0
        self._stream = stream
        self._is_tty = stream.isatty()
        self._bar_shown = False

    def advance(self, outcome: UpdateOutcome) -> None:
        self._done += 1
        line = describe_outcome(outcome)
        if outcome.error is not None:
            self._failed += 1
        if not self._is_tty:
            self._stream.write(f"[{self._count()}] {line}\n")
        elif outcome.error is not None:
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
