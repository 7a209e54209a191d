"""parse/__init__.py: dispatch on source.kind through the PARSERS registry, naive times in the zone given."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator import parse as parse_package
from aggregator.config.load import SourceConfig, parse_config
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed
from aggregator.parse import PARSERS, parse, parse_syndication_feed

RSS = (
    b'<rss version="2.0"><channel><title>t</title><item><guid>NW1</guid>'
    b"<pubDate>2022-01-24 00:48:09</pubDate></item></channel></rss>"
)


def fetched(body: bytes = RSS) -> Fetched:
    url = "https://ntrb.example.cn/rss"
    return Fetched(url=url, final_url=url, status=200, headers={}, body=body,
                   fetched_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC))


def test_feed_kind_is_parsed_by_the_rss_atom_or_json_feed_adapter() -> None:
    assert PARSERS["feed"] is parse_syndication_feed
    parsed = parse(fetched(), SourceConfig(name="s", url="https://ntrb.example.cn/rss"), "Asia/Shanghai")
    assert [item.guid for item in parsed.items] == ["NW1"]
    json_feed = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "NW2"}]}'
    parsed = parse(fetched(json_feed), SourceConfig(name="s", url="https://ntrb.example.cn/rss"), "Asia/Shanghai")
    assert [item.guid for item in parsed.items] == ["NW2"]


def test_naive_times_are_read_in_the_timezone_config_resolves_for_the_source(tmp_path: Path) -> None:
    config = parse_config('[settings]\ntimezone = "Asia/Shanghai"\n[[sources]]\nname = "default"\n'
                          'url = "https://x.example/"\ncategories = "auto"\n[[sources]]\nname = "own"\nurl = "https://y.example/"\n'
                          'timezone = "UTC"\ncategories = "auto"\n', tmp_path / "feeds.toml", {})
    default, own = config.sources
    parsed = parse(fetched(), default, config.timezone_of(default))
    assert parsed.items[0].published == datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)
    parsed = parse(fetched(), own, config.timezone_of(own))
    assert parsed.items[0].published == datetime(2022, 1, 24, 0, 48, 9, tzinfo=UTC)


def test_kind_with_no_registered_adapter_raises_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(PARSERS, "html", raising=False)
    source = SourceConfig(name="s", url="https://x.example/", kind="html")
    with pytest.raises(ParseError) as caught:
        parse(fetched(), source, "Asia/Shanghai")
    assert caught.value.message == "parse: no parser for kind 'html'"
    assert (caught.value.source, caught.value.url) == ("s", "https://ntrb.example.cn/rss")


def test_registered_adapter_gets_the_fetched_document_source_and_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Fetched, SourceConfig, ZoneInfo]] = []

    def adapter(document: Fetched, source: SourceConfig, tz: ZoneInfo) -> ParsedFeed:
        calls.append((document, source, tz))
        return ParsedFeed(warnings=("from adapter",))

    monkeypatch.setitem(parse_package.PARSERS, "json", adapter)
    source = SourceConfig(name="s", url="https://x.example/", kind="json", timezone="Asia/Urumqi")
    document = fetched(b"{}")
    assert parse(document, source, "Asia/Urumqi").warnings == ("from adapter",)
    assert calls == [(document, source, ZoneInfo("Asia/Urumqi"))]
