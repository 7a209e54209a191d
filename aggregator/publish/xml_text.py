"""The one filter for characters XML 1.0 forbids: every string we publish passes it.

Atom (subscription documents and archive pages), OPML, JSON Feed and the index page all take their
text through `xml_text`, so one control character from a source (`\\u0001` in a JSON `url_w`, a medium
name with a stray byte) can neither make lxml refuse a whole feed nor make feeds.opml invalid XML
(issue 10). JSON could escape such characters, but readers turn JSON Feed content into HTML and XML.
"""

from __future__ import annotations

import re

#: what XML 1.0 §2.2 (Char) excludes: C0 controls but tab, newline and carriage return, surrogates,
#: U+FFFE and U+FFFF
_NON_XML_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` without the characters XML forbids."""
    return _NON_XML_CHARS.sub("", text)


def xml_text_or_none(text: str | None) -> str | None:
    return None if text is None else xml_text(text)
