"""Turn a fetched document into a ParsedFeed by the adapter registered for the source's kind.

`PARSERS` is the registry: a plain dict from `SourceConfig.kind` to an adapter function
(STYLE §8: an explicit registry, no dispatch by method name). An adapter gets the fetched bytes,
the source's config and the timezone its naive times are in (Config.timezone_of, checked when
feeds.toml was loaded), and returns a ParsedFeed or raises ParseError. To add a format, write
`parse/<format>.py` with one adapter and add one line here. A `kind = "feed"` source is read by
content: a JSON Feed document (parse/json_feed.py) or else RSS/Atom (parse/feed.py), as feed
readers accept either at one subscription URL.
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
from aggregator.parse.json_feed import read_json_feed

Adapter = Callable[[Fetched, SourceConfig, ZoneInfo], ParsedFeed]


def parse_syndication_feed(fetched: Fetched, source: SourceConfig, tz: ZoneInfo) -> ParsedFeed:
    """JSON Feed when the document is one, else RSS or Atom."""
    json_feed = read_json_feed(fetched, source, tz)
    return json_feed if json_feed is not None else parse_feed(fetched, source, tz)


PARSERS: dict[str, Adapter] = {
    "feed": parse_syndication_feed,
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
