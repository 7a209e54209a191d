"""Render one article's page (`/a/<key>.html`): title, date with its offset, medium, categories, body, original link.

Pure and deterministic. The body is the cleaned HTML as stored (clean/ ran the allowlist sanitizer
last), so it is embedded as is. `also_carried_by` is the hook for same-story detection: other
papers' pages for the same story, listed under the body when given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape

from aggregator.categories import medium_from_tag
from aggregator.models import Item
from aggregator.publish.layout import atom_file, site_path, site_url
from aggregator.publish.page_layout import article_file, category_file, root_of
from aggregator.publish.pages.shell import SITE_TITLE, render_page, web_link


@dataclass(frozen=True, slots=True)
class RelatedLink:
    """Another paper's article on the same story (for same-story detection to fill in)."""

    article_id: str
    title: str
    medium: str


@dataclass(frozen=True, slots=True)
class CategoryLink:
    name: str
    title: str


def format_time(moment: datetime, zone: tzinfo) -> str:
    """`2022-01-24 00:48 (UTC+08:00)`: the wall-clock time where the article appeared, with its offset."""
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def media_of(item: Item, categories: Sequence[CategoryLink]) -> list[str]:
    """The media that carried the item: from per-medium category titles (`<medium>新闻`), else its sources."""
    media = [medium for c in categories if (medium := medium_from_tag(c.title)) is not None]
    return media or sorted(source for source in item.sources if source != "jekyll-import")


def render_article_page(
    item: Item,
    categories: Sequence[CategoryLink],
    *,
    base_url: str,
    zone: tzinfo,
    also_carried_by: Sequence[RelatedLink] = (),
) -> bytes:
    file = article_file(item.article_id)
    root = root_of(file)
    title = item.title or item.article_id
    shown = item.published or item.updated
    media = media_of(item, categories)
    medium_line = f" · 来源：{escape('、'.join(media))}" if media else ""
    category_links = "、".join(
        f'<a href="{root}{category_file(c.name)}">{escape(c.title)}</a>' for c in categories
    )
    original = web_link(item.url)
    parts = [
        "<article>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta"><time datetime="{shown.isoformat()}">{format_time(shown, zone)}</time>{medium_line}</p>',
    ]
    if category_links:
        parts.append(f'<p class="meta">分类：{category_links}</p>')
    parts.append(f'<div class="body">\n{item.html}\n</div>')
    if original:
        parts.append(f'<p class="original"><a href="{escape(original)}" rel="nofollow noopener">原文链接</a></p>')
    if also_carried_by:
        links = "\n".join(
            f'<li><a href="{root}{article_file(r.article_id)}">{escape(r.title)}</a> '
            f'<span class="note">{escape(r.medium)}</span></li>'
            for r in also_carried_by
        )
        parts.append(f'<section class="related"><h2>其他报纸的报道</h2>\n<ul class="list">\n{links}\n</ul></section>')
    parts.append("</article>")
    discovery = "".join(
        f'<link rel="alternate" type="application/atom+xml" title="{escape(c.title)}" '
        f'href="{root}{site_path(atom_file(c.name))}">\n'
        for c in categories
    )
    return render_page(
        title=f"{title} - {SITE_TITLE}",
        root=root,
        body="\n".join(parts),
        canonical=site_url(base_url, str(file)),
        head_extra=discovery,
    )
