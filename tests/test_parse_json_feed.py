"""parse/json_feed.py: JSON Feed 1.0/1.1 documents at a kind = "feed" source → RawItems."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, RawItem
from aggregator.parse import parse
from aggregator.parse.json_feed import read_json_feed

SHANGHAI = ZoneInfo("Asia/Shanghai")
FETCHED_AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SOURCE = SourceConfig(name="jf", url="http://127.0.0.1/feed.json", categories=())


def _fetched(body: bytes, content_type: str = "application/feed+json") -> Fetched:
    url = "http://127.0.0.1/feed.json"
    return Fetched(url=url, final_url=url, status=200, headers={"content-type": content_type},
                   body=body, fetched_at=FETCHED_AT)


def _document(version: str, **fields: object) -> bytes:
    return json.dumps({"version": version, "title": "南通日报", **fields}, ensure_ascii=False).encode()


def test_json_feed_1_1_maps_every_field_to_the_raw_item() -> None:
    body = _document(
        "https://jsonfeed.org/version/1.1",
        home_page_url="https://example.org/",
        items=[{
            "id": "NW202201242257831752", "url": "https://example.org/a", "title": " 南通港 <b>新高</b> ",
            "content_html": "<p>正文</p>", "summary": "摘要 < 1", "date_published": "2022-01-24T00:48:09+08:00",
            "date_modified": "2022-01-24T08:00:00Z", "authors": [{"name": "记者  张三"}], "tags": ["港口", "港口", 3],
        }],
    )
    parsed = parse(_fetched(body), SOURCE, "Asia/Shanghai")
    assert parsed.warnings == ()
    assert parsed.items == (RawItem(
        guid="NW202201242257831752", url="https://example.org/a", title=" 南通港 <b>新高</b> ", html="<p>正文</p>",
        summary="摘要 &lt; 1", published=datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC),
        updated=datetime(2022, 1, 24, 8, 0, tzinfo=UTC), author="记者  张三", tags=("港口",),
    ),)


def test_json_feed_1_0_author_numeric_id_and_text_content_are_read() -> None:
    body = _document("https://jsonfeed.org/version/1", items=[
        {"id": 42, "content_text": "1 < 2 & 3", "author": {"name": "me"}, "date_published": "2022-01-24 08:00:00"},
    ])
    item = parse(_fetched(body), SOURCE, "Asia/Shanghai").items[0]
    assert (item.guid, item.html, item.author) == ("42", "1 &lt; 2 &amp; 3", "me")
    # a naive time is read in the source's timezone, like every other adapter
    assert item.published == datetime(2022, 1, 24, 0, 0, tzinfo=UTC)


def test_feedparser_corpus_json_feed_is_ingested(feedparser_corpus_dir: Path) -> None:
    body = (feedparser_corpus_dir / "json" / "example.json").read_bytes()
    parsed = parse(_fetched(body, "application/json"), SOURCE, "Asia/Shanghai")
    assert [(i.guid, i.url, i.author, i.tags) for i in parsed.items] == [
        ("2", "https://example.org/second-item", None, ("test", "JSON")),
        ("1", "https://example.org/initial-post", "you", ()),
    ]
    assert parsed.items[1].html == "<p>Hello, world!</p>\n\n<script>alert();</script>"  # clean/ sanitizes later


def test_items_of_the_wrong_shape_are_skipped_with_a_warning_and_fields_of_the_wrong_type_ignored() -> None:
    body = _document("https://jsonfeed.org/version/1.1", items=[
        "not an object", None, {"id": "ok", "title": ["list"], "url": 7, "content_html": {"x": 1}, "tags": "t"},
    ])
    parsed = parse(_fetched(body), SOURCE, "Asia/Shanghai")
    assert parsed.items == (RawItem(guid="ok"),)
    assert parsed.warnings == (
        "parse: JSON Feed item 0 is str, not an object; skipped",
        "parse: JSON Feed item 1 is NoneType, not an object; skipped",
    )


def test_items_that_are_not_a_list_raise_parse_error() -> None:
    with pytest.raises(ParseError, match=r"^parse: JSON Feed 'items' is dict, not a list$"):
        parse(_fetched(_document("https://jsonfeed.org/version/1", items={"id": "1"})), SOURCE, "Asia/Shanghai")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": ' + b"9" * 5000 + b"}]}",
         "Exceeds the limit"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
         "nested too deeply"),
    ],
    ids=["5000_digit_int", "10000_deep_nesting"],
)
def test_json_bombs_in_a_json_feed_raise_parse_error(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=r"^parse: unreadable JSON Feed: ") as caught:
        parse(_fetched(body), SOURCE, "Asia/Shanghai")
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "body",
    [b'{"records": [{"infoCode": "NW1"}]}', b'{"version": "2.0"}', b"[1, 2]", b"<rss/>", b"{not json"],
    ids=["other_json", "other_version", "json_list", "xml", "broken_json"],
)
def test_documents_that_are_not_json_feeds_are_left_to_the_rss_atom_adapter(body: bytes) -> None:
    assert read_json_feed(_fetched(body), SOURCE, SHANGHAI) is None
