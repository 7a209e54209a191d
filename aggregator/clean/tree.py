"""Apply the site rules and the allowlist to one parsed fragment: one lxml parse, a few XPath sweeps.

No business logic here beyond what clean/rules.py and clean/sanitize.py say as data; the order of
the sweeps is the one documented in docs/cleaning.md.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from aggregator.clean.compiled import CompiledRules
from aggregator.clean.rules import (
    HIDDEN_DISPLAY_VALUES,
    HIDDEN_VISIBILITY_VALUES,
    MAX_PIXEL_SIZE_PX,
    WIDGET_MARKER_RE,
    ZERO_SIZE_VALUES,
)
from aggregator.clean.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, DROPPED_WITH_CONTENT
from aggregator.clean.urls import absolute_url, matches_host_index, strip_tracking_params

_NO_ATTRIBUTES: frozenset[str] = frozenset()
#: Raw-text elements whose text a browser shows as preformatted text.
_PREFORMATTED = frozenset({"xmp", "plaintext", "listing"})
#: Where lazy-loading pages keep the real image when `src` is missing or a placeholder; `orginial_src`
#: (sic) is eastmoney's link to the full-size original (_posts__2022-06-14-NW202206142412311033.md).
_LAZY_SRC_ATTRIBUTES = ("data-src", "data-original", "data-lazy-src", "data-actualsrc", "orginial_src")
#: Elements that vanish when nothing visible is left in them: blocks go, inline ones are unwrapped
#: so a space they held stays. Table cells and list items are structure and always stay.
_PRUNED_BLOCKS = frozenset({"p", "div", "center", "blockquote", "figure", "figcaption", "pre",
                            "h1", "h2", "h3", "h4", "h5", "h6"})
_PRUNED_INLINE = frozenset({"a", "b", "strong", "em", "i", "u", "s", "small", "mark", "sub", "sup",
                            "code", "q", "cite", "abbr", "del", "ins", "dfn", "kbd", "samp", "var"})
_EDGE_BR_CONTAINERS = ("p", "div", "center", "blockquote", "li", "td", "th", "dd", "dt", "figcaption",
                       "h1", "h2", "h3", "h4", "h5", "h6")
_PRUNED = tuple(sorted(_PRUNED_BLOCKS | _PRUNED_INLINE))
#: Elements that are something to see even without text.
_CONTENT_TAGS = frozenset({"img", "hr", "table"})
_BLANK_CHARS = " \t\n\r\f\u00a0\u3000\u200b\ufeff"
_STYLED_XPATH = etree.XPath("descendant::*[@style or @hidden]")
_CITED_XPATH = etree.XPath("descendant::*[@cite]")
#: matched against the stripped value: `\s*…\s*(?:px)?\s*` backtracked quadratically over a run of spaces
_PIXEL_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)(?:\s*px)?")
_DIMENSION_RE = re.compile(r"\d{1,5}%?")


# --- parsing ----------------------------------------------------------------------------------

_local = threading.local()


class DepthLimitError(Exception):
    """The fragment nests deeper than libxml2 builds trees (2048 levels); the caller falls back to text."""


def parse_fragment(html: str) -> etree._Element:
    """The <body> holding `html`, parsed by libxml2's forgiving HTML parser (never raises on markup)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        # one parser per thread: lxml parsers keep per-document state and are not shared across threads
        parser = _local.parser = etree.HTMLParser(encoding="utf-8", huge_tree=True, no_network=True,
                                                  remove_pis=True)
    document = etree.fromstring(("<html><body>" + html).encode("utf-8"), parser)
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        raise DepthLimitError("clean: markup nested deeper than libxml2 builds trees")
    body: etree._Element | None = document.find("body")
    if body is None:  # libxml2 always makes one for "<html><body>"; kept for type narrowing
        body = etree.SubElement(document, "body")
    return body


def serialize_children(body: etree._Element) -> str:
    """The markup inside `body` (its own tag and attributes are not part of the fragment)."""
    body.attrib.clear()
    markup = etree.tostring(body, encoding="unicode", method="html")
    # "<body>" … "</body>": libxml2 always writes both for an element named body
    return markup[len("<body>"):-len("</body>")]


# --- the sweeps ---------------------------------------------------------------------------------

def apply_rules(body: etree._Element, rules: CompiledRules, base_url: str | None) -> None:
    """Clean `body` in place: site rules first, then the allowlist; see docs/cleaning.md for the order."""
    if rules.widget_markers:
        _remove_widget_ranges(body)
    for node in list(body.iter(etree.Comment, etree.ProcessingInstruction)):
        _drop_tree(node)
    for element in list(body.iter(*DROPPED_WITH_CONTENT)):
        _drop_tree(element)
    if rules.remove is not None:
        for element in rules.remove(body):
            _drop_tree(element)
    if rules.remove_hidden:
        for element in _STYLED_XPATH(body):
            if is_hidden(element):
                _drop_tree(element)
    _clean_images(body, rules, base_url)
    _clean_links(body, rules, base_url)
    if rules.unwrap is not None:
        for element in rules.unwrap(body):
            _drop_tag(element)
    _enforce_allowlist(body)
    _prune_empty(body)


def is_hidden(element: etree._Element) -> bool:
    """Whether the element's own markup hides it: `hidden`, display:none, visibility:hidden, or a
    zero-size box with overflow:hidden (the eastmoney spacer paragraph)."""
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    if not style:
        return False
    declarations = _parse_style(style)
    if declarations.get("display") in HIDDEN_DISPLAY_VALUES:
        return True
    if declarations.get("visibility") in HIDDEN_VISIBILITY_VALUES:
        return True
    return declarations.get("overflow") == "hidden" and any(
        declarations.get(size) in ZERO_SIZE_VALUES for size in ("height", "width", "max-height", "max-width"))


def _parse_style(style: str) -> dict[str, str]:
    declarations = {}
    for declaration in style.lower().split(";"):
        name, _, value = declaration.partition(":")
        value = value.replace("!important", "").strip()
        if value:
            declarations[name.strip()] = value
    return declarations


def _remove_widget_ranges(body: etree._Element) -> None:
    """Remove what lies between a Start marker and the End marker after it on the same level.

    A range holding visible text, or a marker without its partner, is left to the widget's own
    features (chart image host, EmImageRemark, K图 alt): the widget goes, never the article (issue 3).
    """
    for marker in list(body.iter(etree.Comment)):
        if _marker_kind(marker) != "start" or marker.getparent() is None:
            continue
        inside = []
        end = marker.getnext()
        while end is not None and _marker_kind(end) is None:
            inside.append(end)
            end = end.getnext()
        if _marker_kind(end) != "end":
            continue
        if _has_text(marker.tail) or any(_has_text(_text_of(node)) or _has_text(node.tail) for node in inside):
            continue
        for node in inside:
            _drop_tree(node)


def _clean_images(body: etree._Element, rules: CompiledRules, base_url: str | None) -> None:
    for image in list(body.iter("img")):
        source = _image_source(image)
        url = _resolve_url(source, rules, base_url, allow_mailto=False) if source else None
        if (url is None
                or matches_host_index(url, rules.chart_image_hosts)
                or matches_host_index(url, rules.tracking_image_hosts)
                or rules.remove_pixels and _is_pixel(image)):
            _drop_tree(image)
            continue
        image.set("src", url)
        for dimension in ("width", "height"):
            value = image.get(dimension)
            if value is not None and not _DIMENSION_RE.fullmatch(value.strip()):
                del image.attrib[dimension]


def _image_source(image: etree._Element) -> str | None:
    source = image.get("src")
    if source and not source.strip().lower().startswith("data:"):
        return source
    for name in _LAZY_SRC_ATTRIBUTES:
        candidate = image.get(name)
        if candidate and candidate.strip():
            return candidate
    return source


def _is_pixel(image: etree._Element) -> bool:
    sizes = [image.get("width"), image.get("height")]
    style = image.get("style")
    if style:
        declarations = _parse_style(style)
        sizes += [declarations.get("width"), declarations.get("height")]
    for size in sizes:
        match = _PIXEL_SIZE_RE.fullmatch(size.strip()) if size else None
        if match is not None and float(match.group(1)) <= MAX_PIXEL_SIZE_PX:
            return True
    return False


def _clean_links(body: etree._Element, rules: CompiledRules, base_url: str | None) -> None:
    for link in list(body.iter("a")):
        href = link.get("href")
        url = _resolve_url(href, rules, base_url, allow_mailto=True) if href is not None else None
        if url is None or matches_host_index(url, rules.quote_link_hosts):
            _drop_tag(link)
            continue
        link.set("href", url)
    for element in _CITED_XPATH(body):
        url = _resolve_url(element.get("cite", ""), rules, base_url, allow_mailto=False)
        if url is None:
            del element.attrib["cite"]
        else:
            element.set("cite", url)


def _resolve_url(url: str, rules: CompiledRules, base_url: str | None, *, allow_mailto: bool) -> str | None:
    """`url` absolute and without tracking parameters, or None when it is unsafe or unusable here.

    Only a link can be mailto:; an image or a quotation source cannot be fetched from one.
    """
    resolved = absolute_url(url, base_url)
    if resolved is None or not allow_mailto and resolved.startswith("mailto:"):
        return None
    return strip_tracking_params(resolved) if rules.strip_tracking_params else resolved


def _enforce_allowlist(body: etree._Element) -> None:
    unwrap = []
    for element in body.iter():
        if element is body:
            continue
        tag = element.tag
        if tag in _PREFORMATTED:
            element.tag = tag = "pre"
        if tag not in ALLOWED_TAGS:
            unwrap.append(element)
            continue
        allowed = ALLOWED_ATTRIBUTES.get(tag, _NO_ATTRIBUTES)
        attributes = element.attrib
        if any(name not in allowed for name in attributes):
            # rebuilt rather than deleted one by one: lxml refuses to address names like '{"'
            kept = [(name, value) for name, value in attributes.items() if name in allowed]
            attributes.clear()
            for name, value in kept:
                attributes[name] = value
    for element in reversed(unwrap):
        _drop_tag(element)


def _prune_empty(body: etree._Element) -> None:
    """Remove elements left with nothing to see, then `<br>`s at the edges of a block."""
    for element in list(body.iter(*_PRUNED)):
        if _is_empty(element):
            if element.tag in _PRUNED_BLOCKS:
                _drop_tree(element)
            else:
                _drop_tag(element)
    for container in [body, *body.iter(*_EDGE_BR_CONTAINERS)]:
        while len(container) and container[0].tag == "br" and not _has_text(container.text):
            _drop_tree(container[0])
        while len(container) and container[-1].tag == "br" and not _has_text(container[-1].tail):
            _drop_tree(container[-1])


# --- tree helpers (as lxml.html's drop_tree / drop_tag, for plain etree elements) --------------

def _drop_tree(node: etree._Element) -> None:
    """Remove `node` and its content, keeping the text that follows it."""
    parent = node.getparent()
    if parent is None:
        return
    if node.tail:
        _append_text_before(node, node.tail)
    parent.remove(node)


def _drop_tag(element: etree._Element) -> None:
    """Replace `element` by its text and children."""
    parent = element.getparent()
    if parent is None:
        return
    if element.text:
        _append_text_before(element, element.text)
    if element.tail:
        if len(element):
            last = element[-1]
            last.tail = (last.tail or "") + element.tail
        else:
            _append_text_before(element, element.tail)
    index = parent.index(element)
    parent[index:index + 1] = list(element)


def _append_text_before(node: etree._Element, text: str) -> None:
    previous = node.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + text
    else:
        parent = node.getparent()
        assert parent is not None
        parent.text = (parent.text or "") + text


def _text_of(node: etree._Element) -> str:
    return "" if isinstance(node, etree._Comment) else str(node.xpath("string()"))


def _is_empty(element: etree._Element) -> bool:
    """No text and no image, rule or table anywhere inside (the element's own tail is outside it)."""
    if _has_text(element.text):
        return False
    for descendant in element.iterdescendants():
        if descendant.tag in _CONTENT_TAGS or _has_text(descendant.text) or _has_text(descendant.tail):
            return False
    return True


def _marker_kind(node: etree._Element | None) -> str | None:
    """"start" or "end" for an EM_StockImg marker comment, else None."""
    if not isinstance(node, etree._Comment):
        return None
    match = WIDGET_MARKER_RE.match(node.text or "")
    return match.group(1).lower() if match else None


def _has_text(text: str | None) -> bool:
    return bool(text and text.strip(_BLANK_CHARS))
