"""Regexes over remote text: time of the public stages on the 100 KB inputs that made the former regexes backtrack.

The tests assert each stays well under a second; this prints the figures (ms), for the README and the
issue 10 note. Usage: python bench/bench_regex.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.clean import clean_html, clean_text
from aggregator.config.load import CleanRules, SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched
from aggregator.parse.json_api import parse_json_api
from aggregator.parse.times import to_utc

SOURCE = SourceConfig(name="s", kind="json", url="http://127.0.0.1/api", preset="eastmoney", categories="auto")


def _json(body: bytes) -> Fetched:
    return Fetched(url="http://127.0.0.1/api", final_url="http://127.0.0.1/api", status=200,
                   headers={"content-type": "application/json"}, body=body, fetched_at=datetime.now(UTC))


CASES: dict[str, Callable[[], object]] = {
    "JSONP: callback( + 100 KB of spaces": lambda: parse_json_api(
        _json(b"callback(" + b" " * 100_000 + b"x"), SOURCE, ZoneInfo("UTC")),
    "date: 100 KB of digits": lambda: to_utc("1" * 100_000, ZoneInfo("UTC"), datetime.now(UTC)),
    "title: '<p' x 50,000": lambda: clean_text("<p" * 50_000),
    "body: pixel width + 100 KB of spaces": lambda: clean_html(
        f'<img src="http://x/a.png" width="1{" " * 100_000}x">', "http://x/", CleanRules()),
    "body: '</body' x 17,000": lambda: clean_html("</body" * 17_000, "http://x/", CleanRules()),
}


def main() -> None:
    for name, run in CASES.items():
        started = time.perf_counter()
        try:
            run()
        except ParseError:
            pass  # refused, as it should be: the time is what counts
        print(f"{name:40s} {1000 * (time.perf_counter() - started):8.1f} ms")


if __name__ == "__main__":
    main()
