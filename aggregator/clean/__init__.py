"""Clean item HTML for the mirror: site rules first (widgets, quote links, hidden, tracking), the nh3 allowlist last.

`clean_html` never raises on any str: malformed markup is repaired by libxml2's HTML parser, never
dropped. What is removed and why, the rules format and how to try a rule: docs/cleaning.md.
"""

from __future__ import annotations

import html as html_lib
import re

from aggregator.clean.compiled import CompiledRules, compile_rules
from aggregator.clean.sanitize import sanitize_html
from aggregator.clean.text import clean_text, visible_text
from aggregator.clean.tree import DepthLimitError, apply_rules, parse_fragment, serialize_children
from aggregator.clean.urls import absolute_url, strip_tracking_params
from aggregator.config.load import CleanRules

__all__ = [
    "CompiledRules",
    "absolute_url",
    "clean_html",
    "clean_text",
    "compile_rules",
    "strip_tracking_params",
    "visible_text",
]

_DEFAULT_RULES = CleanRules()
_SANITIZE_ONLY = compile_rules(CleanRules(preset="none"))
#: rounds of tree pass + nh3 until nh3 has nothing left to change; real articles need one
_MAX_ROUNDS = 4
# C0 controls other than white space carry no text and are dropped; lone surrogates (a str decoded
# with errors="surrogateescape") and the noncharacters U+FFFE/U+FFFF, which libxml2 rejects, stand
# for text that was there and become U+FFFD, as a decoder would make them.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0e-\x1f]")
_UNENCODABLE_RE = re.compile("[\ud800-\udfff\ufffe\uffff]")
# `</body>` or `</html>` inside a fragment makes libxml2 drop everything after it
#: `[^<>]`, not `[^>]`: over "</body</body…" without a `>` the latter rescanned the rest from every tag
_DOCUMENT_END_RE = re.compile(r"</\s*(?:body|html)\b[^<>]*>", re.IGNORECASE)


def clean_html(html: str, base_url: str | None, rules: CleanRules = _DEFAULT_RULES) -> str:
    """The item HTML a mirror can publish: the article as written, without widgets, tracking or script.

    `base_url` is the item's own URL; relative links and images are resolved against it.
    `rules` come from a loaded feeds.toml, which checked that they compile.
    """
    compiled = compile_rules(rules)
    for pattern, replacement in compiled.replacements:
        html = pattern.sub(replacement, html)
    html = _prepare(html)
    if not html.strip():
        return ""
    try:
        body = parse_fragment(html)
        for _ in range(_MAX_ROUNDS):
            apply_rules(body, compiled, base_url)
            serialized = serialize_children(body)
            html = sanitize_html(serialized)
            body = parse_fragment(html)
            if html == serialized and serialize_children(body) == html:
                break
            # nh3 parses like a browser (html5ever) and libxml2 does not: misnested markup such as
            # <b><li>x</b> or <ul><xmp> comes back restructured by one parser or the other, possibly
            # with new empty elements. Another round without site rules settles it, so that
            # cleaning what we publish changes nothing (tests/test_clean_properties.py).
            compiled = _SANITIZE_ONLY
    except DepthLimitError:
        return _clean_as_text(html)
    return html.strip()


def _prepare(html: str) -> str:
    """Normalise what parsers disagree on: newlines (HTML §13.2.3.5), control characters, `</body>`."""
    if "\r" in html:
        html = html.replace("\r\n", "\n").replace("\r", "\n")
    html = html.replace("\x0c", " ")
    html = _UNENCODABLE_RE.sub("\ufffd", _CONTROL_RE.sub("", html))
    if "</" in html:
        html = _DOCUMENT_END_RE.sub("", html)
    return html


def _clean_as_text(html: str) -> str:
    """Markup nested deeper than libxml2 builds trees: keep its text, drop every tag (never the words)."""
    text = clean_text(html)
    return f"<p>{html_lib.escape(text, quote=False)}</p>" if text else ""
