"""Table tests for parse/charset.py: the candidate order, Chinese label supersets, fallbacks, refusals."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.charset import CharsetError, charset_from_content_type, decode_document

#: "𠮷" needs GB18030's four-byte form; "镕" is in GBK but not in GB2312
CHINESE = "南通𠮷祥里·朱镕基"
ASCII_DOC = '<?xml version="1.0"?><rss/>'


def xml(encoding: str, text: str = "南通日报") -> bytes:
    return f'<?xml version="1.0" encoding="{encoding}"?><rss><title>{text}</title></rss>'.encode(
        "utf-8" if encoding.lower().startswith("utf") else encoding
    )


DECODES = [
    # (body, content_type, override, expected charset, id)
    (xml("utf-8"), None, None, "utf-8", "utf8_declared"),
    (b"<rss><title>\xe5\x8d\x97</title></rss>", None, None, "utf-8", "undeclared_utf8"),
    (codecs.BOM_UTF8 + ASCII_DOC.encode(), "text/xml; charset=gbk", None, "utf-8", "bom_beats_header"),
    (codecs.BOM_UTF16_LE + ASCII_DOC.encode("utf-16-le"), None, None, "utf-16-le", "utf16le_bom"),
    (codecs.BOM_UTF32_LE + ASCII_DOC.encode("utf-32-le"), None, None, "utf-32-le", "utf32le_bom_not_utf16"),
    (ASCII_DOC.encode("utf-16-be"), None, None, "utf-16-be", "utf16be_signature_without_bom"),
    (xml("gb18030").replace(b"gb18030", b"utf-8"), "application/rss+xml; charset=gb18030", None, "gb18030",
     "header_beats_declaration"),
    (xml("gbk"), "application/rss+xml", None, "gb18030", "declaration_when_header_has_no_charset"),
    (xml("gb2312"), "text/xml; charset='GB2312'", None, "gb18030", "gb2312_label_read_as_gb18030"),
    (xml("big5", "臺灣"), None, None, "big5", "other_declared_charsets_are_honoured"),
    (xml("iso-8859-1", "café"), None, None, "iso8859-1", "latin1_declared"),
    ("<rss>南通</rss>".encode("gbk"), None, "gbk", "gb18030", "override_first"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "override", "charset"), [c[:4] for c in DECODES], ids=[c[4] for c in DECODES]
)
def test_charset_is_chosen_by_the_documented_order(
    body: bytes, content_type: str | None, override: str | None, charset: str
) -> None:
    decoded = decode_document(body, content_type, override)
    assert decoded.charset == charset
    assert decoded.warnings == ()
    assert decoded.text.lstrip().startswith("<")


def test_gb18030_bytes_labelled_gb2312_keep_characters_gb2312_lacks() -> None:
    body = f'<?xml version="1.0" encoding="gb2312"?><rss><title>{CHINESE}</title></rss>'.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        body.decode("gb2312")  # what a strict reading of the label would do
    decoded = decode_document(body, "application/rss+xml; charset=gb2312", None)
    assert CHINESE in decoded.text


def test_byte_order_mark_is_not_part_of_the_text() -> None:
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        decoded = decode_document(bom + ASCII_DOC.encode(codec), None, None)
        assert decoded.text == ASCII_DOC


def test_utf16_declaration_uses_the_sniffed_byte_order() -> None:
    body = '<?xml version="1.0" encoding="utf-16"?><rss><title>南通</title></rss>'.encode("utf-16-le")
    decoded = decode_document(body, None, None)
    assert decoded.charset == "utf-16-le"
    assert "南通" in decoded.text


def test_header_that_lies_falls_back_to_the_declaration_with_a_warning() -> None:
    body = xml("gbk")
    decoded = decode_document(body, "application/xml; charset=utf-8", None)
    assert decoded.charset == "gb18030"
    assert "南通日报" in decoded.text
    assert decoded.warnings == (
        "parse: bytes are not utf-8 (HTTP Content-Type); read as gb18030 (XML declaration)",
    )


def test_undeclared_gbk_falls_back_to_gb18030_with_a_warning() -> None:
    decoded = decode_document("<rss><title>南通日报</title></rss>".encode("gbk"), None, None)
    assert decoded.charset == "gb18030"
    assert "南通日报" in decoded.text
    assert decoded.warnings == ("parse: bytes are not utf-8 (fallback); read as gb18030 (fallback)",)


def test_override_that_does_not_fit_falls_through_the_chain_with_a_warning() -> None:
    decoded = decode_document("<rss>南通</rss>".encode(), None, "big5")
    assert decoded.charset == "utf-8"
    assert decoded.warnings == ("parse: bytes are not big5 (source encoding override); read as utf-8 (fallback)",)


@pytest.mark.parametrize(
    ("label", "why"),
    [("bogus", "unknown"), ("utf-7", "refused"), ("base64", "not a text codec"), ("rot13", "not a text codec"),
     ("utf\x008", "nul in label")],
    ids=["unknown", "utf7_refused", "base64", "rot13", "nul"],
)
def test_unusable_label_is_ignored_with_a_warning(label: str, why: str) -> None:
    decoded = decode_document("<rss>南通</rss>".encode(), f"text/xml; charset={label}", None)
    assert decoded.charset == "utf-8"
    assert decoded.warnings == (f"parse: unknown or refused charset {label!r} (HTTP Content-Type) ignored",)


#: every byte value once: invalid in UTF-8 and GB18030, and no charset the detector settles on
UNDECODABLE = b"<rss>" + bytes(range(256)) + b"</rss>"


def test_bytes_no_candidate_decodes_raise_charset_error_naming_the_declared_charset() -> None:
    with pytest.raises(CharsetError, match=r"^parse: cannot decode as utf-8 \(also tried gb18030\)$") as caught:
        decode_document(UNDECODABLE, "text/xml; charset=utf-8", None)
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


def test_codec_that_always_fails_is_a_candidate_that_does_not_fit() -> None:
    decoded = decode_document(b"<rss/>", "text/xml; charset=undefined", None)
    assert decoded.charset == "utf-8"
    assert decoded.warnings == ("parse: bytes are not undefined (HTTP Content-Type); read as utf-8 (fallback)",)


def test_override_is_named_when_nothing_decodes() -> None:
    with pytest.raises(CharsetError, match=r"^parse: cannot decode as gb18030 \(also tried utf-8\)$"):
        decode_document(UNDECODABLE, None, "gbk")


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        ("application/rss+xml; charset=GB2312", "GB2312"),
        ("text/xml;charset='us-ascii'", "us-ascii"),
        ('application/xml; charset = "utf-8"', "utf-8"),
        ("text/html; Charset=gbk; q=1", "gbk"),
        ("application/xml", None),
        ("", None),
        (None, None),
    ],
)
def test_charset_parameter_is_read_without_quotes(content_type: str | None, charset: str | None) -> None:
    assert charset_from_content_type(content_type) == charset


@given(label=st.text(max_size=40), content_type=st.text(max_size=60), body=st.binary(max_size=200))
def test_any_label_or_body_decodes_or_raises_charset_error(label: str, content_type: str, body: bytes) -> None:
    document = f'<?xml version="1.0" encoding="{label}"?>'.encode("utf-8", "surrogatepass") + body
    try:
        decoded = decode_document(document, content_type, label or None)
    except CharsetError:
        return
    assert isinstance(decoded.text, str)


@pytest.mark.parametrize(
    ("corpus_file", "codec"),
    [("koi8r.xml", "koi8-r"), ("tis620.xml", "tis-620"), ("windows1255.xml", "cp1255")],
)
def test_unlabelled_single_byte_charsets_are_settled_by_the_detector(
    feedparser_corpus_dir: Path, corpus_file: str, codec: str
) -> None:
    body = (feedparser_corpus_dir / "illformed" / "chardet" / corpus_file).read_bytes()
    decoded = decode_document(body, None, None)
    assert decoded.charset == codec
    assert decoded.text == body.decode(codec)
    assert decoded.warnings == (f"parse: bytes are not utf-8 (fallback); read as {codec} (detected)",)


def test_declared_utf8_with_a_stray_invalid_byte_is_read_as_utf8_with_a_replacement_character() -> None:
    good = "<item><title>南通日报：区域经济观察</title></item>" * 3
    body = f"<rss>{good}<item><title>坏\udcff字</title></item></rss>".encode("utf-8", "surrogateescape")
    decoded = decode_document(body, "application/rss+xml; charset=utf-8", None)
    assert decoded.charset == "utf-8"
    assert decoded.text == f"<rss>{good}<item><title>坏\ufffd字</title></item></rss>"
    assert decoded.warnings == ("parse: 1 invalid UTF-8 sequence(s) (HTTP Content-Type) replaced by U+FFFD",)


def test_gbk_labelled_utf8_is_still_read_as_gb18030_not_repaired() -> None:
    body = "<rss><title>南通日报新闻，区域经济观察</title></rss>".encode("gbk")
    decoded = decode_document(body, "text/xml; charset=utf-8", None)
    assert decoded.charset == "gb18030"
    assert decoded.text == "<rss><title>南通日报新闻，区域经济观察</title></rss>"
