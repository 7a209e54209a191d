"""One publish run: render every feed a change touched and write it under output_dir, atomically and only when its bytes change.

`publish_categories` is the only place publishing meets storage and the disk; what a document
contains is decided by the pure renderers (atom, json_feed, opml, pages/) and the archive
arithmetic (archive.py); where it goes by layout.py. Per feed it writes the subscription
document (`<name>.atom` + `.gz`, `<name>.json` + `.gz`) and the RFC 5005 archive pages; then
all.atom, feeds.opml and the website (pages/: article pages, category pages, index.html); then pings the WebSub hub for the feeds that changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config.load import CategoryConfig, Config
from aggregator.errors import PublishError, PublishFailures
from aggregator.models import Item
from aggregator.publish.archive import ArchivePlan, plan_archive
from aggregator.publish.atom import describe_feed, feed_subtitle, feed_title, render_atom
from aggregator.publish.files import write_if_changed, write_with_gzip
from aggregator.publish.pages import RelatedFinder, RelatedLink, publish_pages
from aggregator.publish.json_feed import render_json_feed
from aggregator.publish.layout import (
    ALL_FEED,
    ATOM_SUFFIX,
    GZIP_SUFFIX,
    INDEX_FILE,
    OPML_FILE,
    archive_dir,
    archive_file,
    atom_file,
    file_url,
    is_feed_name,
    json_file,
    output_dir_of,
    sealed_marker_file,
)
from aggregator.publish.opml import render_opml
from aggregator.publish.stories import paper_name, present_stories

if TYPE_CHECKING:
    from aggregator.storage import Purged, Storage

__all__ = ["publish_categories", "published_feed_names", "with_learnt_categories"]

log = logging.getLogger("aggregator.publish")


def publish_categories(
    storage: Storage,
    config: Config,
    categories: Iterable[str] | None = None,
    *,
    full_pages: bool = False,
    related: RelatedFinder | None = None,
) -> list[str]:
    """Republish `categories` (None: every configured category and every category in storage),
    then all.atom, feeds.opml and the website (publish/pages/: article and category pages the
    change touched, index.html; every page with `full_pages`). Returns the categories whose files changed.

    With settings.retention, items older than it are removed from the store first; the feeds and
    pages of their categories are rendered again, archive pages included (rewritten once).

    A category whose items did not change keeps its files untouched (same bytes, same mtime).
    With settings.websub_hub, the hub is pinged for the feeds that changed; a failing hub is
    logged and retried on the next publish, never an error here (aggregator/publish/websub.py).
    """
    # the debts recorded up to now are paid by this publish; a change committed while it reads stays owed
    started = datetime.now(UTC)
    owed = storage.owed_categories()
    config = with_learnt_categories(config, storage.category_titles())
    output_dir = output_dir_of(config)
    if related is None and config.settings.similar_detection:
        related = functools.partial(_story_page_links, storage, config)
    purged = _apply_retention(storage, config, output_dir)
    stats = storage.category_stats()
    names = published_feed_names(config, stats)
    if categories is None:
        targets = names
    else:
        wanted = set(categories) | set(purged.categories)
        for name in sorted(wanted - set(names)):
            log.warning("publish: no feed for category %r (unknown or unpublishable id), skipped", name)
        targets = [name for name in names if name in wanted]

    changed: list[str] = []
    #: feed name → what went wrong
    failed: dict[str, Exception] = {}
    for name in targets:
        if _publish_one(name, failed, functools.partial(_publish_feed, storage, config, output_dir, name)):
            changed.append(name)
    all_changed = bool(targets) and _publish_one(
        ALL_FEED, failed, functools.partial(_publish_feed, storage, config, output_dir, ALL_FEED))
    feed_set = [*names, ALL_FEED]

    def write_opml() -> bool:
        with _writing(output_dir / OPML_FILE, "feeds.opml"):
            return write_with_gzip(output_dir / OPML_FILE, render_opml(config, feed_set))

    def write_pages() -> bool:
        with _writing(output_dir / INDEX_FILE, "pages"):
            publish_pages(
                storage, config, output_dir, names=names, stats=stats, full=full_pages, purged=purged,
                related=related, touched=None if categories is None else targets,
            )
        return True

    _publish_one("feeds.opml", failed, write_opml)
    _publish_one("pages", failed, write_pages)
    # all.atom and the pages are rendered beside the categories: while either fails, every debt stays
    paid = (set() if ALL_FEED in failed or "pages" in failed
            else (set(owed) if categories is None else set(categories)) - set(failed))
    storage.clear_owed(paid, started)

    hub = config.settings.websub_hub
    if hub:
        from aggregator.publish.websub import default_ping, notify_hub

        topics = [
            file_url(config.settings.base_url, file(name))
            for name in [*changed, *([ALL_FEED] if all_changed else [])]
            for file in (atom_file, json_file)
        ]
        notify_hub(output_dir, hub, topics, default_ping(config.settings))
    if failed:
        first = next(iter(failed.values()))
        message = str(first) if isinstance(first, PublishError) else f"publish: {type(first).__name__}: {first}"
        raise PublishFailures(list(failed), message) from first
    return changed


def _publish_one(name: str, failed: dict[str, Exception], publish: Callable[[], bool]) -> bool:
    """Run one feed's publish; any exception fails that feed only: logged, added to `failed`, and the
    feed stays owed (storage's publish_owed) so the next publish tries it again (issue 10)."""
    try:
        return publish()
    except Exception as e:  # a bad item, a full disk: one feed's failure is its own
        log.error("publish: %s failed, published again later: %s", name, e, exc_info=not isinstance(e, PublishError),
                  extra={"category": name})
        failed[name] = e
        return False


def with_learnt_categories(config: Config, titles: Mapping[str, str]) -> Config:
    """`config` with the categories learnt from sources (filed by medium) added under their titles;
    a category of feeds.toml keeps its configured title."""
    learnt = {name: CategoryConfig(title=title) for name, title in sorted(titles.items())
               if name not in config.categories}
    if not learnt:
        return config
    return config.model_copy(update={"categories": {**config.categories, **learnt}})


def published_feed_names(config: Config, stored_categories: Iterable[str]) -> list[str]:
    """Configured categories in config order, then categories only storage knows (e.g. filed by
    medium), sorted. Ids that cannot be a file name and URL segment are left out with a warning."""
    names: list[str] = []
    for name in [*config.categories, *sorted(set(stored_categories) - set(config.categories))]:
        if name == ALL_FEED or not is_feed_name(name):
            log.warning("publish: category id %r cannot be published (expected %s)", name, "a-z, 0-9, - and _")
            continue
        names.append(name)
    return names


def _publish_feed(storage: Storage, config: Config, output_dir: Path, name: str) -> bool:
    """The subscription document, its JSON twin and its archive pages; True if any file changed."""
    category = None if name == ALL_FEED else name
    plan = plan_archive(storage.count_items(category), config.settings.max_items_per_feed)
    items, stories = present_stories(storage, config, name, _items_at(storage, category, plan.current_range()))
    document = describe_feed(config, name, plan)
    with _writing(output_dir / atom_file(name), name):
        changed = write_with_gzip(output_dir / atom_file(name), render_atom(document, items, config, stories))
        changed |= write_with_gzip(output_dir / json_file(name), render_json_feed(document, items, config))
        changed |= _publish_archive(storage, config, output_dir, name, plan)
    return changed


def _publish_archive(storage: Storage, config: Config, output_dir: Path, name: str, plan: ArchivePlan) -> bool:
    """Pages sealed since the last publish are written once and never again (their entry set and
    links are final); the newest, still open page is rewritten when its bytes change.

    Sealed pages are kept only while the page size and base_url they were rendered with still
    hold: after either changes every page is rendered again (a page of the old size would skip or
    repeat items on the walk, an old base_url would link to where the feeds no longer are), and
    pages beyond the new last one are removed.
    """
    category = None if name == ALL_FEED else name
    marker = output_dir / sealed_marker_file(name)
    seal = _ArchiveSeal(plan.sealed_count, plan.per_page, config.settings.base_url)
    before = _read_seal(marker)
    if before is not None and before.is_compatible(seal):
        kept_pages = before.sealed_pages
    else:
        kept_pages = 0
        _remove_pages_after(output_dir, name, plan.page_count)
    changed = False
    for page in range(1, plan.page_count + 1):
        path = output_dir / archive_file(name, page)
        if plan.is_sealed(page) and page <= kept_pages and path.exists():
            continue
        items, stories = present_stories(storage, config, name, _items_at(storage, category, plan.page_range(page)))
        changed |= write_with_gzip(path, render_atom(describe_feed(config, name, plan, page), items, config, stories))
    write_if_changed(marker, seal.to_bytes())
    return changed


@dataclass(frozen=True, slots=True)
class _ArchiveSeal:
    """What a feed's sealed archive pages on disk were rendered with (its `.sealed-pages` file)."""

    sealed_pages: int
    per_page: int
    base_url: str

    def is_compatible(self, other: _ArchiveSeal) -> bool:
        return (self.per_page, self.base_url) == (other.per_page, other.base_url)

    def to_bytes(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), sort_keys=True) + "\n").encode("utf-8")


def _read_seal(marker: Path) -> _ArchiveSeal | None:
    try:
        seal = _ArchiveSeal(**json.loads(marker.read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # not JSON, not an object, or other keys
        seal = None
    if seal is None or not (
        type(seal.sealed_pages) is int and type(seal.per_page) is int and isinstance(seal.base_url, str)
    ):
        log.warning("publish: %s is unreadable; re-rendering every archive page", marker)
        return None
    return seal


def _remove_pages_after(output_dir: Path, name: str, last_page: int) -> None:
    """Archive pages numbered above `last_page`, with their .gz twins (left by a larger page count)."""
    folder = output_dir / archive_dir(name)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        number = path.name.removesuffix(GZIP_SUFFIX).removesuffix(ATOM_SUFFIX)
        if number.isdigit() and int(number) > last_page:
            path.unlink(missing_ok=True)


def _items_at(storage: Storage, category: str | None, positions: range) -> list[Item]:
    if not positions:
        return []
    return storage.list_items_in_order(category, start=positions.start, limit=len(positions))


def _apply_retention(storage: Storage, config: Config, output_dir: Path) -> Purged:
    """Remove items past settings.retention; the archives of the feeds that lost items are unsealed,
    so every archive page of theirs is rendered once more (positions moved) instead of linking to 410s."""
    from aggregator.storage import Purged

    retention = config.settings.retention
    if retention is None:
        return Purged()
    purged = storage.purge_items_before(datetime.now(UTC) - retention)
    if purged.article_ids:
        log.info("publish: retention removed %d items older than %s", len(purged.article_ids), retention)
        for name in [*purged.categories, ALL_FEED]:
            (output_dir / sealed_marker_file(name)).unlink(missing_ok=True)
    return purged


@contextlib.contextmanager
def _writing(path: Path, name: str) -> Iterator[None]:
    """The edge where the disk's failures become PublishError."""
    try:
        yield
    except OSError as e:
        raise PublishError(name, f"publish: cannot write {path}") from e


def _story_page_links(storage: Storage, config: Config, items: Sequence[Item]) -> dict[str, list[RelatedLink]]:
    """The other papers' articles on each item's story, for its article page ("其他报纸的报道"): those among
    the story's first members, as its feed entry's "同时刊登于" lists them. Read per batch of pages, and at
    most MEMBERS_SHOWN per story: every member for every page made a poll's pages quadratic in a story's
    size (bench/bench_poll.py, README "Benchmarks")."""
    return {
        article_id: [RelatedLink(article_id=member.article_id, title=member.title, medium=paper_name(member, config))
                     for member in view.members if member.article_id != article_id]
        for article_id, view in storage.stories_of([item.article_id for item in items]).items()
    }
