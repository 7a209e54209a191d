"""Read a newspaper's HTML list page (kind = "html") into RawItems with the source's CSS selectors.

Pure: a fetched page in, items out. Per item (`item_selector`, matched in the page): the link is
`link_selector` inside it, else the item itself when it is an `<a href>`, else its first `<a href>`;
the title is `title_selector` (else the link's text, else its `title` attribute); the date is
`date_selector`: a `datetime` attribute when the element has one (HTML `<time>`), else its text.
Links resolve against `<base href>` or the page's final URL. Pagination and article bodies need more
requests, so they are enrich.py's: `next_page_url` names the next list page (`next_page_selector`),
`extract_body` cuts the body out of an article page (`body_selector`).
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urldefrag, urljoin
from zoneinfo import ZoneInfo

import lxml.etree
import lxml.html

from aggregator.config.load import SourceConfig
from aggregator.errors import ParseError
from aggregator.models import Fetched, ParsedFeed, RawItem
from aggregator.parse.charset import CharsetError, decode_html
from aggregator.parse.times import to_utc

#: a date inside label text ("发布时间：2022-01-24 00:48", "来源：南通日报 01-24 00:48"): the substring
#: is found here and read by times.to_utc, which wants the date alone
_DATE_IN_TEXT = re.compile(
    r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?(?:\s*\d{1,2}[:时]\d{1,2}(?:[:分]\d{1,2})?)?"
    r"|\d{1,2}月\d{1,2}日(?:\s*\d{1,2}:\d{2})?"
    r"|\d{1,2}-\d{1,2}\s+\d{1,2}:\d{2}"
    # at most 6 digits: an unbounded \d+ made a long run of digits quadratic (every start rescans the run)
    r"|\d{1,6}\s*(?:秒|分钟|分|个小时|小时|天)\s*前|刚刚"
)
_NOT_LINKS = ("javascript:", "mailto:", "tel:", "#")


def parse_html_list(fetched: Fetched, source: SourceConfig, tz: ZoneInfo) -> ParsedFeed:
    """The items of one list page, in page order; items without a link are skipped with a warning."""
    root, warnings = read_html(fetched, source)
    base_url = _base_url(root, fetched.final_url)
    items: list[RawItem] = []
    found = _select(root, source.item_selector or "")
    if not found:
        warnings.append(f"parse: no element matches item_selector {source.item_selector!r}")
    for index, element in enumerate(found):
        link = _find_link(element, source)
        url = _resolve(base_url, link.get("href")) if link is not None else None
        if url is None:
            warnings.append(f"parse: list item {index} has no link; skipped")
            continue
        title = _title(element, link, source)
        published = _date(element, source, fetched, tz)
        items.append(RawItem(url=url, title=title, published=published))
    return ParsedFeed(items=tuple(items), warnings=tuple(warnings))


def next_page_url(fetched: Fetched, source: SourceConfig) -> str | None:
    """The absolute URL `next_page_selector` points at, None when absent or pointing back at this page."""
    if not source.next_page_selector:
        return None
    root, _ = read_html(fetched, source)
    for element in _select(root, source.next_page_selector):
        link = element if element.get("href") is not None else _first_link(element)
        url = _resolve(_base_url(root, fetched.final_url), link.get("href")) if link is not None else None
        if url is not None and url not in (urldefrag(fetched.url)[0], urldefrag(fetched.final_url)[0]):
            return url
    return None


def extract_body(fetched: Fetched, source: SourceConfig) -> str | None:
    """The HTML of every element `body_selector` matches in an article page, None when nothing matches."""
    if not source.body_selector:
        return None
    root, _ = read_html(fetched, source)
    parts = [
        lxml.html.tostring(element, encoding="unicode", with_tail=False)
        for element in _select(root, source.body_selector)
    ]
    body = "".join(parts)
    return body if body.strip() else None


def read_html(fetched: Fetched, source: SourceConfig) -> tuple[lxml.html.HtmlElement, list[str]]:
    """The page as an lxml tree (charset: override, BOM, header, `<meta>`, UTF-8, GB18030) and decode warnings."""
    try:
        decoded = decode_html(fetched.body, fetched.headers.get("content-type"), source.encoding)
    except CharsetError as e:
        raise ParseError(source.name, fetched.url, str(e)) from e
    text = decoded.text
    if text.lstrip().startswith("<?xml"):
        # lxml refuses a str that still carries an encoding declaration (XHTML pages)
        text = text[text.index("?>") + 2 :] if "?>" in text else ""
    if not text.strip():
        raise ParseError(source.name, fetched.url, "parse: the HTML page is empty")
    try:
        root = lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError) as e:
        raise ParseError(source.name, fetched.url, "parse: the HTML page cannot be read") from e
    return root, list(decoded.warnings)


def _select(root: lxml.html.HtmlElement, selector: str) -> list[lxml.html.HtmlElement]:
    """The elements `selector` matches; feeds.toml's load checked that it translates."""
    return list(root.cssselect(selector))


def _find_link(
    element: lxml.html.HtmlElement, source: SourceConfig
) -> lxml.html.HtmlElement | None:
    if source.link_selector:
        for found in _select(element, source.link_selector):
            link = found if found.get("href") is not None else _first_link(found)
            if link is not None:
                return link
        return None
    if element.tag == "a" and element.get("href") is not None:
        return element
    return _first_link(element)


def _first_link(element: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    for link in element.iter("a"):
        if link.get("href") is not None:
            return link
    return None


def _title(
    element: lxml.html.HtmlElement, link: lxml.html.HtmlElement | None, source: SourceConfig
) -> str:
    if source.title_selector:
        for found in _select(element, source.title_selector):
            if title := _text(found) or (found.get("title") or "").strip():
                return title
    if link is None:
        return ""
    return _text(link) or (link.get("title") or "").strip()


def _date(element: lxml.html.HtmlElement, source: SourceConfig, fetched: Fetched, tz: ZoneInfo) -> datetime | None:
    if not source.date_selector:
        return None
    for found in _select(element, source.date_selector):
        for value in (found.get("datetime"), _text(found)):
            if not value:
                continue
            published = to_utc(value, tz, fetched.fetched_at)
            if published is None and (inside := _DATE_IN_TEXT.search(value)):
                published = to_utc(inside.group(), tz, fetched.fetched_at)
            if published is not None:
                return published
    return None


def _base_url(root: lxml.html.HtmlElement, page_url: str) -> str:
    base = root.find(".//base[@href]")
    try:
        return urljoin(page_url, (base.get("href") or "").strip()) if base is not None else page_url
    except ValueError:  # a <base> urllib cannot parse ("http://[oops/") is ignored, as browsers do
        return page_url


def _resolve(base_url: str, href: str | None) -> str | None:
    href = (href or "").strip()
    if not href or href.lower().startswith(_NOT_LINKS):
        return None
    try:
        return urldefrag(urljoin(base_url, href))[0]
    except ValueError:  # kept as sent: the item, not the page, is refused for it (aggregator/isolation.py)
        return href


def _text(element: lxml.html.HtmlElement) -> str:
    return " ".join(element.text_content().split())
