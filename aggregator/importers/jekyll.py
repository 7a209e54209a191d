"""Import the legacy mirror's Jekyll posts as items, through items.plan_writes: the same path as a poll's items.

The posts are read by jekyll_posts.py, the copies of one article merged into one item. Items are
planned by items.plan_writes (as a poll's are) and written in batches of BATCH_SIZE under the source
name `jekyll-import`; an article a live
source already stored keeps its content and only gains the legacy categories (`prefer_live_content`).
The categories the import creates are stored with their titles (`<medium>新闻`), as a poll's are.
Re-running the import changes nothing: the merged raw item hashes the same (dedupe.raw_hash).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from aggregator import dedupe
from aggregator.categories import category_title, media_by_slug
from aggregator.config.load import CleanRules, Config
from aggregator.importers.jekyll_posts import (
    IMPORT_SOURCE_NAME,
    LEGACY_CHANNELS,
    LegacyPost,
    Skipped,
    iter_legacy_posts,
    merge_legacy_posts,
)
from aggregator.items import build_item, plan_writes
from aggregator.models import Candidate, Item, ItemChange, StoredItem
from aggregator.ops.progress import ProgressStep
from aggregator.storage import Storage

#: how many merged articles are cleaned and written per storage transaction
BATCH_SIZE = 500
#: skipped files listed in the report by name; the rest are only counted
MAX_LISTED_SKIPS = 100
#: the legacy mirror, against which a post's relative links resolve when it names no original link
LEGACY_BASE_URL = "http://finews.withounder.com/"
#: the legacy posts get the cleaner's defaults (site rules by host, then the allowlist)
_LEGACY_RULES = CleanRules()


class ImportProgress(Protocol):
    """What the CLI's progress display offers (aggregator.ops.progress.Progress)."""

    def advance(self, step: ProgressStep) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did; `skipped` lists the first MAX_LISTED_SKIPS, `skipped_count` counts all."""

    files: int = 0
    articles: int = 0
    inserted: int = 0
    updated: int = 0
    linked: int = 0
    unchanged: int = 0
    skipped_count: int = 0
    skipped: tuple[Skipped, ...] = ()

    def summary(self) -> str:
        lines = [(
            f"import-jekyll: {self.files} files, {self.articles} articles: {self.inserted} new, "
            f"{self.updated} updated, {self.linked} linked to stored items, {self.unchanged} unchanged, "
            f"{self.skipped_count} files skipped"
        )]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        if self.skipped_count > len(self.skipped):
            lines.append(f"  … and {self.skipped_count - len(self.skipped)} more skipped files")
        return "\n".join(lines)


def prefer_live_content(change: ItemChange, stored: StoredItem | None) -> ItemChange:
    """An import never overwrites an item a live source stored: it only adds its categories (a link)."""
    is_live = stored is not None and IMPORT_SOURCE_NAME not in stored.raw_hashes and bool(stored.raw_hashes)
    if change.action == "update" and is_live:
        return ItemChange("link", change.item, change.source_name, change.raw_hash)
    return change


def import_legacy_posts(
    storage: Storage,
    config: Config,
    paths: Iterable[Path],
    *,
    progress: ImportProgress | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import every post under `paths`; the caller holds the store's writer lock.

    The categories titled `<medium>新闻` (in feeds.toml, or learnt from live sources) are taken by
    their medium: a legacy medium with the same slug is filed apart (categories.category_for_medium).
    """
    now = now or datetime.now(UTC)
    counts: Counter[str] = Counter()
    skipped: list[Skipped] = []
    batch: list[LegacyPost] = []
    titles = {**storage.category_titles(), **{slug: category.title for slug, category in config.categories.items()}}
    media = media_by_slug(titles)
    filed: set[str] = set()
    stream = iter_legacy_posts(paths, media)
    try:
        for article_id, group in itertools.groupby(stream, key=_article_id_of):
            copies = list(group)
            counts["files"] += len(copies)
            if article_id is None:
                counts["skipped"] += len(copies)
                skipped += [c for c in copies if isinstance(c, Skipped)][: MAX_LISTED_SKIPS - len(skipped)]
                continue
            batch.append(merge_legacy_posts([c for c in copies if isinstance(c, LegacyPost)]))
            filed.update(batch[-1].categories)
            if len(batch) >= batch_size:
                counts += _write_batch(storage, batch, now, progress, counts["articles"])
                batch = []
        if batch:
            counts += _write_batch(storage, batch, now, progress, counts["articles"])
        storage.add_category_titles(_new_category_titles(filed, media, titles))
    finally:
        if progress is not None:
            progress.close()
    return ImportReport(
        files=counts["files"], articles=counts["articles"], inserted=counts["insert"], updated=counts["update"],
        linked=counts["link"], unchanged=counts["unchanged"], skipped_count=counts["skipped"], skipped=tuple(skipped),
    )


def _new_category_titles(filed: set[str], media: dict[str, str], titles: dict[str, str]) -> dict[str, str]:
    """Titles for the categories the import filed items under that had none: `<medium>新闻`, or the channel's."""
    known = {**LEGACY_CHANNELS, **{slug: category_title(medium) for slug, medium in media.items()}}
    return {slug: known[slug] for slug in sorted(filed) if slug not in titles and slug in known}


def _article_id_of(post: LegacyPost | Skipped) -> str | None:
    return post.article_id if isinstance(post, LegacyPost) else None


def _write_batch(
    storage: Storage, posts: Sequence[LegacyPost], now: datetime, progress: ImportProgress | None,
    articles_before: int,
) -> Counter[str]:
    """Clean, plan and store one batch of merged posts; counts of articles and of each action."""
    started = time.monotonic()
    candidates = []
    for post in posts:
        raw = post.to_raw_item()
        candidates.append(Candidate(post.article_id, IMPORT_SOURCE_NAME, frozenset(post.categories), raw,
                                    dedupe.raw_hash(raw)))
    plan = asyncio.run(plan_writes(storage, candidates, now, functools.partial(_clean, now=now), prefer_live_content))
    if plan.writes:
        storage.apply_update(plan.writes, None)
    counts: Counter[str] = Counter(c.action for c in plan.writes)
    counts["articles"] = len(posts)
    # a refreshed raw hash is stored, yet the article is unchanged
    counts["unchanged"] = len(posts) - len(plan.writes) + counts.pop("refresh", 0)
    if progress is not None:
        status = "new" if counts["insert"] else "updated" if counts["update"] or counts["link"] else "unchanged"
        progress.advance(ProgressStep(
            f"{IMPORT_SOURCE_NAME} ({articles_before + len(posts)} articles)", status, inserted=counts["insert"],
            updated=counts["update"], unchanged=counts["unchanged"], duration_seconds=time.monotonic() - started,
        ))
    return counts


async def _clean(candidates: Sequence[Candidate], now: datetime) -> list[tuple[Candidate, Item]]:
    """The posts' bodies are complete already: cleaning is all they need."""
    return [(c, build_item(c, LEGACY_BASE_URL, _LEGACY_RULES, now)) for c in candidates]
