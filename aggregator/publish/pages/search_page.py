"""Render search results (HTML and JSON) and the OpenSearch description that lets browsers offer /search.

Pure. The results page is the website's one dynamic page; it shares the static pages' frame and
links to the article pages. OpenSearch 1.1: https://github.com/dewitt/opensearch (description
document, `{searchTerms}` and `{startPage?}` template parameters).
"""

from __future__ import annotations

import json
from datetime import tzinfo
from html import escape
from urllib.parse import urlencode

from aggregator.publish.layout import site_url
from aggregator.publish.page_layout import SEARCH_PATH, article_file
from aggregator.publish.pages.shell import OPENSEARCH_TITLE, SITE_TITLE, render_page
from aggregator.storage.search import SearchPage


def render_search_html(result: SearchPage, *, zone: tzinfo, message: str = "") -> bytes:
    q = result.query
    if message:
        summary = f'<p class="note">{escape(message)}</p>'
    elif not q:
        summary = '<p class="note">输入标题或正文里的字词搜索全部文章。</p>'
    elif not result.hits:
        summary = f'<p class="note">没有找到包含“{escape(q)}”的文章。</p>'
    else:
        summary = f'<p class="note">包含“{escape(q)}”的文章，第 {result.page} 页，新的在前。</p>'
    hits = "\n".join(
        f'<li><a href="{article_file(hit.article_id)}">{escape(hit.title or hit.article_id)}</a> '
        f'<time datetime="{hit.listed_at.isoformat()}">{hit.listed_at.astimezone(zone):%Y-%m-%d %H:%M}</time>'
        f'<br><span class="note">{escape(hit.snippet)}</span></li>'
        for hit in result.hits
    )
    newer = (
        f'<a href="{escape(_page_link(q, result.page - 1))}">← 上一页</a>' if result.page > 1 and q else ""
    )
    older = f'<a href="{escape(_page_link(q, result.page + 1))}">下一页 →</a>' if result.has_more else ""
    body = f"""<h1>搜索{('：' + escape(q)) if q else ''}</h1>
{summary}
<ol class="list">
{hits}
</ol>
<nav class="pages"><span>{newer}</span><span>{older}</span></nav>"""
    title = f"{q} - 搜索 - {SITE_TITLE}" if q else f"搜索 - {SITE_TITLE}"
    return render_page(title=title, root="", body=body, query=q)


def render_search_json(result: SearchPage, *, base_url: str) -> bytes:
    document = {
        "query": result.query,
        "page": result.page,
        "per_page": result.per_page,
        "results": [
            {
                "article_id": hit.article_id,
                "title": hit.title,
                "url": site_url(base_url, str(article_file(hit.article_id))),
                "listed_at": hit.listed_at.isoformat(),
                "snippet": hit.snippet,
            }
            for hit in result.hits
        ],
        "next": site_url(base_url, _page_link(result.query, result.page + 1, json_format=True))
        if result.has_more else None,
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def render_opensearch(base_url: str) -> bytes:
    html_template = escape(site_url(base_url, SEARCH_PATH) + "?q={searchTerms}&page={startPage?}")
    json_template = escape(site_url(base_url, SEARCH_PATH) + "?q={searchTerms}&page={startPage?}&format=json")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<OpenSearchDescription xmlns="http://a9.com/-/spec/opensearch/1.1/">
<ShortName>{OPENSEARCH_TITLE}</ShortName>
<Description>搜索{SITE_TITLE}的全部文章（标题和正文）</Description>
<InputEncoding>UTF-8</InputEncoding>
<Language>zh-CN</Language>
<Url type="text/html" method="get" template="{html_template}"/>
<Url type="application/json" method="get" template="{json_template}"/>
</OpenSearchDescription>
""".encode("utf-8")


def _page_link(query: str, page: int, *, json_format: bool = False) -> str:
    params: dict[str, str | int] = {"q": query, "page": page}
    if json_format:
        params["format"] = "json"
    return f"{SEARCH_PATH}?{urlencode(params)}"
