"""Turn a fetched document into a ParsedFeed by the adapter registered for the source's kind.

`PARSERS` is the registry: a plain dict from `SourceConfig.kind` to an adapter function
(STYLE §8: an explicit registry, no dispatch by method name). An adapter gets the fetched bytes,
the source's config and the timezone its naive times are in, and returns a ParsedFeed or raises
ParseError. To add a format, write `parse/<format>.py` with one adapter and add one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed
from aggregator.parse.feed import parse_feed
from aggregator.parse.html_list import parse_html_list
from aggregator.parse.json_api import parse_json_api

Adapter = Callable[[Fetched, SourceConfig, ZoneInfo], ParsedFeed]

PARSERS: dict[str, Adapter] = {
    "feed": parse_feed,
    "json": parse_json_api,
    "html": parse_html_list,
}


def parse(fetched: Fetched, source: SourceConfig, default_timezone: str) -> ParsedFeed:
    """Parse with the adapter for `source.kind`; naive times are read in the source's timezone."""
    adapter = PARSERS.get(source.kind)
    if adapter is None:
        raise ParseError(source.name, fetched.final_url, f"parse: no parser for kind {source.kind!r}")
    name = source.timezone or default_timezone
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ParseError(source.name, fetched.final_url, f"parse: unknown timezone {name!r}") from e
    return adapter(fetched, source, tz)
