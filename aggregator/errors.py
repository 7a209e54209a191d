"""The exception hierarchy: one root, foreign exceptions converted once at the edge.

`str()` of every error reads "message: CauseType: cause" so a log line or `status` row is
enough to act on (after reader's _FancyExceptionBase). Bugs are never wrapped.

Every error pickles round-trip, whatever its constructor takes: parse and clean run in worker
processes (aggregator/workers.py), and an error that cannot be rebuilt in the parent would break the
pool for every other source of the pass. The cause itself (often a foreign, unpicklable exception)
travels as its type name and text, so `str()` reads the same on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)


class AggregatorError(Exception):
    """Root of every error this program raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        cause = describe_cause(self)
        if cause is None or cause[1] in self.message:  # the message already tells the cause
            return self.message
        return f"{self.message}: {cause[0]}: {cause[1]}"

    def __reduce__(self) -> tuple[Any, ...]:
        return reduce_error(self)


def describe_cause(error: BaseException) -> tuple[str, str] | None:
    """(type name, text) of the error's cause, also after the error crossed a process boundary."""
    cause = error.__cause__
    if cause is not None:
        return type(cause).__name__, str(cause)
    described: tuple[str, str] | None = getattr(error, "_cause_described", None)
    return described


def reduce_error(error: BaseException) -> tuple[Any, ...]:
    """`__reduce__` for exceptions whose `__init__` takes other arguments than `args`: rebuilt from
    their attributes without calling `__init__` (pickle's default calls `cls(*args)`)."""
    return _rebuild_error, (type(error), error.args, dict(vars(error)), describe_cause(error))


def _rebuild_error(
    cls: type[E], args: tuple[Any, ...], state: dict[str, Any], cause: tuple[str, str] | None
) -> E:
    error = cls.__new__(cls, *args)
    error.args = args
    vars(error).update(state)
    if cause is not None:
        error._cause_described = cause  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in feeds.toml, located by file, line and key."""

    path: str
    line: int | None
    key: str
    message: str
    #: 1-based column, known for TOML syntax errors only
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        if self.line is not None and self.column is not None:
            where = f"{where}:{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(AggregatorError):
    """feeds.toml is unreadable or invalid; fatal at start (CLI exit 2). Holds every problem."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        # each problem already says what went wrong; a cause suffix would only repeat it on the last line
        return self.message


class SourceError(AggregatorError):
    """One source failed this poll: recorded, backed off, never stops the run."""

    stage = "update"

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source


class FetchError(SourceError):
    """Network failure, timeout, HTTP status >= 400, body over the cap, refused address."""

    stage = "fetch"

    def __init__(self, source: str, url: str, message: str, status: int | None = None,
                 retry_after_seconds: float | None = None) -> None:
        super().__init__(source, message)
        self.url = url
        self.status = status
        #: the server's Retry-After (429/503), already converted to seconds
        self.retry_after_seconds = retry_after_seconds


class BlockedAddressError(FetchError):
    """The source's host resolves to a private, loopback or link-local address."""


class ParseError(SourceError):
    """Malformed beyond reading, entity bomb, unknown format, undecodable charset."""

    stage = "parse"

    def __init__(self, source: str, url: str, message: str) -> None:
        super().__init__(source, message)
        self.url = url


class WorkerError(SourceError):
    """The worker process parsing or cleaning the source's document died or overran its time budget."""

    stage = "parse"


class ItemError(AggregatorError):
    """One item is skipped (e.g. no article_id derivable); the rest of the source goes on."""

    def __init__(self, source: str, guid: str | None, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.guid = guid


class StorageError(AggregatorError):
    """The storage environment failed (locked, disk full, connection lost); bugs are not wrapped."""


class StoreLockedError(StorageError):
    """Another process holds the store's writer lock."""


class PublishError(AggregatorError):
    """A category feed could not be rendered or written."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


class PublishFailures(PublishError):
    """Some feeds of a publish pass failed, each on its own; the others were written. They stay owed."""

    def __init__(self, failed: Sequence[str], first_error: str) -> None:
        names = ", ".join(failed)
        super().__init__(names, f"{first_error} (failed, published again later: {names})")
        self.failed = tuple(failed)
