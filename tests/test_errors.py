"""errors: what str() of each error says (it is what `status`, logs and the CLI print)."""

from __future__ import annotations

import pytest

from aggregator.errors import (
    AggregatorError,
    ConfigError,
    ConfigProblem,
    FetchError,
    ParseError,
    SourceError,
    StorageError,
)


def _raised_from(error: AggregatorError, cause: BaseException) -> AggregatorError:
    try:
        raise error from cause
    except AggregatorError as caught:
        return caught


def test_error_without_a_cause_reads_as_its_message() -> None:
    assert str(StorageError("store: could not save the poll of source a")) == "store: could not save the poll of source a"


def test_error_with_a_cause_names_the_cause_type_and_text() -> None:
    error = _raised_from(StorageError("store: could not read source states"), OSError("disk I/O error"))
    assert str(error) == "store: could not read source states: OSError: disk I/O error"


def test_cause_already_in_the_message_is_not_repeated() -> None:
    error = _raised_from(ParseError("s", "http://x/", "parse: cannot decode: bad byte"), ValueError("bad byte"))
    assert str(error) == "parse: cannot decode: bad byte"


def test_config_error_lists_every_problem_and_no_cause() -> None:
    problems = [
        ConfigProblem("feeds.toml", 2, "settings.interval", "must be a duration"),
        ConfigProblem("feeds.toml", 7, "syntax", "Invalid value", column=12),
        ConfigProblem("environment", None, "AGGREGATOR_STORE", "must be a path"),
        ConfigProblem("feeds.toml", None, "", "cannot read the file"),
    ]
    error = _raised_from(ConfigError(problems), FileNotFoundError("feeds.toml"))
    assert str(error).splitlines() == [
        "feeds.toml:2: settings.interval: must be a duration",
        "feeds.toml:7:12: syntax: Invalid value",
        "environment: AGGREGATOR_STORE: must be a path",
        "feeds.toml: cannot read the file",
    ]
    assert error.problems == tuple(problems)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "stage"),
    [(SourceError("s", "m"), "update"), (FetchError("s", "http://x/", "m"), "fetch"),
     (ParseError("s", "http://x/", "m"), "parse")],
    ids=["source", "fetch", "parse"],
)
def test_each_source_error_names_the_stage_that_failed(error: SourceError, stage: str) -> None:
    assert error.stage == stage
    assert error.source == "s"


def test_fetch_error_keeps_status_and_retry_after() -> None:
    error = FetchError("nantong", "http://x/feed", "fetch: HTTP 503 Service Unavailable", status=503,
                       retry_after_seconds=120.0)
    assert (error.url, error.status, error.retry_after_seconds) == ("http://x/feed", 503, 120.0)
    assert str(error) == "fetch: HTTP 503 Service Unavailable"
