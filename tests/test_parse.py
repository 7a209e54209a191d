"""parse/__init__.py: dispatch on source.kind through the PARSERS registry, timezone resolution."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from aggregator import parse as parse_package
from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed
from aggregator.parse import PARSERS, parse
from aggregator.parse.feed import parse_feed

RSS = (
    b'<rss version="2.0"><channel><title>t</title><item><guid>NW1</guid>'
    b"<pubDate>2022-01-24 00:48:09</pubDate></item></channel></rss>"
)


def fetched(body: bytes = RSS) -> Fetched:
    url = "https://ntrb.example.cn/rss"
    return Fetched(source_name="s", url=url, final_url=url, status=200, headers={}, body=body,
                   fetched_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC))


def test_feed_kind_is_parsed_by_the_feed_adapter() -> None:
    assert PARSERS["feed"] is parse_feed
    parsed = parse(fetched(), SourceConfig(name="s", url="https://ntrb.example.cn/rss"), "Asia/Shanghai")
    assert [item.guid for item in parsed.items] == ["NW1"]


def test_naive_times_use_the_default_timezone_unless_the_source_names_one() -> None:
    default = parse(fetched(), SourceConfig(name="s", url="https://x.example/"), "Asia/Shanghai")
    assert default.items[0].published == datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)
    own = parse(fetched(), SourceConfig(name="s", url="https://x.example/", timezone="UTC"), "Asia/Shanghai")
    assert own.items[0].published == datetime(2022, 1, 24, 0, 48, 9, tzinfo=UTC)


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
        return ParsedFeed(source_name=source.name, title="from adapter")

    monkeypatch.setitem(parse_package.PARSERS, "json", adapter)
    source = SourceConfig(name="s", url="https://x.example/", kind="json", timezone="Asia/Urumqi")
    document = fetched(b"{}")
    assert parse(document, source, "Asia/Shanghai").title == "from adapter"
    assert calls == [(document, source, ZoneInfo("Asia/Urumqi"))]


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../etc/passwd", ""])
def test_unknown_default_timezone_raises_parse_error(name: str) -> None:
    # feeds.toml validates timezones; this guards callers that pass a name of their own
    source = SourceConfig(name="s", url="https://x.example/")
    with pytest.raises(ParseError, match=r"^parse: unknown timezone"):
        parse(fetched(), source, name)
