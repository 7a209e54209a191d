"""Cut a feed's prolog (XML declaration, DOCTYPE with its internal subset, comments) so no entity is ever declared.

Decision: everything before the root element is dropped before any XML parser sees the text, and
the caller puts back a declaration of its own (feed.py writes `<?xml version="1.0" encoding="utf-8"?>`).
With no DTD there is nothing to expand and nothing to fetch:
  - billion laughs (nested entities) and quadratic blowup (one big entity referenced many times)
    have no declarations left, so `&lol9;` is just an undefined reference;
  - external entities (`<!ENTITY x SYSTEM "file:///etc/passwd">`), parameter entities
    (`<!ENTITY % p SYSTEM "http://…"> %p;`) and external DTD subsets are never read or fetched.
An undefined reference makes the strict (expat) pass fail, and feedparser's loose parser then
reads the document, keeping HTML's named entities (`&nbsp;`, `&eacute;`) and leaving unknown ones
as literal text, so legitimate feeds with a DOCTYPE, such as RSS 0.91 with the Netscape DTD,
still parse. What is lost: custom entities a feed declares for itself ("&id;" in feedparser's
`wellformed/rss/entity_in_doctype.xml`) stay unexpanded.

Why the whole prolog and not only the DOCTYPE: feedparser's own `sanitizer.py::replace_doctype`
runs regexes over the bytes before the first `<\\w` and re-declares every "safe" one-level
`<!ENTITY` it finds there, even inside a comment or after junk text, for its loose parser to
expand; one-level entities are still enough for quadratic blowup. So nothing of the prolog
survives: not comments, not processing instructions, not junk. None of it carries feed data.

The root element is the first `<` followed by an ASCII word character outside comments,
processing instructions and declarations (quoted literals and the internal subset may hold
`>`); ASCII because feedparser's bytes regex `<\\w` ends its head there too. A DTD is not
allowed after the root element (XML 1.0 §2.8), so expat never reads one there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROOT_START_RE = re.compile(r"<[A-Za-z0-9_]")
#: how much of a removed declaration a warning quotes
_QUOTE_CHARS = 60


@dataclass(frozen=True, slots=True)
class StrippedDocument:
    """A document from its root element on, and what was dropped before it."""

    text: str
    #: the markup declarations removed (DOCTYPE, stray ENTITY), abbreviated for the warning log
    removed: tuple[str, ...] = ()
    #: True when a declaration, comment or processing instruction never ended (no root element)
    truncated: bool = False
    #: line breaks in the dropped prolog, so a caller can keep parser messages' line numbers true
    prolog_lines: int = 0


def strip_prolog(text: str) -> StrippedDocument:
    """Drop everything before the root element; record the markup declarations among it."""
    removed: list[str] = []
    cursor = 0
    while cursor < len(text):
        start = text.find("<", cursor)
        if start < 0:
            break
        if _ROOT_START_RE.match(text, start):
            return StrippedDocument(text[start:], tuple(removed), prolog_lines=text.count("\n", 0, start))
        if text.startswith("<?", start):
            close = text.find("?>", start + 2)
            cursor = close + 2
        elif text.startswith("<!--", start):
            close = text.find("-->", start + 4)
            cursor = close + 3
        elif text.startswith("<!", start):
            close = _declaration_end(text, start)
            removed.append(_abbreviate(text[start:] if close < 0 else text[start:close]))
            cursor = close
        else:
            close = cursor = start + 1
        if close < 0:
            return StrippedDocument(text="", removed=tuple(removed), truncated=True)
    return StrippedDocument(text="", removed=tuple(removed))


def _declaration_end(text: str, start: int) -> int:
    """Index just past the `>` closing the declaration at `start`, or -1 when it never closes.

    Quoted literals may hold `>` and `]`; the internal subset ([…]) holds declarations, comments
    and processing instructions with their own `>`. Every search moves forward: linear time.
    """
    pos = start + 2
    in_subset = False
    while 0 <= pos < len(text):
        char = text[pos]
        if in_subset and text.startswith("<!--", pos):
            close = text.find("-->", pos + 4)
            pos = -1 if close < 0 else close + 3
        elif in_subset and text.startswith("<?", pos):
            close = text.find("?>", pos + 2)
            pos = -1 if close < 0 else close + 2
        elif char in "\"'":
            close = text.find(char, pos + 1)
            pos = -1 if close < 0 else close + 1
        elif char == ">" and not in_subset:
            return pos + 1
        else:
            in_subset = (in_subset or char == "[") and char != "]"
            pos += 1
    return -1


def _abbreviate(declaration: str) -> str:
    flat = " ".join(declaration[: _QUOTE_CHARS * 2].split())
    return flat if len(flat) <= _QUOTE_CHARS else flat[: _QUOTE_CHARS - 1] + "…"
