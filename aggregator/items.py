"""Turn what a source said (RawItem) into what we store (Item): identity, categories, completion, cleaning.

Used alike by update.py (a poll) and importers/jekyll.py (legacy posts): both hand their candidates to
`plan_writes`, which cleans only what dedupe says changed and plans the writes against the store. The
decisions are the pure modules' (identity, categories, dedupe, clean); this module strings them together
for one batch of items. No business logic of its own beyond the completion mark.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator import dedupe
from aggregator.config.load import CleanRules, SourceConfig
from aggregator.isolation import item_or_skip
from aggregator.models import Candidate, ChangeAction, Item, ItemChange, RawItem, SkippedItem, StoredItem

if TYPE_CHECKING:
    from aggregator.storage import Storage

#: appended to the raw hash of an item whose article body could not be fetched, so it is retried
INCOMPLETE_MARK = ":incomplete"

#: cleans candidates into items (completing their bodies first, in a poll); pairs in the given order
Prepare = Callable[[Sequence[Candidate]], Awaitable[Sequence[tuple[Candidate, Item]]]]
#: a last say over each planned change, given what was stored (the importer never overwrites live items)
Review = Callable[[ItemChange, StoredItem | None], ItemChange]


@dataclass(frozen=True, slots=True)
class Candidates:
    """The items of one document with their identity and categories decided."""

    candidates: tuple[Candidate, ...]
    #: the items whose identity could not be decided, and why (aggregator/isolation.py)
    skipped: tuple[SkippedItem, ...] = ()
    #: categories first seen in this document (slug → "<medium>新闻"), for `categories = "auto"`
    new_category_titles: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def merge(cls, parts: Sequence[Candidates]) -> Candidates:
        return cls(
            candidates=tuple(c for part in parts for c in part.candidates),
            skipped=tuple(s for part in parts for s in part.skipped),
            new_category_titles={k: v for part in parts for k, v in part.new_category_titles.items()},
        )


@dataclass(frozen=True, slots=True)
class StorePlan:
    """The writes a batch of candidates comes to: every change but "unchanged"."""

    writes: tuple[ItemChange, ...]
    #: distinct articles among the candidates (one per article_id)
    articles: int

    def count(self, action: ChangeAction) -> int:
        return sum(change.action == action for change in self.writes)

    def changed_categories(self) -> frozenset[str]:
        """The categories whose feeds show a change (a refreshed raw hash shows nowhere)."""
        return frozenset(
            category for change in self.writes if change.is_published for category in change.item.categories
        )

    def without(self, refused: Sequence[ItemChange], skipped_articles: int) -> StorePlan:
        """The plan as stored: without the changes the store refused, nor the articles skipped on the way."""
        return StorePlan(tuple(c for c in self.writes if all(r is not c for r in refused)),
                         self.articles - skipped_articles)


def find_candidates(raws: Sequence[RawItem], source: SourceConfig, taken: Mapping[str, str]) -> Candidates:
    """Each item's identity, categories and raw hash; an item whose identity fails (no article_id
    derivable, a malformed link, anything else) is skipped with its reason.

    `taken` (slug → medium) keeps media whose names give the same slug apart.
    """
    candidates, skipped = [], []
    media = dict(taken)
    for raw in raws:
        candidate = item_or_skip("identity", _candidate_for, raw, raw, source, media)
        if isinstance(candidate, SkippedItem):
            skipped.append(candidate)
        else:
            candidates.append(candidate)
    return Candidates(tuple(candidates), tuple(skipped), _new_titles(media, taken))


def _candidate_for(raw: RawItem, source: SourceConfig, media: dict[str, str]) -> Candidate:
    from aggregator import identity

    article_id = identity.article_id(raw, source.name, from_feed=source.kind == "feed")
    return Candidate(article_id, source.name, categories_for(source, raw, media), raw, dedupe.raw_hash(raw))


def files_by_medium(source: SourceConfig) -> bool:
    """Whether the source files items under their medium (`categories = "auto"` or `category_from = "medium"`)."""
    return source.categories == "auto" or source.category_from == "medium"


def categories_for(source: SourceConfig, raw: RawItem, media: dict[str, str]) -> frozenset[str]:
    """The source's configured categories, plus the item's medium's slug (recorded in `media`) when the
    source files by medium."""
    configured = frozenset(source.categories) if source.categories != "auto" else frozenset()
    if not files_by_medium(source):
        return configured
    from aggregator.categories import category_for_medium

    medium = (raw.medium or source.name).strip()
    slug = category_for_medium(medium, media)
    media.setdefault(slug, medium)
    return configured | {slug}


def needs_completion(source: SourceConfig) -> bool:
    """Whether the source's items get their bodies from a second request (detail endpoint, article page)."""
    if source.full_content:
        return True
    if source.kind == "json":
        return source.detail_url is not None or source.preset is not None
    return source.kind == "html" and source.body_selector is not None


def completed(candidate: Candidate, raw: RawItem) -> Candidate:
    """The candidate with its article body. When the body could not be fetched (enrich kept the list
    record as it was), the raw hash is marked so it never matches: the next poll tries again, and the
    summary is published meanwhile."""
    raw_hash = candidate.raw_hash if raw != candidate.raw else candidate.raw_hash + INCOMPLETE_MARK
    return Candidate(candidate.article_id, candidate.source_name, candidate.categories, raw, raw_hash)


def build_items(
    candidates: Sequence[Candidate], base_url: str, rules: CleanRules, now: datetime
) -> list[Item | SkippedItem]:
    """Clean each candidate into the Item subscribers will see, or say why it is skipped (runs in a worker)."""
    return [_build_one(candidate, base_url, rules, now) for candidate in candidates]


def _build_one(candidate: Candidate, base_url: str, rules: CleanRules, now: datetime) -> Item | SkippedItem:
    link = item_or_skip("url", canonical_link, candidate.raw, candidate.raw)
    if isinstance(link, SkippedItem):
        return link
    return item_or_skip("clean", build_item, candidate.raw, candidate, base_url, rules, now)


def canonical_link(raw: RawItem) -> str | None:
    """The item's canonical http(s) link; None when it has none. ValueError for a malformed one (`http://[oops/`)."""
    from aggregator import identity
    from aggregator.clean.urls import is_http_url

    return identity.canonical_url(raw.url) if raw.url and is_http_url(raw.url) else None


def build_item(candidate: Candidate, base_url: str, rules: CleanRules, now: datetime) -> Item:
    """identity + clean → Item: cleaned title, author and body, canonical link, content hash.

    The one place a RawItem's values are cleaned: parsers leave them as the source wrote them.
    `base_url` (the source's URL) resolves relative links of an item that has no link of its own.
    """
    from aggregator.clean import clean_html, clean_text

    raw = candidate.raw
    title = clean_text(raw.title)
    html = clean_html(raw.html or raw.summary, raw.url or base_url, rules)
    summary = clean_text(raw.summary) if raw.html and raw.summary else ""
    author = clean_text(raw.author) or None if raw.author else None
    url = canonical_link(raw)
    return Item(
        article_id=candidate.article_id,
        title=title,
        url=url,
        html=html,
        published=raw.published,
        updated=raw.updated or raw.published or now,
        categories=candidate.categories,
        sources=frozenset({candidate.source_name}),
        content_hash=dedupe.content_hash(title, html, summary, author, raw.published),
        summary=summary,
        author=author,
        first_seen=now,
    )


async def plan_writes(
    storage: Storage, candidates: Sequence[Candidate], now: datetime, prepare: Prepare, review: Review | None = None
) -> StorePlan:
    """What storing `candidates` writes: only what dedupe says changed is prepared (completed, cleaned).

    A batch that repeats what is stored costs no cleaning and no second read. The store is read again
    just before planning: another source may have stored the same article meanwhile. Nothing awaits
    between that read and the return, so a caller that applies the plan at once sees no other poll
    interleave.
    """
    unique = dedupe.first_per_article(candidates)
    stored = storage.get_stored_items([c.article_id for c in unique])
    to_clean = [c for c in unique if dedupe.needs_cleaning(c, stored.get(c.article_id))]
    if not to_clean:
        return StorePlan((), len(unique))
    pairs = list(await prepare(to_clean))
    fresh = storage.get_stored_items([c.article_id for c, _ in pairs])
    planned = dedupe.plan_changes(pairs, fresh, now)
    if review is not None:
        planned = [review(change, fresh.get(change.item.article_id)) for change in planned]
    return StorePlan(tuple(change for change in planned if change.action != "unchanged"), len(unique))


def _new_titles(media: Mapping[str, str], taken: Mapping[str, str]) -> dict[str, str]:
    new = {slug: medium for slug, medium in media.items() if slug not in taken}
    if not new:  # a source filed under configured categories never loads pypinyin (~0.5 s of start-up)
        return {}
    from aggregator.categories import category_title

    return {slug: category_title(medium) for slug, medium in new.items()}
