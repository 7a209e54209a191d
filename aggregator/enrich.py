"""Fetch what a list record lacks, between parse and clean: article bodies and further list pages.

Three ways to complete an item, tried in this order, the first that yields a body wins:

1. kind = "json": the detail endpoint (`detail_url` with `{id}`, the eastmoney preset's by default),
   body in `detail_field` (parse/json_api.py);
2. kind = "html": the article page, body cut out with `body_selector` (parse/html_list.py);
3. `full_content = true` (any kind): the article page, main text extracted with trafilatura.

An item that gets no body keeps what its list record said (the summary, or the feed's own content):
a detail fetch that fails, times out or answers garbage loses only that article's body, and is logged.
Requests go through the Fetcher, which applies the per-host politeness rules; on top of that at most
`concurrency` items of one call are in flight. The caller passes only items that are new or whose
list record changed (items.plan_writes), so a stored, unchanged article is never fetched again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence

from aggregator.config.load import SourceConfig
from aggregator.errors import FetchError, ParseError
from aggregator.fetch.client import Fetcher
from aggregator.isolation import item_or_skip_async
from aggregator.models import Fetched, RawItem, SkippedItem
from aggregator.parse.html_list import extract_body, next_page_url, read_html
from aggregator.parse.json_api import detail_url_for, read_detail_body

log = logging.getLogger("aggregator.enrich")

#: items of one source completed at once (the fetcher still spaces requests to one host)
DEFAULT_CONCURRENCY = 4


async def complete_items(
    fetcher: Fetcher, source: SourceConfig, items: Sequence[RawItem], *, concurrency: int = DEFAULT_CONCURRENCY
) -> list[RawItem | SkippedItem]:
    """`items` in the same order, each with its body filled in where one could be fetched; an item whose
    completion failed in an unforeseen way is skipped (aggregator/isolation.py), never its source.

    Each fetch is bounded by the fetcher (its timeout, and a deadline for the whole response).
    """
    bound = asyncio.Semaphore(concurrency)

    async def one(item: RawItem) -> RawItem | SkippedItem:
        async with bound:
            return await item_or_skip_async("detail", _complete_item, item, fetcher, source, item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def fetch_list_pages(fetcher: Fetcher, source: SourceConfig, first: Fetched) -> list[Fetched]:
    """The list pages after `first` (kind = "html", `next_page_selector`), at most `max_pages` in all.

    Stops at the first page without a next link, at a link back to a page already read, or at a
    page that cannot be fetched or read as HTML (logged; the pages read so far are kept, so a broken
    page 3 never costs the items of pages 1 and 2). An unreadable `first` is left to its parser to report.
    """
    pages: list[Fetched] = []
    seen = {first.url, first.final_url}
    try:
        url = await asyncio.to_thread(next_page_url, first, source)
    except ParseError:
        return pages
    while url is not None and url not in seen and 1 + len(pages) < source.max_pages:
        seen.add(url)
        try:
            page = await fetcher.fetch_url(source, url)
            url = await asyncio.to_thread(next_page_url, page, source)
        except (FetchError, ParseError) as e:
            log.warning("enrich: source=%s list page %s not read, keeping %d page(s): %s",
                        source.name, url, 1 + len(pages), e, extra={"source": source.name, "url": url})
            break
        seen.add(page.final_url)
        pages.append(page)
    return pages


async def _complete_item(fetcher: Fetcher, source: SourceConfig, item: RawItem) -> RawItem:
    steps: list[tuple[str | None, str, Callable[[Fetched, SourceConfig], str | None]]] = []
    if source.kind == "json":
        steps.append((detail_url_for(source, item), "detail fetch", read_detail_body))
    if source.kind == "html" and source.body_selector:
        steps.append((item.url, "article page", extract_body))
    if source.full_content:
        steps.append((item.url, "full-text extraction", _extract_main_text))
    for url, what, read in steps:
        if url and (body := await _try_body(fetcher, url, source, item, what, read)) is not None:
            return dataclasses.replace(item, html=body)
    return item


async def _try_body(
    fetcher: Fetcher,
    url: str,
    source: SourceConfig,
    item: RawItem,
    what: str,
    read: Callable[[Fetched, SourceConfig], str | None],
) -> str | None:
    """The body `read` finds at `url`; None (logged) when the fetch or the reading fails."""
    try:
        fetched = await fetcher.fetch_url(source, url)
    except FetchError as e:
        _log_lost(source, item, f"{what} failed", str(e))
        return None
    try:
        # lxml and trafilatura are CPU work: keep the event loop (other sources' fetches) moving
        body = await asyncio.to_thread(read, fetched, source)
    except ParseError as e:
        _log_lost(source, item, f"{what} unreadable", str(e))
        return None
    if body is None:
        _log_lost(source, item, f"{what} found no body", url)
    return body


def _extract_main_text(fetched: Fetched, source: SourceConfig) -> str | None:
    """The article's main text as HTML (trafilatura), None when it finds none."""
    import trafilatura  # heavy import, only for sources with full_content = true

    root, _ = read_html(fetched, source)
    extracted = trafilatura.extract(
        root, url=fetched.final_url, output_format="html", include_images=True, include_links=True,
        include_tables=True, favor_precision=True,
    )
    return extracted if isinstance(extracted, str) and extracted.strip() else None


def _log_lost(source: SourceConfig, item: RawItem, what: str, detail: str) -> None:
    fallback = "the list summary" if item.summary else "the feed content" if item.html else "no body"
    log.warning(
        "enrich: source=%s article=%s %s, keeping %s: %s",
        source.name, item.explicit_id or item.url, what, fallback, detail,
        extra={"source": source.name, "url": item.url, "article_id": item.explicit_id},
    )
