"""Read a newspaper JSON news API (kind = "json") into RawItems; the eastmoney preset gives the legacy shapes.

Pure: bytes in, records out. A source names where the records are (`items_path`) and where each field
sits in a record (`[sources.fields]`), as dotted paths; a path may list alternatives separated by `|`,
the first present wins (`infoCode|infocode`). `preset = "eastmoney"` supplies the shapes the legacy
mirror read (zning1994/finews `get_emnews.py`, in the versions that fetched article bodies):

| list endpoint                                   | records in | id         | time       | medium      | body field |
| ----------------------------------------------- | ---------- | ---------- | ---------- | ----------- | ---------- |
| rolling news `web/webapi?type=102`              | `records`  | `infoCode` | `showtime` | —           | `content`  |
| per-medium news `web/webapi?type=45`            | `nodeList` | `infocode` | `showtime` | `from`      | `text`     |
| regional markets `newmarket/web/webapi?marketType=37` | `record` | `infoCode` | `datetime` | `medianame` | `text`   |

with `title`, `digest` (prefixed `【title】`, which the legacy script cut off) and `url_w` where present.
Article bodies come from the detail endpoint (`detail_url`, fetched by enrich.py); the preset's default
is the one that script used. Some eastmoney endpoints answer JSONP (`cb({...})`); the wrapper is removed.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo

from aggregator.config.load import JsonFields, SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed, RawItem
from aggregator.parse.charset import CharsetError, decode_document
from aggregator.parse.times import to_utc

#: the article-text endpoint of get_emnews.py (later versions called the same path through the
#: author's own proxy, finews.zning.xyz); `{id}` is the list record's infoCode as given
EASTMONEY_DETAIL_URL = "http://choicewzp1.eastmoney.com/NewsData/GetNewsText.do?id={id}"
#: the page the legacy posts linked to when a record had no `url_w` (same script, NewsShare.html)
EASTMONEY_SHARE_URL = "http://choicewzp1.eastmoney.com/html_News/NewsShare.html?infoCode={id}"
EASTMONEY_ITEMS_PATH = "records|nodeList|record"
EASTMONEY_FIELDS = JsonFields(
    id="infoCode|infocode|id",
    title="title",
    published="datetime|showtime",
    medium="medianame|from",
    url="url_w",
    summary="digest",
)
#: `text` for the per-medium and market records, `content` for the rolling news
EASTMONEY_DETAIL_FIELD = "text|content"

#: used when a source without a preset leaves a field or the records path unset
GENERIC_ITEMS_PATH = "items|data|records|list|entries"
GENERIC_FIELDS = JsonFields(
    id="id|guid",
    title="title",
    published="published|date|pubDate|time",
    medium="medium|source",
    url="url|link",
    summary="summary|description|digest",
    content="content|body|html",
)
GENERIC_DETAIL_FIELD = "content|text|body|html"

#: the opening of a JSONP wrapper, `var name =` or `callback(`; the closing `)` and `;` are cut without a
#: regex: the former `(?P<json>.*?)\)?\s*;?\s*$` backtracked cubically over a run of whitespace (issue 10)
_JSONP_OPENING = re.compile(r"\s*(?:var\s+[\w$]+\s*(?P<assign>=)|[\w$.]+\s*(?P<call>\())")
#: the digest of an eastmoney record opens with the title in 【】 (get_emnews.py: digest.split("】")[-1])
_TITLE_PREFIX = re.compile(r"^\s*【[^】]*】\s*")
#: epoch values above this are milliseconds (1e11 s is in the year 5138)
_EPOCH_MILLIS_ABOVE = 10**11
#: an epoch sent as a string: 10 digits of seconds or 13 of milliseconds (2001 to 2286); 8, 12 and 14
#: digits are left to times.to_utc, which reads them as the dates they are (20220124, 202201240048)
_EPOCH_STRING = re.compile(r"\d{10}|\d{13}")


def parse_json_api(fetched: Fetched, source: SourceConfig, tz: ZoneInfo) -> ParsedFeed:
    """The records of one list document as RawItems, in the order the API gave them."""
    document, warnings = load_json(fetched, source)
    records = _find_records(document, items_path_of(source), path_given=source.items_path is not None)
    if records is None:
        raise ParseError(source.name, fetched.url, f"parse: no list of records at {items_path_of(source)!r}")
    fields = fields_of(source)
    items, skipped = [], []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            skipped.append(f"parse: record {index} is a {type(record).__name__}, not an object; skipped")
            continue
        items.append(_read_record(record, fields, source, fetched, tz))
    return ParsedFeed(items=tuple(items), warnings=(*warnings, *skipped))


def load_json(fetched: Fetched, source: SourceConfig) -> tuple[object, tuple[str, ...]]:
    """The JSON document (JSONP wrapper removed) and charset warnings; ParseError for anything else.

    Anything else is typically an HTML error or login page answered with status 200.
    """
    # RFC 8259 §8.1 says UTF-8, but the charset order of parse/charset.py (override, BOM, header,
    # UTF-8, GB18030) also reads the GBK some Chinese APIs send
    try:
        decoded = decode_document(fetched.body, fetched.headers.get("content-type"), source.encoding)
    except CharsetError as e:
        raise ParseError(source.name, fetched.url, str(e)) from e
    text = decoded.text
    # besides JSONDecodeError (a ValueError), json raises ValueError for a number over Python's digit
    # limit and RecursionError for deep nesting: both are the document's fault, not ours
    try:
        return json.loads(text), decoded.warnings
    except (ValueError, RecursionError) as first_error:
        unwrapped = _without_jsonp_wrapper(text)
        if unwrapped is not None:
            try:
                return json.loads(unwrapped), decoded.warnings
            except (ValueError, RecursionError):
                pass
        content_type = fetched.headers.get("content-type", "unknown type")
        if isinstance(first_error, json.JSONDecodeError):
            message = f"parse: the response is not JSON ({content_type}): {text[:60]!r}"
        else:  # JSON, but beyond what we read: 10,000 levels deep, a 5,000-digit number
            message = f"parse: the JSON response cannot be read ({content_type}): {_describe(first_error)}"
        raise ParseError(source.name, fetched.url, message) from first_error


def _without_jsonp_wrapper(text: str) -> str | None:
    """The JSON inside `callback( … );` or `var name = … ;`, None when `text` has no such wrapper. Linear."""
    opening = _JSONP_OPENING.match(text)
    if opening is None:
        return None
    inner = text[opening.end():].rstrip()
    inner = inner[:-1].rstrip() if inner.endswith(";") else inner
    if opening["call"] is not None and inner.endswith(")"):
        inner = inner[:-1]
    return inner


def _describe(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error)


def detail_url_for(source: SourceConfig, raw: RawItem) -> str | None:
    """The detail endpoint of one record (`{id}` filled in), or None when the source has none."""
    template = source.detail_url or (EASTMONEY_DETAIL_URL if source.preset == "eastmoney" else None)
    if template is None or not raw.explicit_id:
        return None
    return template.replace("{id}", quote(raw.explicit_id, safe=""))


def read_detail_body(fetched: Fetched, source: SourceConfig) -> str | None:
    """The article HTML in a detail response, None when the field is absent or empty."""
    field = source.detail_field or (EASTMONEY_DETAIL_FIELD if source.preset == "eastmoney" else GENERIC_DETAIL_FIELD)
    value = lookup(load_json(fetched, source)[0], field)
    return value if isinstance(value, str) and value.strip() else None


def items_path_of(source: SourceConfig) -> str:
    if source.items_path is not None:
        return source.items_path
    return EASTMONEY_ITEMS_PATH if source.preset == "eastmoney" else GENERIC_ITEMS_PATH


def fields_of(source: SourceConfig) -> JsonFields:
    """The preset's (or the generic) field paths, overridden field by field by `[sources.fields]`."""
    base = EASTMONEY_FIELDS if source.preset == "eastmoney" else GENERIC_FIELDS
    if source.fields is None:
        return base
    return base.model_copy(update=source.fields.model_dump(exclude_none=True))


def lookup(document: object, path: str) -> object:
    """The value at a dotted path (`data.list`, `items.0.title`); alternatives separated by `|`; "" = itself."""
    for alternative in path.split("|"):
        found = _walk(document, alternative.strip())
        if found is not None:
            return found
    return None


def _walk(node: object, path: str) -> object:
    for key in (key for key in path.split(".") if key):
        if isinstance(node, Mapping):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _find_records(document: object, path: str, *, path_given: bool) -> list[object] | None:
    found = document if isinstance(document, list) and not path_given else lookup(document, path)
    if isinstance(found, list):
        return found
    # an empty channel: eastmoney answers `"records": null` as readily as `[]`
    if found is None and any(_is_null_at(document, alternative) for alternative in path.split("|")):
        return []
    return None


def _is_null_at(document: object, path: str) -> bool:
    """True when the last key of `path` is present and null (`"records": null`, `"data": {"list": null}`)."""
    parent_path, _, key = path.strip().rpartition(".")
    parent = _walk(document, parent_path)
    return isinstance(parent, Mapping) and key in parent and parent[key] is None


def _read_record(
    record: Mapping[str, object], fields: JsonFields, source: SourceConfig, fetched: Fetched, tz: ZoneInfo
) -> RawItem:
    def text(path: str | None) -> str | None:
        value = lookup(record, path) if path else None
        if isinstance(value, bool) or value is None:
            return None
        stripped = str(value).strip() if isinstance(value, (str, int, float)) else ""
        return stripped or None

    explicit_id = text(fields.id)
    url = text(fields.url)
    if url:
        # a link urllib cannot parse ("http://[oops/") stays as sent: the item, not the document, is refused
        with contextlib.suppress(ValueError):
            url = urljoin(fetched.final_url, url)
    elif explicit_id and source.preset == "eastmoney":
        url = EASTMONEY_SHARE_URL.replace("{id}", quote(explicit_id, safe=""))
    summary = text(fields.summary) or ""
    if source.preset == "eastmoney":
        summary = _TITLE_PREFIX.sub("", summary)
    published_value = lookup(record, fields.published) if fields.published else None
    return RawItem(
        guid=explicit_id,
        url=url,
        title=text(fields.title) or "",
        html=text(fields.content) or "",
        summary=summary,
        published=_read_time(published_value, tz, fetched.fetched_at),
        explicit_id=explicit_id,
        medium=text(fields.medium),
    )


def _read_time(value: object, tz: ZoneInfo, now: datetime) -> datetime | None:
    """A string in the source's timezone (times.to_utc), or epoch seconds / milliseconds (also as a string)."""
    if isinstance(value, str) and _EPOCH_STRING.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, str):
        return to_utc(value, tz, now)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        seconds = value / 1000 if value > _EPOCH_MILLIS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
