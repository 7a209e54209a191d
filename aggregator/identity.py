"""Decide an item's article_id (the infoCode) from what the source said; pure.

The same eastmoney article reaches us as `NW202201242257831752` from a medium's channel, as
`202201242257831752` from the rolling-news channel, and under several URL shapes
(../shared/corpus/legacy-posts/README.md, "The same article id in more than one file"). The chain,
first match wins:

1. the source's explicit id field (JSON `infoCode`);
2. an `infoCode` query parameter (name matched case-insensitively) in the link or the GUID;
3. an eastmoney article URL shape: `/a/<18 digits>.html` or `/news/<column>,<18 digits>.html`;
4. the GUID: an eastmoney infoCode GUID (`NW<18 digits>`, as Chinese CMSes put in `<guid>`) is that
   article's id; a URL GUID is canonicalised like a link; any other GUID is only unique within its
   source, so it is namespaced `guid:<source>:<guid>`. A bare 18-digit GUID stays namespaced: other
   CMSes number items with 18-digit ids too (snowflake ids), and two sources' items must not merge;
5. the canonical link (tracking parameters and fragment removed) as `url:<link>`;
6. a hash of title and body, namespaced by source, as `hash:<source>:<hex>`. A feed's title (RSS, Atom,
   JSON Feed) is hashed as the plain text it stands for (clean.clean_text): its parser read it so when
   these ids were first given, and white space or markup the feed adds later does not make a new
   article. A JSON API or HTML list title is hashed as parsed (stripped; an element's text).

Eastmoney ids are normalised so `NW<18 digits>` and `<18 digits>` name one article: `NW<18 digits>`.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from aggregator.clean.text import clean_text
from aggregator.clean.urls import is_http_url, strip_tracking_params
from aggregator.errors import ItemError
from aggregator.models import RawItem

#: an eastmoney news infoCode: optional NW prefix and 18 digits (yyyymmdd + 10)
_EASTMONEY_ID = re.compile(r"^(?:NW)?(\d{18})$", re.IGNORECASE)
#: other infoCode families (announcements `AN…`, research `AP…`) are kept as given, upper-cased
_INFO_CODE = re.compile(r"^[A-Z]{2}\d{12,24}$", re.IGNORECASE)
#: a GUID naming an eastmoney article: the NW prefix is what makes it safe to share across sources
_EASTMONEY_GUID = re.compile(r"^NW(\d{18})$", re.IGNORECASE)
#: /a/202201242257831752.html and /news/1344,202201242257831752.html (column list in the corpus README)
_EASTMONEY_PATH = re.compile(r"/(?:a/|news/\d+,)(\d{18})\.html?$", re.IGNORECASE)


def article_id(raw: RawItem, source_name: str, *, from_feed: bool = False) -> str:
    """The stable article id of `raw` (see the module docstring for the chain); `from_feed` for the
    items of a `kind = "feed"` source."""
    found = _article_id(raw, source_name, from_feed)
    if any(char < " " or char == "\x7f" for char in found):
        # a store cannot hold a NUL in a key (PostgreSQL refuses it), nor can a feed's XML
        raise ItemError(source_name, raw.guid, f"identity: the item's id has control characters: {found!r}")
    return found


def _article_id(raw: RawItem, source_name: str, from_feed: bool) -> str:
    if raw.explicit_id and (code := normalise_info_code(raw.explicit_id)):
        return code
    for candidate in (raw.url, raw.guid):
        if candidate and (code := _id_from_url(candidate)):
            return code
    if raw.guid and raw.guid.strip():
        guid = raw.guid.strip()
        if match := _EASTMONEY_GUID.match(guid):
            return "NW" + match.group(1)
        if is_http_url(guid):
            return "url:" + canonical_url(guid)
        return f"guid:{source_name}:{guid}"
    if raw.url and is_http_url(raw.url):
        return "url:" + canonical_url(raw.url)
    title = clean_text(raw.title) if from_feed else raw.title
    if title.strip() or raw.html.strip():
        digest = hashlib.sha256(f"{title}\x00{raw.html}".encode()).hexdigest()[:24]
        return f"hash:{source_name}:{digest}"
    raise ItemError(source_name, raw.guid, "identity: item has no id, GUID, link, title or body")


def normalise_info_code(value: str) -> str | None:
    """`NW202201242257831752` / `202201242257831752` → `NW202201242257831752`; other codes upper-cased."""
    value = value.strip()
    if match := _EASTMONEY_ID.match(value):
        return "NW" + match.group(1)
    if _INFO_CODE.match(value):
        return value.upper()
    return None


def canonical_url(url: str) -> str:
    """The link without tracking parameters or fragment, with a lower-case scheme and host."""
    parts = urlsplit(strip_tracking_params(url.strip()))
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _id_from_url(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower() == "infocode" and (code := normalise_info_code(value)):
            return code
    if "eastmoney" in parts.netloc.lower() and (match := _EASTMONEY_PATH.search(parts.path)):
        return "NW" + match.group(1)
    return None

