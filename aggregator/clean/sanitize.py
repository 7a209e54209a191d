"""The allowlist: which tags, attributes and URL schemes a cleaned item may hold, enforced last by nh3.

Nothing site-specific lives here. The tree pass (clean/tree.py) enforces the same tables first, so
that on well-formed input this pass changes nothing and cleaning is idempotent; nh3 (the Rust
ammonia sanitizer, parsing with html5ever like a browser) is the pass that makes content safe, and
it runs last on every item, whatever the site rules did (STYLE.md §6.8, issue 3).
"""

from __future__ import annotations

import nh3

from aggregator.clean.urls import SAFE_URL_SCHEMES

#: Article structure, text semantics, tables and images. No forms, frames, media players, SVG or
#: MathML: none appears in the sampled posts and each is a script or tracking surface.
#: `center` stays: the papers centre their images with it (_posts__2022-05-26-202205262391921712.md).
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt",
    "ruby", "s", "samp", "small", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "time", "tr", "u", "ul", "var", "wbr",
})

#: Attributes per tag. No class, id, style, data-* or event handlers anywhere (issue 3).
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
    "abbr": frozenset({"title"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "del": frozenset({"cite", "datetime"}),
    "ins": frozenset({"cite", "datetime"}),
    "time": frozenset({"datetime"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan", "scope"}),
    "col": frozenset({"span"}),
    "colgroup": frozenset({"span"}),
    "ol": frozenset({"start", "reversed", "type"}),
    "bdo": frozenset({"dir"}),
}

#: Attributes holding a URL: made absolute, scheme-checked and tracking-stripped by the tree pass.
URL_ATTRIBUTES = frozenset({"href", "src", "cite"})

#: Elements removed together with their content: their content is script, style, a nested document,
#: form state or foreign markup, never article text a reader sees.
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "template", "title", "head", "meta", "link", "base", "iframe", "frame",
    "frameset", "object", "embed", "applet", "param", "noembed", "noframes", "textarea", "select",
    "button", "input", "option", "optgroup", "datalist", "svg", "math", "canvas", "audio", "video",
    "source", "track", "map", "area", "dialog", "portal",
})

#: nh3 drops these with their content too; the set must not meet ALLOWED_TAGS.
_NH3_CLEAN_CONTENT_TAGS = frozenset({"script", "style", "template", "iframe", "object", "embed",
                                      "noembed", "noframes", "textarea", "select", "svg", "math",
                                      "title"})

_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(_NH3_CLEAN_CONTENT_TAGS),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(SAFE_URL_SCHEMES),
    strip_comments=True,
    # no rel= on links: no target= is allowed either, so there is no opener to protect
    link_rel=None,
)


def sanitize_html(html: str) -> str:
    """`html` reduced to the allowlist by nh3: the final pass of every clean."""
    return _CLEANER.clean(html)
