"""log.setup_logging: -q/-v levels, readable text lines, and JSON lines that keep the `extra=` fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from aggregator.log import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """setup_logging configures the root logger; give every other test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libraries = {name: logging.getLogger(name).level for name in ("httpx", "apscheduler")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, library_level in libraries.items():
            logging.getLogger(name).setLevel(library_level)


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [(-3, ["error"]), (-1, ["error"]), (0, ["warning", "error"]), (1, ["info", "warning", "error"]),
     (2, ["debug", "info", "warning", "error"]), (5, ["debug", "info", "warning", "error"])],
    ids=["very-quiet", "quiet", "default", "verbose", "debug", "more-than-debug"],
)
def test_verbosity_chooses_the_lowest_level_shown(verbosity: int, shown: list[str]) -> None:
    stream = io.StringIO()
    setup_logging(verbosity, "json", stream)
    log = logging.getLogger("aggregator.test")
    for level in ("debug", "info", "warning", "error"):
        getattr(log, level)("%s line", level)
    assert [json.loads(line)["level"] for line in stream.getvalue().splitlines()] == shown


def test_json_line_carries_the_extra_fields_and_the_message() -> None:
    stream = io.StringIO()
    setup_logging(0, "json", stream)
    logging.getLogger("aggregator.update").warning(
        "update: source=%s outcome=%s", "nantong", "error", extra={"source": "nantong", "outcome": "error"}
    )
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "update: source=nantong outcome=error"
    assert (record["level"], record["logger"]) == ("warning", "aggregator.update")
    assert (record["source"], record["outcome"]) == ("nantong", "error")
    assert record["time"].endswith("+00:00")
    assert "args" not in record and "msg" not in record, "LogRecord internals are not fields"


def test_json_line_keeps_chinese_text_readable_and_stringifies_odd_values() -> None:
    stream = io.StringIO()
    setup_logging(0, "json", stream)
    logging.getLogger("aggregator.parse").warning("parse: 南通日报", extra={"categories": frozenset({"a"})})
    line = stream.getvalue()
    assert "南通日报" in line
    assert json.loads(line)["categories"] == "frozenset({'a'})"


def test_json_line_of_a_logged_exception_holds_its_traceback() -> None:
    stream = io.StringIO()
    setup_logging(0, "json", stream)
    try:
        raise ValueError("odd document")
    except ValueError:
        logging.getLogger("aggregator.update").exception("update: unexpected error")
    record = json.loads(stream.getvalue())
    assert "Traceback" in record["exception"] and "ValueError: odd document" in record["exception"]


def test_text_line_reads_time_level_message() -> None:
    stream = io.StringIO()
    setup_logging(0, "text", stream)
    logging.getLogger("aggregator.fetch.client").warning("fetch: HTTP 503")
    assert stream.getvalue().rstrip().endswith(" WARNING fetch: HTTP 503")


def test_library_loggers_stay_at_warnings_unless_debugging() -> None:
    setup_logging(1, "text", io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    setup_logging(2, "text", io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG


def test_setting_up_twice_leaves_one_handler() -> None:
    stream = io.StringIO()
    setup_logging(0, "text", io.StringIO())
    setup_logging(0, "text", stream)
    logging.getLogger("aggregator.test").warning("once")
    assert stream.getvalue().count("once") == 1
