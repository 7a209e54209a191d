"""Read a JSON Feed 1.0/1.1 document (https://jsonfeed.org/version/1.1) into RawItems.

A `kind = "feed"` source may answer JSON Feed instead of RSS or Atom: parse/__init__.py asks
`read_json_feed` first, and it answers None for anything that is not a JSON object whose
`version` starts with `https://jsonfeed.org/version/1`, so the RSS/Atom adapter sees every other
document as before. The mapping follows the spec's field list: `id` → guid (a number is read as
its string, as the spec asks of readers), `url` → url, `content_html` (else `content_text`,
escaped) → html, `summary` (plain text, escaped) → summary, `date_published`/`date_modified`
(RFC 3339) → published/updated, `authors[0].name` (1.1) or `author.name` (1.0) → author, `tags`.

Fields of the wrong type are treated as absent, an entry of `items` that is not an object is
skipped with a warning, and a document JSON cannot load (a 5,000-digit number, 10,000-deep
nesting) raises ParseError: the damage stays in this source.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed, RawItem
from aggregator.parse.charset import CharsetError, decode_document
from aggregator.parse.times import to_utc

VERSION_PREFIX = "https://jsonfeed.org/version/1"
#: a JSON document starts with "{" after optional white space and a UTF-8 byte order mark
_OBJECT_START_RE = re.compile(rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*\{")
#: how far into a document that JSON cannot load we look for the JSON Feed version, to name the format
_VERSION_SCAN_BYTES = 4096


def read_json_feed(fetched: Fetched, source: SourceConfig, tz: ZoneInfo) -> ParsedFeed | None:
    """The document as a ParsedFeed when it is a JSON Feed, None when it is not one at all."""
    if not _OBJECT_START_RE.match(fetched.body):
        return None
    try:
        decoded = decode_document(fetched.body, fetched.headers.get("content-type"), source.encoding)
        document = json.loads(decoded.text)
    except CharsetError as e:
        _raise_if_json_feed(fetched, source, str(e), e)
        return None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, int digit limit, nesting depth
        _raise_if_json_feed(fetched, source, f"parse: unreadable JSON Feed: {_reason(e)}", e)
        return None
    if not isinstance(document, dict) or not _is_json_feed_version(document.get("version")):
        return None
    return _to_parsed_feed(document, decoded.warnings, source, tz, fetched.fetched_at, fetched.final_url)


def _is_json_feed_version(value: object) -> bool:
    return isinstance(value, str) and value.startswith(VERSION_PREFIX)


def _raise_if_json_feed(fetched: Fetched, source: SourceConfig, message: str, cause: Exception) -> None:
    """ParseError when the text JSON cannot load says it is a JSON Feed; other JSON goes on to RSS/Atom."""
    if VERSION_PREFIX.encode() in fetched.body[:_VERSION_SCAN_BYTES]:
        raise ParseError(source.name, fetched.final_url, message) from cause


def _reason(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)[:120]


def _to_parsed_feed(
    document: Mapping[str, Any], decode_warnings: tuple[str, ...], source: SourceConfig, tz: ZoneInfo,
    now: datetime, url: str,
) -> ParsedFeed:
    entries = document.get("items", [])
    if not isinstance(entries, list):
        raise ParseError(source.name, url, f"parse: JSON Feed 'items' is {type(entries).__name__}, not a list")
    warnings = list(decode_warnings)
    items = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            warnings.append(f"parse: JSON Feed item {position} is {type(entry).__name__}, not an object; skipped")
            continue
        items.append(_to_raw_item(entry, tz, now, warnings))
    return ParsedFeed(items=tuple(items), warnings=tuple(warnings))


def _to_raw_item(entry: Mapping[str, Any], tz: ZoneInfo, now: datetime, warnings: list[str]) -> RawItem:
    guid = _id_of(entry.get("id"))
    body = _text(entry, "content_html") or html.escape(_text(entry, "content_text"), quote=False)
    summary = html.escape(_text(entry, "summary"), quote=False)
    label = guid or _text(entry, "url") or _text(entry, "title")
    return RawItem(
        guid=guid,
        url=_text(entry, "url") or None,
        title=_text(entry, "title"),
        html=body or summary,
        summary=summary if body and summary != body else "",
        published=_time_of(entry, "date_published", tz, now, label, warnings),
        updated=_time_of(entry, "date_modified", tz, now, label, warnings),
        author=_author_of(entry),
        tags=_tags_of(entry),
    )


def _tags_of(entry: Mapping[str, Any]) -> tuple[str, ...]:
    terms = (" ".join(tag.split()) for tag in _list(entry, "tags") if isinstance(tag, str))
    return tuple(dict.fromkeys(term for term in terms if term))


def _id_of(value: object) -> str | None:
    """JSON Feed 1.1: "If an id is presented as a number or other type, a JSON Feed reader must
    coerce it to a string"; objects, lists and booleans are no id at all."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value).strip() or None
    return None


def _author_of(entry: Mapping[str, Any]) -> str | None:
    """1.1's first of `authors`, else 1.0's `author`: the name as written."""
    candidates = [*_list(entry, "authors"), entry.get("author")]
    for author in candidates:
        if isinstance(author, dict):
            name = _text(author, "name")
            if name.strip():
                return name
    return None


def _time_of(
    entry: Mapping[str, Any], key: str, tz: ZoneInfo, now: datetime, label: str, warnings: list[str]
) -> datetime | None:
    raw = _text(entry, key).strip()
    if not raw:
        return None
    found = to_utc(raw, tz, now)
    if found is None:
        warnings.append(f"parse: unreadable {key} date {raw[:60]!r} in item {label[:120]!r}")
    return found


def _text(node: Mapping[str, Any], key: str) -> str:
    value = node.get(key)
    return value if isinstance(value, str) else ""


def _list(node: Mapping[str, Any], key: str) -> list[Any]:
    value = node.get(key)
    return value if isinstance(value, list) else []
