"""parse/feed.py: fixture pairs (<case>.xml + <case>.expected.json), the seed article, and robustness.

Each tests/data/feeds/<case>.expected.json holds what the fetch stage "gave" (Content-Type, the
source's encoding override) and either the expected feed, items and warnings, or the ParseError
message.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed, RawItem
from aggregator.parse.feed import parse_feed
from tests.conftest import DATA_DIR

FEEDS = DATA_DIR / "feeds"
CASES = sorted(p.name.removesuffix(".expected.json") for p in FEEDS.glob("*.expected.json"))
SHANGHAI = ZoneInfo("Asia/Shanghai")
FETCHED_AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
#: a guard against hangs in the corpus loop, not a speed measurement (bench/ measures speed)
HANG_GUARD_SECONDS = 120


def fetch(body: bytes, content_type: str | None = "application/xml", encoding: str | None = None,
          name: str = "nantong") -> tuple[Fetched, SourceConfig]:
    url = "https://ntrb.example.cn/rss"
    headers = {"content-type": content_type} if content_type else {}
    fetched = Fetched(url=url, final_url=url, status=200, headers=headers, body=body,
                      fetched_at=FETCHED_AT)
    return fetched, SourceConfig(name=name, url=url, encoding=encoding)


def document_of(case: str) -> Path:
    (path,) = (p for p in FEEDS.glob(f"{case}.*") if not p.name.endswith(".expected.json"))
    return path


def item_as_json(item: RawItem) -> dict[str, Any]:
    fields = dataclasses.asdict(item)
    for key in ("published", "updated"):
        fields[key] = fields[key].isoformat() if fields[key] else None
    fields["tags"] = list(fields["tags"])
    return fields


def test_every_fixture_has_its_document() -> None:
    assert len(CASES) >= 17
    for case in CASES:
        assert document_of(case).exists()


@pytest.mark.parametrize("case", CASES)
def test_fixture_document_parses_to_its_expected_twin(case: str) -> None:
    expected = json.loads((FEEDS / f"{case}.expected.json").read_text(encoding="utf-8"))
    given_ = expected["given"]
    fetched, source = fetch(document_of(case).read_bytes(), given_["content_type"], given_.get("encoding"))
    if "error" in expected:
        with pytest.raises(ParseError) as caught:
            parse_feed(fetched, source, SHANGHAI)
        assert caught.value.message == expected["error"]
        assert caught.value.source == "nantong"
        assert caught.value.url == "https://ntrb.example.cn/rss"
        return
    parsed = parse_feed(fetched, source, SHANGHAI)
    assert {"ttl_minutes": parsed.ttl_minutes} == expected["feed"]
    assert [item_as_json(item) for item in parsed.items] == expected["items"]
    assert list(parsed.warnings) == expected["warnings"]


def seed_body(seed_post: Path) -> str:
    """The seed post's HTML body: after the front matter, before the source link."""
    text = seed_post.read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1]
    return body.split("\n\n<http", 1)[0].strip()


@pytest.mark.parametrize("case", ["seed_article_rss20", "seed_article_atom10"])
def test_seed_feed_item_carries_the_seed_article_untouched(case: str, seed_post: Path) -> None:
    fetched, source = fetch(document_of(case).read_bytes())
    (item,) = parse_feed(fetched, source, SHANGHAI).items
    assert item.html == seed_body(seed_post)
    assert item.url == "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201242257831752"
    assert item.title == "聚焦可持续发展 中天科技全面启动绿色低碳制造行动"
    # the seed's front matter: date: 2022-01-24 00:48:09 +0800
    assert item.published == datetime(2022, 1, 23, 16, 48, 9, tzinfo=UTC)
    assert "<!-- EM_StockImg_Start -->" in item.html  # the cleaner, not the parser, removes widgets


def test_gbk_feed_labelled_utf8_is_still_read_without_the_override_with_a_warning() -> None:
    fetched, source = fetch(document_of("gbk_bytes_labelled_utf8").read_bytes(), "application/rss+xml; charset=utf-8")
    parsed = parse_feed(fetched, source, SHANGHAI)
    assert parsed.items[0].title == "南通港集装箱吞吐量创新高"
    assert parsed.warnings == (
        "parse: bytes are not utf-8 (HTTP Content-Type); read as gb18030 (fallback)",
    )


def test_undecodable_bytes_raise_parse_error_naming_the_charset() -> None:
    # every byte value once: neither UTF-8 nor GB18030, and no charset the detector settles on
    fetched, source = fetch(b'<rss version="2.0"><channel><title>' + bytes(range(256)) + b"</title></channel></rss>",
                            "application/rss+xml; charset=utf-8")
    with pytest.raises(ParseError, match=r"^parse: cannot decode as utf-8 \(also tried gb18030\)"):
        parse_feed(fetched, source, SHANGHAI)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "parse: not an RSS or Atom document (no root element)"),
        (b"   \n", "parse: not an RSS or Atom document (no root element)"),
        (b'{"records": [{"infoCode": "NW1"}]}', "parse: not an RSS or Atom document (no root element)"),
        (b"\x89PNG\r\n\x1a\n", "parse: not an RSS or Atom document (no root element)"),
        (b"<note><to>x</to></note>", "parse: not an RSS or Atom document"),
    ],
    ids=["empty", "blank", "json", "binary", "other_xml"],
)
def test_document_that_is_not_a_readable_feed_raises_parse_error(body: bytes, message: str) -> None:
    fetched, source = fetch(body)
    with pytest.raises(ParseError) as caught:
        parse_feed(fetched, source, SHANGHAI)
    assert caught.value.message == message


def test_truncated_feed_with_nothing_readable_is_an_empty_feed_with_a_warning() -> None:
    # feedparser's loose parser recognises it as RSS 2.0, so we read it too (issue 10 §7)
    fetched, source = fetch(b'<?xml version="1.0"?>\n<rss version="2.0"><channel>')
    parsed = parse_feed(fetched, source, SHANGHAI)
    assert parsed.items == ()
    # positions in parser messages are the source's: line 2, column 28
    assert parsed.warnings == ("parse: malformed feed read leniently: <unknown>:2:28: no element found",)


def test_valid_feed_without_items_is_an_empty_feed_not_an_error() -> None:
    fetched, source = fetch(b'<rss version="2.0"><channel><title>empty</title></channel></rss>')
    parsed = parse_feed(fetched, source, SHANGHAI)
    assert parsed == ParsedFeed(warnings=())


def test_plain_text_bodies_are_escaped_into_html() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>NW1</id><title>a</title>'
        b'<content type="text">1 &lt; 2 &amp; 3</content></entry></feed>'
    )
    fetched, source = fetch(body)
    assert parse_feed(fetched, source, SHANGHAI).items[0].html == "1 &lt; 2 &amp; 3"


def test_out_of_line_content_falls_back_to_the_summary() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>NW1</id><title>a</title>'
        b'<summary type="html">&lt;p&gt;digest&lt;/p&gt;</summary>'
        b'<content type="video/mp4" src="https://v.example.cn/1.mp4"/></entry></feed>'
    )
    fetched, source = fetch(body)
    item = parse_feed(fetched, source, SHANGHAI).items[0]
    assert (item.html, item.summary) == ("<p>digest</p>", "")


def test_title_and_author_are_left_as_written_for_build_item_to_clean() -> None:
    body = (
        '<rss version="2.0"><channel><title>t</title><item><guid>NW1</guid>'
        "<title>&lt;b&gt;南通&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp;\n  日报&amp;nbsp;</title>"
        "<dc:creator xmlns:dc='http://purl.org/dc/elements/1.1/'> 记者  张三 </dc:creator>"
        "</item></channel></rss>"
    ).encode()
    fetched, source = fetch(body)
    (item,) = parse_feed(fetched, source, SHANGHAI).items
    # only the XML parser's entity decoding: tags, the second level of entities and inner white space stay
    assert item.title == "<b>南通</b><script>alert(1)</script> &amp;\n  日报&nbsp;"
    assert item.author == "记者  张三"  # feedparser strips the ends of every element's text


def test_non_positive_or_garbled_ttl_is_ignored() -> None:
    for ttl in ("0", "-5", "soon", ""):
        body = f'<rss version="2.0"><channel><title>t</title><ttl>{ttl}</ttl></channel></rss>'.encode()
        fetched, source = fetch(body)
        assert parse_feed(fetched, source, SHANGHAI).ttl_minutes is None


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """Fail (SIGALRM) instead of hanging the run if a document makes the parser loop."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"parsing did not finish within {HANG_GUARD_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_GUARD_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


_HEADER_RE = re.compile(rb"^Header:\s*Content-type:\s*([^\r\n]+)", re.IGNORECASE | re.MULTILINE)


@pytest.mark.usefixtures("hang_guard")
def test_every_feedparser_corpus_document_parses_or_raises_parse_error(feedparser_corpus_dir: Path) -> None:
    documents = sorted(p for p in feedparser_corpus_dir.rglob("*") if p.suffix in (".xml", ".json"))
    assert len(documents) > 2000
    parsed: dict[str, ParsedFeed] = {}
    refused: list[str] = []
    for path in documents:
        body = path.read_bytes()
        header = _HEADER_RE.search(body)  # the HTTP header the corpus file says it was served with
        fetched, source = fetch(body, header.group(1).decode("ascii", "replace") if header else None)
        name = path.relative_to(feedparser_corpus_dir).as_posix()
        try:
            parsed[name] = parse_feed(fetched, source, SHANGHAI)
        except ParseError:
            refused.append(name)
    # well-formed documents are refused only for being CDF, which is neither RSS nor Atom
    assert [name for name in refused if name.startswith("wellformed/") and "cdf" not in name] == []
    assert len(parsed) > 0.98 * len(documents)
    # the corpus' own expectations for charsets we must honour (its Expect: lines)
    assert parsed["encoding/euc-kr-item.xml"].items[0].html == "\ub144"
    assert parsed["encoding/http_text_xml_charset_2.xml"].items[0].html.startswith("This is a \xa3")
    assert parsed["encoding/utf-32le-autodetect.xml"].warnings == ()
    assert parsed["encoding/http_application_atom_xml_gb2312_charset_overrides_encoding.xml"].warnings == ()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=400),
        st.text(alphabet='<>!?/[]"\'&;=# \nabcrsitemhlnDOCTYPEENTITY南通%-:.0123456789', max_size=400).map(
            str.encode
        ),
    )
)
def test_arbitrary_bytes_parse_or_raise_parse_error_and_nothing_else(body: bytes) -> None:
    fetched, source = fetch(b'<rss version="2.0"><channel><title>' + body)
    try:
        parse_feed(fetched, source, SHANGHAI)
    except ParseError:
        pass


def test_cdf_channel_is_read_like_feedparser_reads_it() -> None:
    body = (b'<CHANNEL HREF="http://www.example.org/"><TITLE>channel title</TITLE>'
            b'<ITEM HREF="http://www.example.org/item/1"><TITLE>Example item</TITLE>'
            b"<ABSTRACT>item abstract</ABSTRACT></ITEM></CHANNEL>")
    fetched, source = fetch(body)
    parsed = parse_feed(fetched, source, SHANGHAI)
    assert [(i.title, i.url, i.html) for i in parsed.items] == [
        ("Example item", "http://www.example.org/item/1", "item abstract")
    ]
