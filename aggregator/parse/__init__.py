"""Turn a fetched document into a ParsedFeed by the adapter registered for the source's kind.

`PARSERS` is the registry: a plain dict from `SourceConfig.kind` to an adapter function
(STYLE §8: an explicit registry, no dispatch by method name). An adapter gets the fetched bytes,
the source's config and the timezone its naive times are in (Config.timezone_of, checked when
feeds.toml was loaded), and returns a ParsedFeed or raises ParseError. To add a format, write `parse/<format>.py` with one adapter and add one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

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


def parse(fetched: Fetched, source: SourceConfig, timezone: str) -> ParsedFeed:
    """Parse with the adapter for `source.kind`; naive times are read in `timezone` (the source's own or
    the default one, as Config.timezone_of resolves it)."""
    adapter = PARSERS.get(source.kind)
    if adapter is None:
        raise ParseError(source.name, fetched.final_url, f"parse: no parser for kind {source.kind!r}")
    return adapter(fetched, source, ZoneInfo(timezone))
