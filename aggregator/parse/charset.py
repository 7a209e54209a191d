"""Turn a fetched document's bytes into text, choosing the charset by a fixed, documented order.

Candidates, in order; the first one that decodes the whole body strictly wins:
  1. the source's `encoding` override from feeds.toml (the operator knows better than the server)
  2. a byte order mark, or the UTF-16/UTF-32 signature of "<?" (XML 1.0 Appendix F)
  3. the charset parameter of the HTTP Content-Type (RFC 7303 §3.2: it beats the XML declaration)
  4. the encoding in the XML declaration
  5. UTF-8, then GB18030 (what an undeclared document from a Chinese newspaper site is in practice)
  6. what a detector (charset-normalizer) makes of the first 64 KiB: KOI8-R, TIS-620, windows-1255 …
     sent with no label at all, as feedparser's `illformed/chardet/` documents are

One more rule, before GB18030 is tried: a document *declared* UTF-8 (override, BOM, header or XML
declaration) whose bytes are UTF-8 but for a few stray invalid sequences (at most one per
`MOSTLY_UTF8_RATIO` valid non-ASCII characters) is read as UTF-8 with U+FFFD in their place, so
the damage stays in the item that holds the bad bytes; read as GB18030 or by the detector, every
character of the document would be wrong. A GBK document labelled UTF-8 has almost no valid
multi-byte UTF-8 sequences and still goes on to GB18030.

GB2312 and GBK labels are read as GB18030, a superset of both, as the WHATWG Encoding Standard
does (https://encoding.spec.whatwg.org/#names-and-labels): Chinese servers label GBK or GB18030
text "gb2312" and a strict GB2312 decoder would reject it. A declared charset that does not fit
the bytes is not fatal: the next candidate is tried and the mismatch is reported as a warning.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

#: labels read with a superset codec (WHATWG "gbk" labels, decoded with the gb18030 decoder)
SUPERSET_CODECS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "csiso58gb231280": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "iso-ir-58": "gb18030",
    "chinese": "gb18030",
}
#: labels refused outright: UTF-7 smuggles markup past filters, so browsers dropped it
#: (https://html.spec.whatwg.org/multipage/parsing.html#character-encodings)
REFUSED_CODECS = frozenset({"utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7"})
FALLBACK_CODECS = ("utf-8", "gb18030")
#: a declared-UTF-8 document is read with replacement characters when it has at least this many
#: valid non-ASCII characters per invalid sequence
MOSTLY_UTF8_RATIO = 20
#: the detector reads this much of the body: enough to settle a charset, bounded in time
DETECTOR_SAMPLE_BYTES = 64 * 1024

#: byte order marks, longest first (UTF-32 LE's mark begins with UTF-16 LE's)
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
#: how "<?" (or "<" for UTF-32) starts a document without a BOM, XML 1.0 Appendix F.1
_SIGNATURES = (
    (b"\x00\x00\x00\x3c", "utf-32-be"),
    (b"\x3c\x00\x00\x00", "utf-32-le"),
    (b"\x00\x3c\x00\x3f", "utf-16-be"),
    (b"\x3c\x00\x3f\x00", "utf-16-le"),
)
_CHARSET_PARAM_RE = re.compile(r"""charset\s*=\s*["']?\s*([^"';,\s]+)""", re.IGNORECASE)
_XML_ENCODING_RE = re.compile(r"""\A\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']\s*([^"'\s]+)""")
#: `<meta charset=…>` / `<meta http-equiv content="…; charset=…">` in the first bytes (HTML §4.2.5.5:
#: the prescan looks at the first 1024 bytes)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_META_SCAN_BYTES = 1024
#: the XML declaration lies within the first few hundred bytes
_DECLARATION_SCAN_BYTES = 1024


class CharsetError(ValueError):
    """No candidate charset decodes the bytes; the message is ready for a ParseError."""


@dataclass(frozen=True, slots=True)
class DecodedDocument:
    """A document's text, without its byte order mark."""

    text: str
    #: the codec that decoded it, e.g. "gb18030"
    charset: str
    #: declared charsets that did not fit the bytes ("parse: …")
    warnings: tuple[str, ...] = ()


def decode_document(body: bytes, content_type: str | None, override: str | None) -> DecodedDocument:
    """Decode `body`; raises CharsetError when even the fallbacks fail."""
    warnings: list[str] = []
    tried: list[tuple[str, str]] = []
    failure: UnicodeError | None = None
    for label, where in _candidates(body, content_type, override):
        codec = _codec_for(label)
        if codec is None:
            warnings.append(f"parse: unknown or refused charset {label!r} ({where}) ignored")
            continue
        if any(codec == done for done, _ in tried):
            continue
        payload = body[len(_bom_of(body, codec)) :]
        try:
            text = payload.decode(codec)
        except UnicodeError as e:  # UnicodeDecodeError, or the "undefined" codec's plain UnicodeError
            failure = e
            tried.append((codec, where))
            repaired = _mostly_utf8(payload) if codec == "utf-8" and where != "fallback" else None
            if repaired is None:
                continue
            text, bad = repaired
            warnings.append(f"parse: {bad} invalid UTF-8 sequence(s) ({where}) replaced by U+FFFD")
            return DecodedDocument(text=text.removeprefix("\ufeff"), charset=codec, warnings=tuple(warnings))
        if tried:
            first, first_where = tried[0]
            warnings.append(f"parse: bytes are not {first} ({first_where}); read as {codec} ({where})")
        return DecodedDocument(text=text.removeprefix("\ufeff"), charset=codec, warnings=tuple(warnings))
    detected = _detect(body)
    if detected is not None:
        text, codec = detected
        first, first_where = tried[0]
        warnings.append(f"parse: bytes are not {first} ({first_where}); read as {codec} (detected)")
        return DecodedDocument(text=text, charset=codec, warnings=tuple(warnings))
    also = f" (also tried {', '.join(codec for codec, _ in tried[1:])})" if len(tried) > 1 else ""
    raise CharsetError(f"parse: cannot decode as {tried[0][0]}{also}") from failure


def decode_html(body: bytes, content_type: str | None, override: str | None) -> DecodedDocument:
    """Decode an HTML page or fragment: as `decode_document`, with a `<meta>` charset ranked after the
    BOM and the HTTP header (HTML's own order). Raises CharsetError when even the fallbacks fail."""
    if override is None and _sniff_bom(body) is None and charset_from_content_type(content_type) is None:
        meta = _META_CHARSET.search(body[:_META_SCAN_BYTES])
        override = meta.group(1).decode("ascii") if meta else None
    return decode_document(body, content_type, override)


def _mostly_utf8(payload: bytes) -> tuple[str, int] | None:
    """The payload as UTF-8 with U+FFFD for its invalid sequences, when they are few; else None."""
    text = payload.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - payload.count("\ufffd".encode())
    valid_non_ascii = sum(1 for char in text if char > "\x7f") - bad
    if 0 < bad and bad * MOSTLY_UTF8_RATIO <= valid_non_ascii:
        return text, bad
    return None


def _detect(body: bytes) -> tuple[str, str] | None:
    """The body decoded in the charset charset-normalizer settles on from its first bytes, or None."""
    from charset_normalizer import from_bytes  # loaded only for the rare document nothing else decodes

    best = from_bytes(body[:DETECTOR_SAMPLE_BYTES]).best()
    codec = _codec_for(best.encoding) if best is not None else None
    if codec is None:
        return None
    try:
        return body.decode(codec).removeprefix("\ufeff"), codec
    except UnicodeError:  # the sample fitted, the rest of the body does not
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type value, quotes removed."""
    if not content_type:
        return None
    match = _CHARSET_PARAM_RE.search(content_type)
    return match.group(1) if match else None


def _candidates(body: bytes, content_type: str | None, override: str | None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if override:
        found.append((override, "source encoding override"))
    sniffed = _sniff_bom(body)
    if sniffed:
        found.append(sniffed)
    declared = charset_from_content_type(content_type)
    if declared:
        found.append((declared, "HTTP Content-Type"))
    in_document = _declared_in_document(body, sniffed[0] if sniffed else None)
    if in_document:
        found.append((in_document, "XML declaration"))
    found.extend((codec, "fallback") for codec in FALLBACK_CODECS)
    return found


def _sniff_bom(body: bytes) -> tuple[str, str] | None:
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec, "byte order mark"
    for signature, codec in _SIGNATURES:
        if body.startswith(signature):
            return codec, "XML signature"
    return None


def _bom_of(body: bytes, codec: str) -> bytes:
    for bom, bom_codec in _BOMS:
        if bom_codec == codec and body.startswith(bom):
            return bom
    return b""


def _declared_in_document(body: bytes, sniffed_codec: str | None) -> str | None:
    """The XML declaration's encoding, read in the sniffed codec or as ASCII-compatible bytes."""
    head = body[:_DECLARATION_SCAN_BYTES].decode(sniffed_codec or "latin-1", errors="replace")
    match = _XML_ENCODING_RE.match(head.removeprefix("\ufeff"))
    if match is None:
        return None
    label = match.group(1)
    # "utf-16" in a document already sniffed as UTF-16 names the family, not a byte order
    if sniffed_codec and _codec_for(label) in ("utf-16", "utf-32"):
        return sniffed_codec
    return label


def _codec_for(label: str) -> str | None:
    """The Python codec for a charset label, None for unknown, refused or non-text codecs."""
    name = label.strip().strip("\"'").lower()
    if name in REFUSED_CODECS:
        return None
    name = SUPERSET_CODECS.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return None
    codec = SUPERSET_CODECS.get(info.name, info.name)
    # codecs such as base64 or zlib are registered too but are bytes-to-bytes transforms
    try:
        b"<".decode(codec)
    except LookupError:
        return None
    except UnicodeError:
        pass  # a text codec that cannot read one byte alone (UTF-16) or at all ("undefined")
    return None if codec in REFUSED_CODECS else codec
