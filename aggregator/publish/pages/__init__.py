"""Publish the website: article pages, category pages, the index, the OpenSearch description and the
nginx map of legacy links, in proportion to what changed.

`publish_pages` is called by publish.publish_categories after the feeds. What it writes:

- article pages of the items added since the last publish (a high-water mark of the store's dense
  all-items position, kept in `.pages-state.json`) and of the items on each touched category's front
  page (an edited item sits there, so its page is rewritten; unchanged bytes are not written);
- each touched category's front page and its newest older page (older pages are final, publish/archive.py),
  plus any older page missing on disk;
- the index, opensearch.xml and the nginx map, each only when its bytes change.

Everything is rendered again when the state file is missing or the page frame, base_url, page_size
or timezone changed, and with `aggregator build --pages`. Items removed by retention lose their
page, which becomes a `.gone` tombstone (served as 410 Gone); their categories are rendered again
whole, since positions moved. Writes go through files.write_with_gzip (atomic, `.gz` twin), without
the per-file fsync: pages are derived from the store and `build --pages` recreates them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aggregator.config.load import Config
from aggregator.models import Item
from aggregator.publish.archive import ArchivePlan, plan_archive
from aggregator.publish.atom import feed_title, item_zones
from aggregator.publish.files import write_if_changed, write_with_gzip
from aggregator.publish.layout import INDEX_FILE, gzip_file
from aggregator.publish.pages.article import CategoryLink, RelatedLink, render_article_page
from aggregator.publish.pages.category import render_category_page
from aggregator.publish.pages.index import IndexLine, render_index
from aggregator.publish.pages.legacy import render_nginx_map
from aggregator.publish.page_layout import (
    NGINX_MAP_FILE,
    OPENSEARCH_FILE,
    PAGES_STATE_FILE,
    article_file,
    category_file,
    gone_file,
)
from aggregator.publish.pages.search_page import render_opensearch

if TYPE_CHECKING:
    from aggregator.storage import CategoryStats, Purged, Storage

__all__ = ["RelatedFinder", "RelatedLink", "publish_pages"]

log = logging.getLogger("aggregator.publish")

#: bump when the page templates change in a way every page must show
PAGES_VERSION = 1
_CHUNK = 500

#: same-story detection's hook: the other papers' articles on the stories of a batch of items, by article_id
RelatedFinder = Callable[[Sequence[Item]], Mapping[str, Sequence[RelatedLink]]]


def publish_pages(
    storage: Storage,
    config: Config,
    output_dir: Path,
    *,
    names: Sequence[str],
    touched: Iterable[str] | None,
    stats: Mapping[str, CategoryStats],
    full: bool = False,
    purged: Purged | None = None,
    related: RelatedFinder | None = None,
) -> int:
    """Write the pages a change touched (`touched` None: every category); returns files written."""
    writer = _PageWriter(storage, config, output_dir, related)
    signature = {"version": PAGES_VERSION, "base_url": config.settings.base_url,
                 "page_size": config.settings.page_size, "timezone": config.settings.timezone}
    state = _read_state(output_dir / PAGES_STATE_FILE)
    full = full or state is None or state.get("signature") != signature
    published = 0 if full or state is None else int(str(state["items"]))
    rewrite_whole: set[str] = set()
    if purged is not None and purged.article_ids:
        writer.bury(purged.article_ids)
        published -= sum(1 for position in purged.old_positions if position < published)
        rewrite_whole |= purged.categories
    total = storage.count_items(None)
    wanted = set(names) if full or touched is None else set(touched) | rewrite_whole
    for items in _chunks_in_order(storage, None, published, total):
        writer.write_articles(items)
        wanted.update(category for item in items for category in item.categories)
    for name in names:
        if name in wanted:
            writer.write_category(name, stats[name].item_count if name in stats else 0,
                                  whole=full or name in rewrite_whole)
    lines = [
        IndexLine(name, feed_title(config, name), stats[name].item_count if name in stats else 0,
                  stats[name].last_updated if name in stats else None)
        for name in names
    ]
    base_url = config.settings.base_url
    writer.write(INDEX_FILE, render_index(lines, base_url=base_url, zone=writer.zone, total_items=total))
    writer.write(OPENSEARCH_FILE, render_opensearch(base_url))
    write_if_changed(output_dir / NGINX_MAP_FILE, render_nginx_map(names))
    write_if_changed(output_dir / PAGES_STATE_FILE,
                     (json.dumps({"items": total, "signature": signature}, sort_keys=True) + "\n").encode())
    return writer.written


class _PageWriter:
    """Renders and writes pages for one publish; counts what it wrote."""

    def __init__(self, storage: Storage, config: Config, output_dir: Path, related: RelatedFinder | None) -> None:
        self.storage = storage
        self.config = config
        self.output_dir = output_dir
        self.related = related
        self.zone = ZoneInfo(config.settings.timezone)
        self.zone_of = item_zones(config)
        self.written = 0
        self._titles: dict[str, str] = {}
        #: article pages rendered in this publish (a new item is also on its category's front page)
        self._rendered: set[str] = set()

    def write(self, file: PurePosixPath, data: bytes) -> None:
        if write_with_gzip(self.output_dir / str(file), data, durable=False):
            self.written += 1

    def write_articles(self, items: Iterable[Item]) -> None:
        base_url = self.config.settings.base_url
        fresh = [item for item in items if item.article_id not in self._rendered]
        related = self.related(fresh) if self.related is not None and fresh else {}
        for item in fresh:
            self._rendered.add(item.article_id)
            links = [CategoryLink(name, self._title(name)) for name in sorted(item.categories)]
            page = render_article_page(item, links, base_url=base_url, zone=self.zone_of(item),
                                       also_carried_by=related.get(item.article_id, ()))
            self.write(article_file(item.article_id), page)
            (self.output_dir / gone_file(item.article_id)).unlink(missing_ok=True)

    def bury(self, article_ids: Iterable[str]) -> None:
        """Pages of removed items give way to tombstones (410 Gone)."""
        for article_id in article_ids:
            page = self.output_dir / article_file(article_id)
            page.unlink(missing_ok=True)
            gzip_file(page).unlink(missing_ok=True)
            write_if_changed(self.output_dir / gone_file(article_id), b"")

    def write_category(self, name: str, count: int, *, whole: bool) -> None:
        plan = plan_archive(count, self.config.settings.page_size)
        title = self._title(name)
        base_url = self.config.settings.base_url
        front = _items_at(self.storage, name, plan.current_range())
        self.write_articles(front)  # an edited item is on some front page: its page follows
        self.write(category_file(name), render_category_page(
            name, title, front, plan, None, base_url=base_url, zone=self.zone))
        for page in range(1, plan.page_count + 1):
            path = self.output_dir / category_file(name, page)
            if not whole and plan.is_sealed(page) and page < plan.page_count - 1 and path.exists():
                continue
            items = _items_at(self.storage, name, plan.page_range(page))
            self.write(category_file(name, page), render_category_page(
                name, title, items, plan, page, base_url=base_url, zone=self.zone))
        if whole:
            _remove_pages_after(self.output_dir / category_file(name, 1).parent, plan)

    def _title(self, name: str) -> str:
        if name not in self._titles:
            self._titles[name] = feed_title(self.config, name)
        return self._titles[name]


def _items_at(storage: Storage, category: str | None, positions: range) -> list[Item]:
    if not positions:
        return []
    return storage.list_items_in_order(category, start=positions.start, limit=len(positions))


def _chunks_in_order(storage: Storage, category: str | None, start: int, stop: int) -> Iterator[list[Item]]:
    for begin in range(start, stop, _CHUNK):
        yield _items_at(storage, category, range(begin, min(stop, begin + _CHUNK)))


def _remove_pages_after(folder: Path, plan: ArchivePlan) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        number = path.name.split(".", 1)[0]
        if number.isdigit() and int(number) > plan.page_count:
            path.unlink(missing_ok=True)


def _read_state(path: Path) -> dict[str, object] | None:
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("publish: %s is unreadable; rendering every page", path)
        return None
    if not isinstance(state, dict) or not isinstance(state.get("items"), int):
        log.warning("publish: %s is unreadable; rendering every page", path)
        return None
    return state
