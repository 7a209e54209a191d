"""Stories in the store: place new items in stories through the band index, read stories back for publishing and ops.

The decision of which story an item joins is clusters.best_match's; bands.py finds the candidates of a
whole batch at once, and this module writes the outcome down, in the caller's transaction: a poll's items
and their stories are committed together (SqlStorage.apply_update), so a crash never leaves stored items
without a story.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    func,
    select,
    update,
)

from aggregator.models import StoryCounts
from aggregator.similar.clusters import StoredSignature, StoryMatch, best_match
from aggregator.similar.signature import Signature
from aggregator.storage.bands import (
    CANDIDATES_PER_KEY,
    MAX_CANDIDATES,
    StoredCandidates,
    find_stored_candidates,
    first_number_since,
    insert_bands,
    next_number,
    prune_bands,
)
from aggregator.storage.schema import (
    insert_ignoring_conflicts,
    item_categories,
    item_signatures,
    item_sources,
    items,
    stories,
    story_categories,
)

#: new items whose stored candidates are read in one lookup (a poll's items, or a large import's in slices)
LOOKUP_BATCH = 64
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


@dataclass(frozen=True, slots=True)
class StoryRequest:
    """New items to place in stories in the transaction that stores them (issue 14), and how."""

    signed: tuple[SignedItem, ...]
    threshold: float
    #: how far back a new item's candidates may have been seen
    window: timedelta
    now: datetime

    def without(self, article_ids: Collection[str]) -> StoryRequest:
        """The request without the given items (the store refused them)."""
        return dataclasses.replace(self, signed=tuple(s for s in self.signed if s.article_id not in article_ids))


def assign_stories(
    connection: Connection, signed: Sequence[SignedItem], threshold: float, window: timedelta, now: datetime
) -> list[StoryAssignment]:
    """Place each item in the story of its most similar earlier item within `window`, or a new one.

    Earlier batches are found through the band index, the keys of LOOKUP_BATCH items per lookup (bands.py);
    earlier items of this batch through the same keys in memory, in order, so an item can join a story
    an earlier item of the batch started. Everything is written at the end with one executemany per table.
    """
    cutoff = now - window
    first_number = first_number_since(connection, cutoff)
    prune_bands(connection, first_number)
    done = _signed_ids(connection, [item.article_id for item in signed])
    todo: list[SignedItem] = []
    for item in signed:
        if item.article_id not in done:  # signed already: a retried poll never moves an item
            done.add(item.article_id)
            todo.append(item)
    batch = _Batch(cutoff)
    for begin in range(0, len(todo), LOOKUP_BATCH):  # slices keep a large import's lookup memory bounded
        part = todo[begin : begin + LOOKUP_BATCH]
        stored = find_stored_candidates(
            connection, (item.signature.band_keys for item in part if item.signature.is_matchable), first_number)
        for item in part:
            _place(item, stored, batch, threshold)
    batch.write(connection)
    categories = _story_categories(connection, {a.story_id for a in batch.assignments if a.is_merge})
    return [
        dataclasses.replace(a, story_categories=categories.get(a.story_id, frozenset())) if a.is_merge else a
        for a in batch.assignments
    ]


def _place(item: SignedItem, stored: StoredCandidates, batch: _Batch, threshold: float) -> None:
    """Into the story of the most similar earlier item, stored or of this batch, or a story of its own."""
    signature = item.signature
    candidates: list[StoredSignature] = []
    if signature.is_matchable:
        candidates = stored.candidates(signature.band_keys) + batch.candidates(signature.band_keys)
    match = best_match(signature, candidates, threshold)
    if match is None:
        batch.start_story(item)
        return
    if match.story_id not in batch.member_counts:
        batch.member_counts[match.story_id] = stored.member_counts[match.story_id]
    batch.join_story(item, match)


class _Batch:
    """The stories one assign_stories call decides, kept in memory until written in one go."""

    def __init__(self, cutoff: datetime) -> None:
        #: the window's start: an item seen before it gets no band rows (the next lookup would not read them)
        self.cutoff = cutoff
        self.assignments: list[StoryAssignment] = []
        #: story_id → members so far (stories of this batch, and stored stories this batch grows)
        self.member_counts: dict[str, int] = {}
        self.new_stories: set[str] = set()
        #: story_id → seen_at of its newest member
        self.updated: dict[str, datetime] = {}
        self.signature_rows: list[dict[str, Any]] = []
        #: (band key, article_id, seen_at): numbered when written
        self.band_rows: list[tuple[int, str, datetime]] = []
        self.category_rows: set[tuple[str, str]] = set()
        #: band key → this batch's items with it, newest last, at most CANDIDATES_PER_KEY
        self._by_key: dict[int, list[str]] = {}
        #: article_id → signature of this batch's matchable items
        self._signed: dict[str, StoredSignature] = {}

    def candidates(self, band_keys: Iterable[int]) -> list[StoredSignature]:
        """This batch's items sharing a band key, those sharing the most first, at most MAX_CANDIDATES."""
        # counted by id: a record's generated __hash__ is Python code, a str caches its hash
        shared = Counter(article_id for key in set(band_keys) for article_id in self._by_key.get(key, ()))
        return [self._signed[article_id] for article_id, _ in shared.most_common(MAX_CANDIDATES)]

    def start_story(self, item: SignedItem) -> None:
        self.member_counts[item.article_id] = 0
        self.new_stories.add(item.article_id)
        self._add(item, item.article_id, None)

    def join_story(self, item: SignedItem, match: StoryMatch) -> None:
        self._add(item, match.story_id, match)

    def _add(self, item: SignedItem, story_id: str, match: StoryMatch | None) -> None:
        signature = item.signature
        member_index = self.member_counts[story_id]
        self.member_counts[story_id] = member_index + 1
        self.updated[story_id] = item.seen_at
        self.signature_rows.append({
            "article_id": item.article_id, "sketch": signature.sketch, "numbers": " ".join(sorted(signature.numbers)),
            "shingle_count": signature.shingle_count, "seen_at": item.seen_at, "story_id": story_id,
            "member_index": member_index, "matched_id": match.article_id if match else None,
            "similarity": match.similarity if match else None,
        })
        if signature.is_matchable:
            stored = StoredSignature(item.article_id, story_id, member_index, item.seen_at, signature.sketch,
                                     signature.numbers)
            self._signed[item.article_id] = stored
            for key in set(signature.band_keys):
                self.band_rows.append((key, item.article_id, item.seen_at))
                same_key = self._by_key.setdefault(key, [])
                same_key.append(item.article_id)
                del same_key[:-CANDIDATES_PER_KEY]
        self.category_rows.update((story_id, category) for category in item.categories)
        self.assignments.append(StoryAssignment(
            item.article_id, story_id, match.article_id if match else None,
            match.similarity if match else None, frozenset(),
        ))

    def write(self, connection: Connection) -> None:
        """Everything in one executemany per table. Signatures are numbered after every stored one, in
        (seen_at, article_id) order (bands.py)."""
        created = [{"story_id": story_id, "member_count": self.member_counts[story_id],
                    "updated": self.updated[story_id]} for story_id in sorted(self.new_stories)]
        grown = [{"key": story_id, "member_count": count, "updated": self.updated[story_id]}
                 for story_id, count in sorted(self.member_counts.items()) if story_id not in self.new_stories]
        if created:
            connection.execute(stories.insert(), created)
        if grown:
            connection.execute(update(stories).where(stories.c.story_id == bindparam("key")), grown)
        numbers: dict[str, int] = {}
        if self.signature_rows:
            base = next_number(connection)
            self.signature_rows.sort(key=lambda row: (row["seen_at"], row["article_id"]))
            for offset, row in enumerate(self.signature_rows):
                row["number"] = numbers[row["article_id"]] = base + offset
            connection.execute(item_signatures.insert(), self.signature_rows)
        band_rows = sorted((key, numbers[article_id]) for key, article_id, seen_at in self.band_rows
                           if seen_at >= self.cutoff)
        if band_rows:
            insert_bands(connection, band_rows)
        if self.category_rows:
            connection.execute(
                insert_ignoring_conflicts(connection, story_categories, ["story_id", "category"]),
                [{"story_id": story_id, "category": category} for story_id, category in sorted(self.category_rows)],
            )


def _story_categories(connection: Connection, story_ids: Collection[str]) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = {}
    ordered = sorted(story_ids)
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        query = select(story_categories.c.story_id, story_categories.c.category).where(
            story_categories.c.story_id.in_(ordered[begin : begin + _CHUNK_SIZE]))
        for story_id, category in connection.execute(query):
            grouped.setdefault(story_id, set()).add(category)
    return {story_id: frozenset(categories) for story_id, categories in grouped.items()}


def _signed_ids(connection: Connection, article_ids: Collection[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(set(article_ids))
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        chunk = ordered[begin : begin + _CHUNK_SIZE]
        query = select(item_signatures.c.article_id).where(item_signatures.c.article_id.in_(chunk))
        found.update(connection.execute(query).scalars())
    return found


def select_story_members(connection: Connection, story_id: str) -> list[StoryMember]:
    """A story's members in joining order (the representative first)."""
    return select_members_of_stories(connection, [story_id]).get(story_id, [])


def select_members_of_stories(
    connection: Connection, story_ids: Collection[str], limit: int | None = None
) -> dict[str, list[StoryMember]]:
    """Each story's first `limit` members (None: all) in joining order.

    Stories of at most `limit` members are read together, a few statements per _CHUNK_SIZE stories (a
    feed page shows hundreds); a larger story is read on its own with a LIMIT, so one reprinted
    thousands of times costs `limit` rows, never all of its members.
    """
    ordered = sorted(set(story_ids))
    columns = select(
        item_signatures.c.article_id, item_signatures.c.story_id, item_signatures.c.member_index,
        items.c.title, items.c.url, item_signatures.c.seen_at, item_signatures.c.matched_id,
        item_signatures.c.similarity,
    ).join(items, items.c.article_id == item_signatures.c.article_id)
    together = columns.where(item_signatures.c.story_id.in_(bindparam("ids", expanding=True)))
    large = set() if limit is None else _stories_larger_than(connection, ordered, limit)
    rows: list[Any] = []
    small = [story_id for story_id in ordered if story_id not in large]
    for begin in range(0, len(small), _CHUNK_SIZE):
        rows += connection.execute(together, {"ids": small[begin : begin + _CHUNK_SIZE]})
    for story_id in sorted(large):
        rows += connection.execute(
            columns.where(item_signatures.c.story_id == story_id).order_by(item_signatures.c.member_index).limit(limit))
    rows.sort(key=lambda row: (row[1], row[2]))
    members: dict[str, list[StoryMember]] = {}
    for begin in range(0, len(rows), _CHUNK_SIZE):
        part = rows[begin : begin + _CHUNK_SIZE]
        ids = [row[0] for row in part]
        categories = _grouped(connection, item_categories.c.category, ids)
        sources = _grouped(connection, item_sources.c.source, ids)
        for article_id, story, index, title, url, seen_at, matched_id, similarity in part:
            members.setdefault(story, []).append(StoryMember(
                article_id, story, index, title, url, frozenset(categories.get(article_id, ())),
                frozenset(sources.get(article_id, ())), seen_at, matched_id, similarity))
    return members


def _stories_larger_than(connection: Connection, story_ids: Sequence[str], limit: int) -> set[str]:
    large: set[str] = set()
    for begin in range(0, len(story_ids), _CHUNK_SIZE):
        query = select(stories.c.story_id).where(
            stories.c.story_id.in_(story_ids[begin : begin + _CHUNK_SIZE]), stories.c.member_count > limit)
        large.update(connection.execute(query).scalars())
    return large


def select_story_id(connection: Connection, article_id: str) -> str | None:
    query = select(item_signatures.c.story_id).where(item_signatures.c.article_id == article_id)
    found: str | None = connection.execute(query).scalar_one_or_none()
    return found


def select_stories_of(connection: Connection, article_ids: Collection[str]) -> dict[str, StoryView]:
    """The stories of more than one member that the given items belong to, by article_id, each with
    its first MEMBERS_SHOWN members."""
    story_of: dict[str, str] = {}
    ordered = sorted(set(article_ids))
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        query = (
            select(item_signatures.c.article_id, item_signatures.c.story_id)
            .join(stories, stories.c.story_id == item_signatures.c.story_id)
            .where(item_signatures.c.article_id.in_(ordered[begin : begin + _CHUNK_SIZE]), stories.c.member_count > 1)
        )
        story_of.update((article_id, story_id) for article_id, story_id in connection.execute(query))
    story_ids = sorted(set(story_of.values()))
    members = select_members_of_stories(connection, story_ids, MEMBERS_SHOWN)
    views: dict[str, StoryView] = {}
    for begin in range(0, len(story_ids), _CHUNK_SIZE):
        counts = select(stories.c.story_id, stories.c.member_count, stories.c.updated).where(
            stories.c.story_id.in_(story_ids[begin : begin + _CHUNK_SIZE]))
        for story_id, count, updated in connection.execute(counts):
            views[story_id] = StoryView(story_id, count, updated, tuple(members.get(story_id, ())))
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
