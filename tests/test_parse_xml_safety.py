"""parse/xml_safety.py: the prolog never reaches a parser, so entities are never expanded, read or fetched.

The hostile documents go through the whole feed adapter, because the property that matters is what
comes out of parsing. "Fast" is shown by size, never by timing: an expansion would make the output
megabytes (or gigabytes) long.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed
from aggregator.parse.feed import parse_feed
from aggregator.parse.xml_safety import strip_prolog
from tests.conftest import DATA_DIR
from tests.fixture_server import FixtureServer, Route

HOSTILE = DATA_DIR / "hostile"
SOURCE = SourceConfig(name="hostile", url="https://hostile.example/rss")
SECRET = "s3cr3t-b4a1e-never-in-output"


def parse_bytes(body: bytes) -> ParsedFeed:
    fetched = Fetched(
        url=SOURCE.url,
        final_url=SOURCE.url,
        status=200,
        headers={"content-type": "application/rss+xml; charset=utf-8"},
        body=body,
        fetched_at=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
    )
    return parse_feed(fetched, SOURCE, ZoneInfo("Asia/Shanghai"))


def output_chars(parsed: ParsedFeed) -> int:
    """Characters of everything the parser produced: an expanded entity would show up here."""
    return len(repr(parsed))


def test_billion_laughs_is_read_without_expanding_anything() -> None:
    body = (HOSTILE / "billion-laughs.xml").read_bytes()
    parsed = parse_bytes(body)
    assert output_chars(parsed) < 2 * len(body)  # one level of expansion alone would be 10x
    assert [item.guid for item in parsed.items] == ["NW202201240000000900"]
    assert parsed.items[0].title == "&lol9;"
    assert any(w.startswith("parse: DTD removed unread") for w in parsed.warnings)


def test_quadratic_blowup_is_read_without_expanding_anything() -> None:
    # a 10 kB entity referenced 2,000 times: 20 MB if expanded. One declaration per line is the
    # form feedparser keeps as "safe" (sanitizer.py::replace_doctype) and expands in its loose parser
    entity = "A" * 10_000
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{entity}">\n]>\n'
        f'<rss version="2.0"><channel><title>q</title><item><guid>NW1</guid>'
        f"<description>{'&a;' * 2_000}</description></item></channel></rss>"
    ).encode()
    parsed = parse_bytes(body)
    assert output_chars(parsed) < len(body)
    assert parsed.items[0].html == "&a;" * 2_000


def test_entity_smuggled_in_a_prolog_comment_is_not_declared() -> None:
    # raw feedparser expands this one: 1,000 references x 1,000 characters = 1,000,000 characters
    body = (HOSTILE / "doctype-in-comment-smuggles-entity.xml").read_bytes()
    parsed = parse_bytes(body)
    assert output_chars(parsed) < len(body)
    assert parsed.items[0].title == "&a;" * 1000


@pytest.mark.parametrize(
    "declaration",
    [
        '<!ENTITY xxe SYSTEM "file://{path}">',
        '<!ENTITY xxe PUBLIC "-//x//y" "file://{path}">',
        '<!ENTITY % p SYSTEM "file://{path}"> <!ENTITY % w "<!ENTITY xxe \'%p;\'>"> %w;',
    ],
    ids=["system_entity", "public_entity", "parameter_entity"],
)
def test_external_entity_never_reads_the_file(tmp_path: Path, declaration: str) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    subset = declaration.format(path=secret_file)
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [ {subset} ]>\n'
        "<rss version=\"2.0\"><channel><title>t &xxe;</title><item><guid>NW1</guid>"
        "<title>&xxe;</title><description>&xxe;</description></item></channel></rss>"
    ).encode()
    parsed = parse_bytes(body)
    assert SECRET not in repr(parsed)
    assert parsed.items[0].title == "&xxe;"


def test_external_dtd_and_entities_are_never_fetched(feed_server: FixtureServer) -> None:
    feed_server.routes["/evil.dtd"] = Route(body=f'<!ENTITY leak "{SECRET}">'.encode(), content_type="text/plain")
    feed_server.routes["/entity"] = Route(body=SECRET.encode(), content_type="text/plain")
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{feed_server.url("/evil.dtd")}" [\n'
        f'  <!ENTITY % remote SYSTEM "{feed_server.url("/evil.dtd")}"> %remote;\n'
        f'  <!ENTITY fetched SYSTEM "{feed_server.url("/entity")}">\n]>\n'
        "<rss version=\"2.0\"><channel><title>t</title><item><guid>NW1</guid>"
        "<title>&leak; &fetched;</title></item></channel></rss>"
    ).encode()
    parsed = parse_bytes(body)
    assert SECRET not in repr(parsed)
    assert sum(feed_server.hits.values()) == 0


def test_doctype_after_the_root_element_declares_nothing() -> None:
    entity = "A" * 10_000
    body = (
        f'<rss version="2.0"><channel>\n<!DOCTYPE rss [\n<!ENTITY a "{entity}">\n]>\n'
        f"<title>t</title><item><guid>NW1</guid><title>{'&a;' * 2_000}</title></item></channel></rss>"
    ).encode()
    parsed = parse_bytes(body)
    assert output_chars(parsed) < len(body)


def test_legitimate_doctype_feed_still_parses() -> None:
    body = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"\n'
        b'  "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        b'<rss version="0.91"><channel><title>Wire &amp; more</title><item><title>Caf&eacute;</title>'
        b"<link>http://wire.example.com/1</link></item></channel></rss>"
    )
    parsed = parse_bytes(body)
    assert parsed.items[0].title == "Café"


def test_unterminated_doctype_is_not_a_feed() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE rss [ <!ENTITY a "never closed' + b" x" * 1000
    with pytest.raises(ParseError, match=r"^parse: not an RSS or Atom document \(a declaration never ends\)$"):
        parse_bytes(body)


STRIPS = [
    # (text, kept text, removed declarations, id)
    ('<?xml version="1.0"?>\n<rss/>', "<rss/>", (), "declaration_only"),
    ("<rss><title>a</title></rss>", "<rss><title>a</title></rss>", (), "no_prolog"),
    ("<!-- hi --><?xml-stylesheet href='s.xsl'?>\n<feed/>", "<feed/>", (), "comment_and_pi_dropped"),
    ('<!DOCTYPE rss SYSTEM "x.dtd"><rss/>', "<rss/>", ('<!DOCTYPE rss SYSTEM "x.dtd">',), "external_id"),
    ('<!DOCTYPE r [<!ENTITY a "x>y]z">]><r>&a;</r>', "<r>&a;</r>", ('<!DOCTYPE r [<!ENTITY a "x>y]z">]>',),
     "quoted_gt_and_bracket_in_subset"),
    ("<!DOCTYPE r [<!-- ]> ' --><!ENTITY a 'b'>]><r/>", "<r/>", ("<!DOCTYPE r [<!-- ]> ' --><!ENTITY a 'b'>]>",),
     "comment_inside_subset"),
    ("<!DOCTYPE r [<?pi ]> ?>]><r/>", "<r/>", ("<!DOCTYPE r [<?pi ]> ?>]>",), "pi_inside_subset"),
    ("junk <!DOCTYPE r [<!ENTITY a 'b'>]> more junk <r/>", "<r/>", ("<!DOCTYPE r [<!ENTITY a 'b'>]>",),
     "junk_before_root_cannot_hide_a_doctype"),
    ('<!ENTITY stray "x"><r/>', "<r/>", ('<!ENTITY stray "x">',), "stray_entity_outside_doctype"),
    ("<r><![CDATA[<!DOCTYPE kept>]]></r>", "<r><![CDATA[<!DOCTYPE kept>]]></r>", (), "content_is_untouched"),
    ("<?xml version='1.0'?><!-- no root -->", "", (), "no_root_element"),
    ('{"items": []}', "", (), "json"),
    ("", "", (), "empty"),
]


@pytest.mark.parametrize(("text", "kept", "removed"), [s[:3] for s in STRIPS], ids=[s[3] for s in STRIPS])
def test_prolog_is_cut_up_to_the_root_element(text: str, kept: str, removed: tuple[str, ...]) -> None:
    stripped = strip_prolog(text)
    assert stripped.text == kept
    assert stripped.removed == removed
    assert not stripped.truncated


@pytest.mark.parametrize(
    "text",
    ['<!DOCTYPE r [ <!ENTITY a "x">', "<!DOCTYPE r [ <!-- never", "<!-- never closed <r/>", "<?pi never <r/>"],
    ids=["subset", "comment_in_subset", "comment", "pi"],
)
def test_prolog_that_never_ends_leaves_nothing(text: str) -> None:
    stripped = strip_prolog(text)
    assert stripped.text == ""
    assert stripped.truncated


def test_long_declaration_is_quoted_abbreviated() -> None:
    stripped = strip_prolog(f'<!DOCTYPE r [<!ENTITY a "{"A" * 10_000}">]><r/>')
    assert stripped.text == "<r/>"
    assert len(stripped.removed[0]) == 60
    assert stripped.removed[0].endswith("…")
