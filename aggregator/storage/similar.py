"""Story queries: sign new items into stories through the band index, read stories back for publishing and ops.

The decision of which story an item joins is clusters.best_match's; this module finds its candidates
and writes the outcome down. A lookup reads at most CANDIDATES_PER_KEY rows per band key (the newest
of the window), so its cost does not grow with the store, however common a band key becomes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, func, select, union, update

from aggregator.models import StoryCounts
from aggregator.similar.clusters import StoredSignature, best_match
from aggregator.similar.signature import Signature
from aggregator.storage.schema import (
    insert_ignoring_conflicts,
    item_categories,
    item_signatures,
    item_sources,
    items,
    signature_bands,
    stories,
    story_categories,
)

#: rows read per band key: the newest items of a key are the likeliest reprints of a new one
CANDIDATES_PER_KEY = 8
#: members of a story read for one published entry ("同时刊登于" lists at most these)
MEMBERS_SHOWN = 20
_CHUNK_SIZE = 500


@dataclass(frozen=True, slots=True)
class SignedItem:
    """A new item and its signature, ready to be placed in a story."""

    article_id: str
    categories: frozenset[str]
    seen_at: datetime
    signature: Signature


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """Where one item went: a new story of its own, or an earlier item's story."""

    article_id: str
    story_id: str
    #: the earlier item it reprints (None: it starts a story)
    matched_id: str | None
    similarity: float | None
    #: categories of every member of the story (when it joined one): their feeds show the story
    story_categories: frozenset[str]

    @property
    def is_merge(self) -> bool:
        return self.matched_id is not None


@dataclass(frozen=True, slots=True)
class StoryMember:
    """One item of a story, as `aggregator similar` and the feeds show it."""

    article_id: str
    story_id: str
    member_index: int
    title: str
    url: str | None
    categories: frozenset[str]
    sources: frozenset[str]
    seen_at: datetime
    matched_id: str | None
    similarity: float | None


@dataclass(frozen=True, slots=True)
class StoryView:
    """A story with more than one member, as one feed page needs it."""

    story_id: str
    member_count: int
    #: when the story last gained a member
    updated: datetime
    #: the first MEMBERS_SHOWN members, in joining order
    members: tuple[StoryMember, ...]


def assign_stories(
    connection: Connection, signed: Sequence[SignedItem], threshold: float, window: timedelta, now: datetime
) -> list[StoryAssignment]:
    """Place each item in the story of its most similar earlier item within `window`, or a new one."""
    cutoff = now - window
    connection.execute(delete(signature_bands).where(signature_bands.c.seen_at < cutoff))
    done = _signed_ids(connection, [item.article_id for item in signed])
    assignments = []
    for item in signed:
        if item.article_id in done:  # signed already: a retried poll never moves an item
            continue
        done.add(item.article_id)
        assignments.append(_assign_one(connection, item, threshold, cutoff))
    return assignments


def _assign_one(connection: Connection, item: SignedItem, threshold: float, cutoff: datetime) -> StoryAssignment:
    signature = item.signature
    candidates = _candidates(connection, signature.band_keys, cutoff) if signature.is_matchable else []
    match = best_match(signature, candidates, threshold)
    if match is None:
        story_id, member_index = item.article_id, 0
        connection.execute(stories.insert().values(story_id=story_id, member_count=1, updated=item.seen_at))
    else:
        story_id = match.story_id
        member_index = connection.execute(
            select(stories.c.member_count).where(stories.c.story_id == story_id)
        ).scalar_one()
        connection.execute(
            update(stories).where(stories.c.story_id == story_id)
            .values(member_count=member_index + 1, updated=item.seen_at)
        )
    connection.execute(item_signatures.insert().values(
        article_id=item.article_id, sketch=signature.sketch, numbers=" ".join(sorted(signature.numbers)),
        shingle_count=signature.shingle_count, seen_at=item.seen_at, story_id=story_id,
        member_index=member_index, matched_id=match.article_id if match else None,
        similarity=match.similarity if match else None,
    ))
    if signature.is_matchable:
        connection.execute(signature_bands.insert(), [
            {"band_key": key, "seen_at": item.seen_at, "article_id": item.article_id}
            for key in set(signature.band_keys)
        ])
    if item.categories:
        connection.execute(
            insert_ignoring_conflicts(connection, story_categories, ["story_id", "category"]),
            [{"story_id": story_id, "category": category} for category in sorted(item.categories)],
        )
    categories: frozenset[str] = frozenset()
    if match is not None:
        query = select(story_categories.c.category).where(story_categories.c.story_id == story_id)
        categories = frozenset(connection.execute(query).scalars())
    return StoryAssignment(
        item.article_id, story_id, match.article_id if match else None,
        match.similarity if match else None, categories,
    )


def _candidates(connection: Connection, band_keys: Iterable[int], cutoff: datetime) -> list[StoredSignature]:
    """The signed items of the window sharing a band key, at most CANDIDATES_PER_KEY per key."""
    per_key = [
        select(signature_bands.c.article_id)
        .where(signature_bands.c.band_key == key, signature_bands.c.seen_at >= cutoff)
        .order_by(signature_bands.c.seen_at.desc())
        .limit(CANDIDATES_PER_KEY)
        .subquery()
        for key in sorted(set(band_keys))
    ]
    found = union(*(select(part.c.article_id) for part in per_key)).subquery()
    query = select(
        item_signatures.c.article_id, item_signatures.c.story_id, item_signatures.c.member_index,
        item_signatures.c.seen_at, item_signatures.c.sketch, item_signatures.c.numbers,
    ).where(item_signatures.c.article_id.in_(select(found.c.article_id)))
    return [
        StoredSignature(article_id, story_id, member_index, seen_at, bytes(sketch), frozenset(numbers.split()))
        for article_id, story_id, member_index, seen_at, sketch, numbers in connection.execute(query)
    ]


def _signed_ids(connection: Connection, article_ids: Collection[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(set(article_ids))
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        chunk = ordered[begin : begin + _CHUNK_SIZE]
        query = select(item_signatures.c.article_id).where(item_signatures.c.article_id.in_(chunk))
        found.update(connection.execute(query).scalars())
    return found


def select_story_members(connection: Connection, story_id: str, limit: int | None = None) -> list[StoryMember]:
    """A story's members in joining order (the representative first)."""
    query = (
        select(
            item_signatures.c.article_id, item_signatures.c.story_id, item_signatures.c.member_index,
            items.c.title, items.c.url, item_signatures.c.seen_at, item_signatures.c.matched_id,
            item_signatures.c.similarity,
        )
        .join(items, items.c.article_id == item_signatures.c.article_id)
        .where(item_signatures.c.story_id == story_id)
        .order_by(item_signatures.c.member_index)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = list(connection.execute(query))
    ids = [row[0] for row in rows]
    categories = _grouped(connection, item_categories.c.category, ids)
    sources = _grouped(connection, item_sources.c.source, ids)
    return [
        StoryMember(article_id, story, index, title, url, frozenset(categories.get(article_id, ())),
                    frozenset(sources.get(article_id, ())), seen_at, matched_id, similarity)
        for article_id, story, index, title, url, seen_at, matched_id, similarity in rows
    ]


def select_story_id(connection: Connection, article_id: str) -> str | None:
    query = select(item_signatures.c.story_id).where(item_signatures.c.article_id == article_id)
    found: str | None = connection.execute(query).scalar_one_or_none()
    return found


def select_stories_of(connection: Connection, article_ids: Collection[str]) -> dict[str, StoryView]:
    """The stories of more than one member that the given items belong to, by article_id."""
    story_of: dict[str, str] = {}
    ordered = sorted(set(article_ids))
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        query = (
            select(item_signatures.c.article_id, item_signatures.c.story_id)
            .join(stories, stories.c.story_id == item_signatures.c.story_id)
            .where(item_signatures.c.article_id.in_(ordered[begin : begin + _CHUNK_SIZE]), stories.c.member_count > 1)
        )
        story_of.update((article_id, story_id) for article_id, story_id in connection.execute(query))
    views: dict[str, StoryView] = {}
    for story_id in sorted(set(story_of.values())):
        count, updated = connection.execute(
            select(stories.c.member_count, stories.c.updated).where(stories.c.story_id == story_id)
        ).one()
        members = tuple(select_story_members(connection, story_id, MEMBERS_SHOWN))
        views[story_id] = StoryView(story_id, count, updated, members)
    return {article_id: views[story_id] for article_id, story_id in story_of.items()}


def select_earlier_members_in(connection: Connection, article_ids: Collection[str], category: str) -> set[str]:
    """Those of the given items that have an earlier member of their story in `category`."""
    mine = item_signatures.alias("mine")
    earlier = item_signatures.alias("earlier")
    query = (
        select(mine.c.article_id)
        .join(earlier, (earlier.c.story_id == mine.c.story_id) & (earlier.c.member_index < mine.c.member_index))
        .join(item_categories, item_categories.c.article_id == earlier.c.article_id)
        .where(mine.c.article_id.in_(bindparam("ids", expanding=True)), item_categories.c.category == category)
        .distinct()
    )
    found: set[str] = set()
    ordered = sorted(set(article_ids))
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        found.update(connection.execute(query, {"ids": ordered[begin : begin + _CHUNK_SIZE]}).scalars())
    return found


def count_stories(connection: Connection) -> StoryCounts:
    many = stories.c.member_count > 1
    story_count, merged = connection.execute(
        select(func.count(), func.coalesce(func.sum(stories.c.member_count - 1), 0)).where(many)
    ).one()
    signed = connection.execute(select(func.count()).select_from(item_signatures)).scalar_one()
    return StoryCounts(int(story_count), int(merged), int(signed))


def count_stories_per_source(connection: Connection) -> dict[str, StoryCounts]:
    """Per source: the stories of two or more its items are in, and its items that joined an earlier story."""
    in_story = (
        select(item_sources.c.source, item_signatures.c.story_id, item_signatures.c.member_index)
        .join(item_signatures, item_signatures.c.article_id == item_sources.c.article_id)
        .join(stories, stories.c.story_id == item_signatures.c.story_id)
        .where(stories.c.member_count > 1)
        .subquery()
    )
    query = select(
        in_story.c.source,
        func.count(in_story.c.story_id.distinct()),
        func.sum(case((in_story.c.member_index > 0, 1), else_=0)),
        func.count(),
    ).group_by(in_story.c.source)
    return {
        source: StoryCounts(int(story_count), int(merged or 0), int(signed))
        for source, story_count, merged, signed in connection.execute(query)
    }


def _grouped(connection: Connection, column: Any, ids: Sequence[str]) -> Mapping[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for begin in range(0, len(ids), _CHUNK_SIZE):
        query = select(column.table.c.article_id, column).where(column.table.c.article_id.in_(ids[begin : begin + _CHUNK_SIZE]))
        for article_id, value in connection.execute(query):
            grouped.setdefault(article_id, set()).add(value)
    return grouped
