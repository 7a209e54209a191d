"""Read an RSS 0.9x/1.0/2.0 or Atom 0.3/1.0 document (kind = "feed") into RawItems through feedparser.

The bytes go through our own steps before feedparser sees them: charset.decode_document chooses
the charset, xml_safety.strip_prolog drops the DTD, and feedparser gets UTF-8 bytes in a BytesIO
(never a string it could take for a URL or a file name) behind our own declaration
`<?xml version="1.0" encoding="utf-8"?>` and a matching Content-Type, so its own charset rules
(RFC 3023 us-ascii defaults) cannot undo the decision. Sanitizing and relative-URI resolution are
off: clean/ sanitizes last and resolves URLs against the item's page (STYLE §6.8).

Readable vs unreadable: a document feedparser recognises as RSS/Atom (`version`) is ingested,
malformed or not, even when its loose parser finds no item in it (a truncated `<rss><channel>`);
its problems become ParsedFeed.warnings. So is Microsoft's CDF (a `<CHANNEL>` root with
`<ITEM HREF>` children, 1997), which feedparser reads without naming a version. Anything else (an
HTML error page, JSON, an empty body, garbage) raises ParseError. feedparser's FeedParserDict is
read with plain dict access, bypassing its alias map (which warns when `updated` silently falls back
to `published`).
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed, RawItem
from aggregator.parse.charset import CharsetError, decode_document
from aggregator.parse.fast_feed import read_feed
from aggregator.parse.times import to_utc
from aggregator.parse.xml_safety import strip_prolog

_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'
#: what feedparser is told the response was: the bytes we hand it are always UTF-8 XML
_RESPONSE_HEADERS = {"content-type": "application/xml; charset=utf-8"}
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPE = "text/plain"
#: the root of a Channel Definition Format document (https://www.w3.org/TR/NOTE-CDFsubmit.html)
_CDF_ROOT_RE = re.compile(r"<channel[\s>]", re.IGNORECASE)


def parse_feed(fetched: Fetched, source: SourceConfig, tz: ZoneInfo, *, fast_path: bool = True) -> ParsedFeed:
    """One fetched RSS/Atom document as a ParsedFeed; ParseError when it is not a readable feed.

    `fast_path=False` sends every document through feedparser (the differential test compares the two).
    """
    try:
        decoded = decode_document(fetched.body, fetched.headers.get("content-type"), source.encoding)
    except CharsetError as e:
        raise ParseError(source.name, fetched.final_url, str(e)) from e
    stripped = strip_prolog(decoded.text)
    warnings = list(decoded.warnings)
    warnings.extend(
        f"parse: DTD removed unread, its entities are not expanded: {declaration}"
        for declaration in stripped.removed
        if "[" in declaration or "ENTITY" in declaration.upper()
    )
    if not stripped.text.strip():
        reason = "a declaration never ends" if stripped.truncated else "no root element"
        raise ParseError(source.name, fetched.final_url, f"parse: not an RSS or Atom document ({reason})")

    fast = read_feed(stripped.text) if fast_path else None
    channel: Mapping[str, Any]
    entries: list[Mapping[str, Any]]
    if fast is not None:
        channel, entries = fast.channel, list(fast.entries)
    else:
        channel, entries, problem, version = _read_leniently(stripped.text, stripped.prolog_lines)
        if not version and not _is_cdf(stripped.text):
            detail = f": {problem}" if problem else ""
            raise ParseError(source.name, fetched.final_url, f"parse: not an RSS or Atom document{detail}")
        if problem is not None:
            # what feedparser's loose parser recognises is read, even with nothing in it (issue 10 §7:
            # "every document feedparser can read, we read"); the warning tells the operator
            warnings.append(f"parse: malformed feed read leniently: {problem}")

    items = tuple(_to_raw_item(entry, tz, fetched.fetched_at, warnings) for entry in entries)
    return ParsedFeed(
        items=items,
        warnings=tuple(warnings),
        ttl_minutes=_ttl_minutes(channel),
    )


def _is_cdf(text: str) -> bool:
    return _CDF_ROOT_RE.match(text) is not None


def _read_leniently(
    text: str, prolog_lines: int
) -> tuple[Mapping[str, Any], list[Mapping[str, Any]], str | None, str]:
    """feedparser's channel, entries, its complaint when the document is malformed, and the format
    it recognised ("" for none)."""
    import feedparser  # the lenient path only: a pass of well-formed feeds never loads it

    result = feedparser.parse(
        # the dropped prolog's line breaks are kept so "<unknown>:12:5: …" points at the source's line 12
        io.BytesIO((_DECLARATION + "\n" * prolog_lines + text).encode("utf-8")),
        response_headers=_RESPONSE_HEADERS,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    problem = str(result["bozo_exception"]) if result["bozo"] else None
    return _plain(result["feed"]), _plain(result["entries"]), problem, str(result.get("version") or "")


def _to_raw_item(entry: Mapping[str, Any], tz: ZoneInfo, now: datetime, warnings: list[str]) -> RawItem:
    guid = _string(entry, "id")
    url = _string(entry, "link")
    if entry.get("guidislink") and not _is_absolute_url(url):
        # feedparser copies a guid into the link when there is no <link> and isPermaLink is not
        # "false" (RSS 2.0 default); Chinese CMSes put bare ids there ("NW2022…"), not URLs
        url = None
    body = _richest_body(entry)
    summary = _html_of(entry.get("summary_detail"))
    label = guid or url or _text_of(entry, "title")
    return RawItem(
        guid=guid,
        url=url,
        title=_text_of(entry, "title"),
        html=body or summary,
        summary=summary if body and summary != body else "",
        published=_time_of(entry, "published", tz, now, label, warnings),
        updated=_time_of(entry, "updated", tz, now, label, warnings),
        author=_author_of(entry),
        tags=_tags_of(entry),
    )


def _richest_body(entry: Mapping[str, Any]) -> str:
    """The longest HTML content (content:encoded, atom:content), else a plain-text one as HTML."""
    contents: list[Mapping[str, Any]] = entry.get("content") or []
    html_bodies = [c.get("value") or "" for c in contents if c.get("type") in _HTML_TYPES]
    if any(html_bodies):
        return max(html_bodies, key=len)
    return next((body for body in map(_html_of, contents) if body), "")


def _html_of(detail: Mapping[str, Any] | None) -> str:
    """A content or summary element as HTML: markup as sent, plain text escaped, other types none."""
    if not detail:
        return ""
    value: str = detail.get("value") or ""
    kind = detail.get("type")
    if kind in _HTML_TYPES:
        return value
    if kind == _TEXT_TYPE:
        return html.escape(value, quote=False)
    # out-of-line (src=…) or binary content (base64 images) is not an article body
    return ""


def _text_of(node: Mapping[str, Any], key: str) -> str:
    """A text construct as the source wrote it, entities decoded by the XML parser.

    Left raw whatever the declared type (feedparser types RSS titles text/plain, yet Chinese CMSes
    put escaped HTML in them, "&lt;b&gt;南通&lt;/b&gt;"): items.build_item makes it plain text.
    """
    value = node.get(key)
    return value if isinstance(value, str) else ""


def _time_of(
    entry: Mapping[str, Any], key: str, tz: ZoneInfo, now: datetime, label: str, warnings: list[str]
) -> datetime | None:
    raw = entry.get(key)
    if not isinstance(raw, str) or not raw.strip():
        return None
    found = to_utc(raw, tz, now)
    if found is None:
        warnings.append(f"parse: unreadable {key} date {raw.strip()[:60]!r} in item {label[:120]!r}")
    return found


def _author_of(entry: Mapping[str, Any]) -> str | None:
    """The author's name as written; RSS <author> is "email (Name)", whose name feedparser splits out."""
    detail = entry.get("author_detail")
    name = detail.get("name") if isinstance(detail, Mapping) else None
    if isinstance(name, str) and name.strip():
        return name
    return _text_of(entry, "author") or None


def _is_absolute_url(value: str | None) -> bool:
    if value is None:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # "http://[::1" and other unparseable netlocs
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _tags_of(entry: Mapping[str, Any]) -> tuple[str, ...]:
    terms = (" ".join(str(tag.get("term") or tag.get("label") or "").split()) for tag in entry.get("tags") or ())
    return tuple(dict.fromkeys(term for term in terms if term))


def _string(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _plain(value: Any) -> Any:
    """feedparser's result as plain dicts and lists, so no key goes through its alias map."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in dict.items(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _ttl_minutes(channel: Mapping[str, Any]) -> int | None:
    """RSS 2.0 <ttl>: "number of minutes that indicates how long a channel can be cached"."""
    raw = channel.get("ttl")
    if isinstance(raw, str) and raw.strip().isdigit() and int(raw) > 0:
        return int(raw)
    return None
