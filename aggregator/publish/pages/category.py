"""Render a category's pages: the front page (newest items) and the older pages behind it.

Pure. Pages follow the feed archives' arithmetic (publish/archive.py, with settings.page_size): the
front page `/c/<name>.html` lists the newest page_size memberships, older ones sit on `/c/<name>/<n>.html`,
page 1 the oldest, so a page is final once a newer one exists and a new item rewrites only the front
page and the newest older page. Each page lists its items newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from html import escape

from aggregator.models import Item
from aggregator.publish.archive import ArchivePlan
from aggregator.publish.atom import sort_newest_first
from aggregator.publish.layout import atom_file, json_file, site_path, site_url
from aggregator.publish.page_layout import article_file, category_file, root_of
from aggregator.publish.pages.shell import SITE_TITLE, render_page


def render_category_page(
    name: str,
    title: str,
    items: Sequence[Item],
    plan: ArchivePlan,
    page: int | None,
    *,
    base_url: str,
    zone: tzinfo,
) -> bytes:
    """Page `page` of category `name` (None: the front page), holding `items`."""
    file = category_file(name, page)
    root = root_of(file)
    lines = "\n".join(_render_line(item, root, zone) for item in sort_newest_first(items))
    newer = older = ""
    if page is None:
        if plan.page_count:
            older = f'<a href="{root}{category_file(name, plan.page_count)}">更早的文章 →</a>'
    else:
        newer_file = category_file(name, page + 1 if page < plan.page_count else None)
        newer = f'<a href="{root}{newer_file}">← 较新的文章</a>'
        if page > 1:
            older = f'<a href="{root}{category_file(name, page - 1)}">更早的文章 →</a>'
    heading = escape(title) if page is None else f"{escape(title)} · 第 {page} 页"
    # only the front page shows the count: an older page must keep its bytes once sealed
    count = f"共 {plan.total} 篇 · " if page is None else ""
    body = f"""<h1>{heading}</h1>
<p class="meta">{count}<a href="{root}{site_path(atom_file(name))}">订阅 Atom</a> · \
<a href="{root}{site_path(json_file(name))}">JSON Feed</a> · <a href="{root or './'}">全部分类</a></p>
<ol class="list">
{lines or "<li>暂无文章</li>"}
</ol>
<nav class="pages"><span>{newer}</span><span>{older}</span></nav>"""
    head = (
        f'<link rel="alternate" type="application/atom+xml" title="{escape(title)}" '
        f'href="{root}{site_path(atom_file(name))}">\n'
    )
    return render_page(
        title=f"{title} - {SITE_TITLE}", root=root, body=body,
        canonical=site_url(base_url, str(file)), head_extra=head,
    )


def _render_line(item: Item, root: str, zone: tzinfo) -> str:
    shown = item.published or item.updated
    return (
        f'<li><a href="{root}{article_file(item.article_id)}">{escape(item.title or item.article_id)}</a> '
        f'<time datetime="{shown.isoformat()}">{shown.astimezone(zone):%Y-%m-%d %H:%M}</time></li>'
    )
