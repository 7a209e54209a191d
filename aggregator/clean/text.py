"""Plain text from markup: a clean title (`clean_text`) and what a reader sees of a body (`visible_text`)."""

from __future__ import annotations

import html as html_lib
import re

from lxml import etree

from aggregator.clean.sanitize import DROPPED_WITH_CONTENT
from aggregator.clean.tree import DepthLimitError, is_hidden, parse_fragment

_COMMENT_RE = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_SCRIPT_RE = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|$)", re.DOTALL | re.IGNORECASE)
#: `[^<>]`, not `[^>]`: over "<p<p<p…" without a `>` the latter rescanned the rest of the text from every `<p`
_BREAK_RE = re.compile(r"<br\s*/?>|</?p\b[^<>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>|<\?[^<>]*>")
# C0/C1 controls other than whitespace, lone surrogates, BOM and zero-width space
_INVISIBLE_RE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufeff\u200b]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# CSS white-space collapsing (CSS Text 3 §4.1.1) only applies to these: NBSP and U+3000 stay visible
_COLLAPSIBLE_RE = re.compile(r"[ \t\n\r\f]+")

#: Elements that start a new line when rendered (HTML "Rendering" §15.3.3, flow content blocks).
BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hgroup", "hr", "li", "listing", "main", "nav", "ol", "p", "plaintext", "pre", "section", "summary",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "xmp", "caption",
})


def clean_text(text: str) -> str:
    """A plain-text field (a title): tags and comments removed, entities decoded once, whitespace collapsed."""
    if "<" in text:
        text = _COMMENT_RE.sub("", text)
        text = _SCRIPT_RE.sub("", text)
        text = _BREAK_RE.sub(" ", text)
        text = _TAG_RE.sub("", text)
    if "&" in text:
        text = html_lib.unescape(text)
    text = _SURROGATE_RE.sub("\ufffd", _INVISIBLE_RE.sub("", text))
    return " ".join(text.split())


def visible_text(html: str) -> str:
    """The text a reader sees of `html`: one line per block, white space collapsed as CSS does.

    Hidden elements, comments, scripts and other non-rendered content are left out; images show
    no text. Used to prove that cleaning kept every sentence (tests/test_clean_corpus.py).
    """
    try:
        body = parse_fragment(_SURROGATE_RE.sub("\ufffd", html).replace("\x00", ""))
    except DepthLimitError:
        return clean_text(html)
    chunks: list[str] = []
    _collect(body, chunks)
    lines = (_COLLAPSIBLE_RE.sub(" ", line).strip(" ") for line in "".join(chunks).split("\n"))
    return "\n".join(line for line in lines if line)


def _collect(element: etree._Element, chunks: list[str]) -> None:
    # iterative walk: documents nest up to 2048 levels, deeper than Python's recursion limit
    stack: list[tuple[etree._Element, bool]] = [(element, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            if node.tag in BLOCK_TAGS:
                chunks.append("\n")
            if node is not element and node.tail:
                chunks.append(node.tail)
            continue
        if not isinstance(node.tag, str):  # comment or processing instruction: only its tail shows
            if node.tail:
                chunks.append(node.tail)
            continue
        if node.tag in DROPPED_WITH_CONTENT or is_hidden(node):
            if node is not element and node.tail:
                chunks.append(node.tail)
            continue
        if node.tag == "br" or node.tag in BLOCK_TAGS:
            chunks.append("\n")
        if node.text:
            chunks.append(node.text)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node))
