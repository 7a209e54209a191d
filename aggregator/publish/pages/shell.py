"""The frame every HTML page of the website shares: head, style, header with search, footer.

Pure. Chinese (`lang="zh-CN"`), one fluid column readable on a phone without JavaScript, nothing
wider than the screen (images and tables shrink or scroll inside themselves). Links are relative to
the page (`root` leads back to the site root), so the site works under any base path; only the
canonical link is absolute.
"""

from __future__ import annotations

from html import escape

SITE_TITLE = "地方报纸新闻聚合"
OPENSEARCH_TITLE = "地方报纸新闻搜索"

STYLE = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:#f6f6f4;color:#1d1d1f;line-height:1.7;overflow-wrap:anywhere;
 font-family:system-ui,-apple-system,"PingFang SC","Hiragino Sans GB","Noto Sans CJK SC","Microsoft YaHei",sans-serif}
header,main,footer{max-width:46rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem;display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
header .site{font-weight:600;color:#1d1d1f;text-decoration:none}
form.search{display:flex;gap:.3rem;flex:1 1 12rem;min-width:0}
form.search input{flex:1;min-width:0;font:inherit;padding:.25rem .5rem;border:1px solid #c8c8c4;border-radius:.3rem}
form.search button{font:inherit;padding:.25rem .7rem}
h1{font-size:1.45rem;line-height:1.4;margin:1rem 0 .4rem}
h2{font-size:1.1rem;margin:1.2rem 0 .3rem}
a{color:#0b57d0}
.meta,.note{color:#5f6368;font-size:.9rem}
.body img,.body video{max-width:100%;height:auto}
.body table{display:block;max-width:100%;overflow-x:auto}
.body pre{white-space:pre-wrap}
ol.list,ul.list{padding-left:1.2rem}
ol.list li,ul.list li{margin:.3rem 0}
time{color:#5f6368;font-size:.85rem;white-space:nowrap}
nav.pages{display:flex;justify-content:space-between;margin:1rem 0}
footer{color:#5f6368;font-size:.85rem;padding:1.5rem 1rem 2rem}
"""


def render_page(
    *,
    title: str,
    root: str,
    body: str,
    canonical: str | None = None,
    head_extra: str = "",
    query: str = "",
    style_extra: str = "",
) -> bytes:
    """A whole HTML5 document around `body` (already escaped HTML)."""
    canonical_link = f'<link rel="canonical" href="{escape(canonical)}">\n' if canonical else ""
    page = f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(title)}</title>
{canonical_link}<link rel="search" type="application/opensearchdescription+xml" title="{OPENSEARCH_TITLE}" href="{root}opensearch.xml">
{head_extra}<style>{STYLE}{style_extra}</style>
</head>
<body>
<header>
<a class="site" href="{root or './'}">{SITE_TITLE}</a>
<form class="search" role="search" action="{root}search" method="get">
<input type="search" name="q" value="{escape(query)}" maxlength="64" placeholder="搜索标题和正文" aria-label="搜索">
<button type="submit">搜索</button>
</form>
</header>
<main>
{body}
</main>
<footer>由 aggregator 生成 · 正文经过清理，版权归原作者与原媒体所有 · <a href="{root}feeds.opml">订阅列表 (OPML)</a></footer>
</body>
</html>
"""
    return page.encode("utf-8")


def web_link(url: str | None) -> str | None:
    """`url` when it is an http(s) link, else None: a source's odd scheme (javascript:, data:) is never clickable."""
    # imported here: loading the cleaner package would add to `serve`'s start-up, which renders no article
    from aggregator.clean.urls import is_http_url

    return url if url is not None and is_http_url(url) else None
