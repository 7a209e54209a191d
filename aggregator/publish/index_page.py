"""Render the HTML index (`/`): every feed with its title, item count, last update, latest
headlines and subscribe links, plus `<link rel="alternate">` tags for reader autodiscovery.

Pure and deterministic (no clock): rendered at publish time as a static index.html, so it is
rewritten only when a feed changes and an nginx in front can serve it too. Chinese, readable on
a phone (viewport meta, one fluid column), no JavaScript. Links are relative, so the page works
under any base path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from aggregator.config.load import Config
from aggregator.models import Item
from aggregator.publish.atom import ALL_FEED_TITLE
from aggregator.publish.layout import (
    ALL_FEED,
    OPML_FILE,
    archive_file,
    atom_file,
    file_url,
    json_file,
    site_path,
)

SITE_TITLE = "地方报纸新闻聚合"

_STYLE = """
body{margin:0;background:#f6f6f4;color:#1d1d1f;line-height:1.65;
 font-family:system-ui,-apple-system,"PingFang SC","Hiragino Sans GB","Noto Sans CJK SC","Microsoft YaHei",sans-serif}
header,main,footer{max-width:46rem;margin:0 auto;padding:0 1rem}
header{padding-top:1.5rem}
h1{font-size:1.5rem;margin:0 0 .25rem}
h2{font-size:1.2rem;margin:0}
a{color:#0b57d0}
section{background:#fff;border:1px solid #e3e3e0;border-radius:.5rem;padding:1rem;margin:1rem 0}
.meta{color:#5f6368;font-size:.9rem;margin:.25rem 0 .5rem}
ul{padding-left:1.2rem;margin:.5rem 0}
li{margin:.2rem 0}
time{color:#5f6368;font-size:.85rem;white-space:nowrap;margin-left:.4rem}
.subscribe a{display:inline-block;margin:.25rem .5rem .25rem 0}
.subscribe a.primary{background:#0b57d0;color:#fff;padding:.3rem .8rem;border-radius:1rem;text-decoration:none}
code{font-size:.8rem;overflow-wrap:anywhere;color:#3c4043}
footer{color:#5f6368;font-size:.85rem;padding-bottom:2rem}
"""


@dataclass(frozen=True, slots=True)
class IndexSection:
    """One feed as the index shows it."""

    name: str
    title: str
    description: str | None
    item_count: int
    last_updated: datetime | None
    #: the latest few items, newest first
    headlines: tuple[Item, ...]
    #: archive pages behind the subscription document (0: none yet)
    archive_pages: int = 0


def render_index_page(config: Config, sections: Sequence[IndexSection]) -> bytes:
    zone = ZoneInfo(config.settings.timezone)
    base_url = config.settings.base_url
    discovery = [
        f'<link rel="alternate" type="application/atom+xml" title="{escape(s.title)}" '
        f'href="{site_path(atom_file(s.name))}">'
        for s in sections
    ]
    body = [_render_section(section, base_url, zone) for section in sections]
    has_all = any(s.name == ALL_FEED for s in sections)
    all_link = f' · <a href="{site_path(atom_file(ALL_FEED))}">订阅{ALL_FEED_TITLE}</a>' if has_all else ""
    page = f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{SITE_TITLE}</title>
{chr(10).join(discovery)}
<link rel="alternate" type="text/x-opml" title="订阅列表 (OPML)" href="{site_path(OPML_FILE)}">
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{SITE_TITLE}</h1>
<p>按报纸分类的新闻订阅源，用任何 RSS / Atom 阅读器都能订阅：复制订阅地址粘贴到阅读器，或
<a href="{site_path(OPML_FILE)}">下载 OPML</a> 一次导入全部分类{all_link}。</p>
</header>
<main>
{chr(10).join(body)}
</main>
<footer>共 {len(sections)} 个订阅源 · 由 aggregator 生成，只收录原文链接与清理后的正文。</footer>
</body>
</html>
"""
    return page.encode("utf-8")


def _render_section(section: IndexSection, base_url: str, zone: ZoneInfo) -> str:
    last = (
        f'最后更新 <time datetime="{section.last_updated.isoformat()}">'
        f"{section.last_updated.astimezone(zone):%Y-%m-%d %H:%M}</time>"
        if section.last_updated is not None
        else "尚无更新"
    )
    headlines = "\n".join(_render_headline(item, zone) for item in section.headlines)
    description = f"<p>{escape(section.description)}</p>\n" if section.description else ""
    archive = (
        f' <a href="{site_path(archive_file(section.name, section.archive_pages))}">历史存档</a>'
        if section.archive_pages
        else ""
    )
    atom_href = site_path(atom_file(section.name))
    return f"""<section id="{section.name}">
<h2>{escape(section.title)}</h2>
{description}<p class="meta">共 {section.item_count} 篇 · {last}</p>
<ul>
{headlines or "<li>暂无文章</li>"}
</ul>
<p class="subscribe"><a class="primary" href="{atom_href}">订阅 Atom</a> \
<a href="{site_path(json_file(section.name))}">JSON Feed</a>{archive}</p>
<p><code>{escape(file_url(base_url, atom_file(section.name)))}</code></p>
</section>"""


def _render_headline(item: Item, zone: ZoneInfo) -> str:
    # imported here: loading the cleaner package would add to `serve`'s start-up, which never renders this page
    from aggregator.clean.urls import is_http_url

    title = escape(item.title or item.article_id)
    # only web links: a source's odd scheme (javascript:, data:) must not become clickable here
    link = f'<a href="{escape(item.url)}">{title}</a>' if item.url and is_http_url(item.url) else title
    shown = item.published or item.updated
    return f'<li>{link}<time datetime="{shown.isoformat()}">{shown.astimezone(zone):%m-%d %H:%M}</time></li>'
