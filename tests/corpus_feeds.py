"""Build RSS 2.0 and Atom 1.0 fixture documents from legacy Jekyll posts (../shared); no business logic.

The end-to-end tests serve these from the loopback fixture server, so the pipeline meets the real
markup of the mirror we replace (widgets, hidden paragraphs, quote links) through real feed formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

_FRONT_MATTER = re.compile(r"\A\s*---\n(.*?)\n---\n?(.*)\Z", re.DOTALL)
_SOURCE_LINK = re.compile(r"^<(https?://[^>]+)>\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Post:
    title: str
    published: datetime
    category: str
    tag: str
    html: str
    link: str


def read_post(path: Path) -> Post:
    """Front matter, HTML body (digest blockquote, source link and back-links dropped) and source link."""
    match = _FRONT_MATTER.match(path.read_text(encoding="utf-8"))
    assert match, f"{path} has no front matter"
    header = dict(line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
    fields = {k.strip(): v.strip().strip('"') for k, v in header.items()}
    body = match.group(2)
    link_match = _SOURCE_LINK.search(body)
    link = link_match.group(1) if link_match else ""
    html = body[: link_match.start()] if link_match else body
    html = "\n".join(line for line in html.splitlines() if not line.startswith("> ")).strip()
    return Post(
        title=fields["title"],
        published=datetime.strptime(fields["date"], "%Y-%m-%d %H:%M:%S %z"),
        category=fields["categories"],
        tag=fields.get("tags", ""),
        html=html,
        link=link,
    )


def rss(title: str, posts: list[Post], *, encoding: str = "utf-8") -> bytes:
    items = "".join(
        f"<item><title>{escape(p.title)}</title><link>{escape(p.link)}</link>"
        f"<guid isPermaLink=\"true\">{escape(p.link)}</guid><pubDate>{format_datetime(p.published)}</pubDate>"
        f"<description>{escape(p.html)}</description></item>"
        for p in posts
    )
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
        f"<link>http://example.invalid/</link><description>fixture</description>{items}</channel></rss>\n"
    )
    return text.encode(encoding)


def atom(title: str, posts: list[Post]) -> bytes:
    entries = "".join(
        f"<entry><id>{escape(p.link)}</id><title>{escape(p.title)}</title>"
        f'<link rel="alternate" href="{escape(p.link)}"/>'
        f"<published>{p.published.isoformat()}</published><updated>{p.published.isoformat()}</updated>"
        f'<content type="html">{escape(p.html)}</content></entry>'
        for p in posts
    )
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>urn:fixture:{escape(title)}</id><title>{escape(title)}</title>"
        f"<updated>2022-06-14T00:00:00Z</updated>{entries}</feed>\n"
    )
    return text.encode("utf-8")
