"""Item queries: apply dedupe's changes by article_id, read items back by category and order.

No business logic: what changed was decided by dedupe.plan_changes; this module only writes it
down, batched (one executemany per table) so a poll costs a handful of statements, not one per item.
Memberships get a dense 0-based position when first added, so archive pages are append-only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, func, select, union_all, update

from aggregator.models import Item, ItemChange, StoredItem
from aggregator.storage.categories import add_to_category_stats
from aggregator.storage.schema import item_categories, item_sources, items, newest_first_key, upsert

#: ids per IN (…) list: far below SQLite's bound-parameter limit (32766 since 3.32)
_CHUNK_SIZE = 500

_CONTENT_COLUMNS = ("title", "url", "html", "summary", "author", "published", "updated", "content_hash")


def write_changes(connection: Connection, changes: Sequence[ItemChange]) -> None:
    """Write insert/update/link/refresh changes inside the caller's transaction; "unchanged" is skipped.

    An item missing from the store is inserted whatever the action, and an "insert" of an item
    already stored replaces its content: a poll that planned against a slightly older view (two
    processes reading before one takes the writer lock) then converges instead of failing.
    A new item without `first_seen` is first seen at its `updated`; later changes never move it.
    """
    writes = [change for change in changes if change.action != "unchanged"]
    if not writes:
        return
    ids = {change.item.article_id for change in writes}
    dates = {article_id: _StoredDates(updated, published, first_seen) for article_id, updated, published, first_seen
             in _select_by_ids(connection, _DATE_COLUMNS, ids)}
    memberships = set(_select_pairs(connection, item_categories.c.category, ids))
    known_sources = set(_select_pairs(connection, item_sources.c.source, ids))

    next_position = _next_item_position(connection)
    new_rows: list[dict[str, Any]] = []
    content_updates: list[dict[str, Any]] = []
    new_memberships: list[tuple[str, str]] = []
    relisted: list[dict[str, Any]] = []
    raw_hashes: dict[tuple[str, str], str | None] = {}
    #: per category, the newest `updated` this write gives one of its items
    dated: dict[str, datetime] = {}
    for change in writes:
        item = change.item
        stored = dates.get(item.article_id)
        if stored is None:
            row = _item_row(item, next_position)
            new_rows.append(row)
            next_position += 1
            dates[item.article_id] = _StoredDates(item.updated, item.published, row["first_seen"])
        elif change.action in ("insert", "update"):
            content_updates.append({"key": item.article_id, **_content_values(item)})
            dates[item.article_id] = _StoredDates(item.updated, item.published, stored.first_seen)
            if dates[item.article_id].listed_at != stored.listed_at:
                relisted.append({"key": item.article_id, "listed_at": dates[item.article_id].listed_at})
        for category in sorted(item.categories):
            if (item.article_id, category) not in memberships:
                memberships.add((item.article_id, category))
                new_memberships.append((item.article_id, category))
            updated = dates[item.article_id].updated
            if category not in dated or updated > dated[category]:
                dated[category] = updated
        raw_hashes[(item.article_id, change.source_name)] = change.raw_hash
        for source in item.sources:
            pair = (item.article_id, source)
            if pair not in known_sources and pair not in raw_hashes:
                raw_hashes[pair] = None

    if new_rows:
        connection.execute(items.insert(), new_rows)
    if content_updates:
        connection.execute(update(items).where(items.c.article_id == bindparam("key")), content_updates)
    if relisted:
        connection.execute(update(item_categories).where(item_categories.c.article_id == bindparam("key")), relisted)
    if new_memberships:
        connection.execute(item_categories.insert(), _number_memberships(connection, new_memberships, dates))
    added: dict[str, int] = {}
    for _, category in new_memberships:
        added[category] = added.get(category, 0) + 1
    add_to_category_stats(connection, added, dated)
    _write_raw_hashes(connection, raw_hashes, known_sources)


@dataclass(frozen=True, slots=True)
class _StoredDates:
    """An item's dates as its row holds them once the write is done."""

    updated: datetime
    published: datetime | None
    first_seen: datetime

    @property
    def listed_at(self) -> datetime:
        """newest_first_key() of the row, which item_categories.listed_at copies."""
        return self.published if self.published is not None else self.first_seen


_DATE_COLUMNS = (items.c.article_id, items.c.updated, items.c.published, items.c.first_seen)


def select_stored_items(connection: Connection, article_ids: Collection[str]) -> dict[str, StoredItem]:
    ids = set(article_ids)
    categories = _group_pairs(_select_pairs(connection, item_categories.c.category, ids))
    hashes: dict[str, dict[str, str]] = {}
    hash_columns = (item_sources.c.article_id, item_sources.c.source, item_sources.c.raw_hash)
    for article_id, source, raw_hash in _select_by_ids(connection, hash_columns, ids):
        if raw_hash is not None:
            hashes.setdefault(article_id, {})[source] = raw_hash
    columns = (
        items.c.article_id,
        items.c.content_hash,
        items.c.updated,
        items.c.published,
        items.c.first_seen,
    )
    return {
        article_id: StoredItem(
            article_id=article_id,
            content_hash=content_hash,
            categories=frozenset(categories.get(article_id, ())),
            raw_hashes=hashes.get(article_id, {}),
            updated=updated,
            published=published,
            first_seen=first_seen,
        )
        for article_id, content_hash, updated, published, first_seen in _select_by_ids(
            connection, columns, ids
        )
    }


def select_item(connection: Connection, article_id: str) -> Item | None:
    found = _load_items(connection, select(items).where(items.c.article_id == article_id))
    return found[0] if found else None


def select_items(connection: Connection, category: str | None, limit: int) -> list[Item]:
    """Newest first by newest_first_key(), ties by article_id, both descending."""
    if category is None:
        query = select(items).order_by(newest_first_key().desc(), items.c.article_id.desc())
    else:  # the same order from the category's own index (item_categories.listed_at copies the key)
        query = (
            select(items)
            .join(item_categories)
            .where(item_categories.c.category == category)
            .order_by(item_categories.c.listed_at.desc(), item_categories.c.article_id.desc())
        )
    return _load_items(connection, query.limit(limit))


def select_items_in_order(connection: Connection, category: str | None, start: int, limit: int) -> list[Item]:
    """Oldest first by position; positions are dense from 0, so `start` is a position."""
    if category is None:
        query = select(items).where(items.c.position >= start).order_by(items.c.position)
    else:
        query = (
            select(items)
            .join(item_categories)
            .where(item_categories.c.category == category, item_categories.c.position >= start)
            .order_by(item_categories.c.position)
        )
    return _load_items(connection, query.limit(limit))


def count_items(connection: Connection, category: str | None) -> int:
    """Positions are dense from 0 and never freed, so the count is the highest position + 1: one
    look-up in the position index, not a scan that grows with the store."""
    if category is None:
        query = select(func.max(items.c.position))
    else:
        query = select(func.max(item_categories.c.position)).where(item_categories.c.category == category)
    highest = connection.execute(query).scalar_one()
    return 0 if highest is None else int(highest) + 1


def count_items_per_source(connection: Connection) -> dict[str, int]:
    query = select(item_sources.c.source, func.count()).group_by(item_sources.c.source)
    return {source: int(count) for source, count in connection.execute(query)}


def _item_row(item: Item, position: int) -> dict[str, Any]:
    return {
        "article_id": item.article_id,
        "position": position,
        "first_seen": item.first_seen or item.updated,
        **_content_values(item),
    }


def _content_values(item: Item) -> dict[str, Any]:
    return {name: getattr(item, name) for name in _CONTENT_COLUMNS}


def _next_item_position(connection: Connection) -> int:
    highest = connection.execute(select(func.max(items.c.position))).scalar_one()
    return 0 if highest is None else int(highest) + 1


def _number_memberships(
    connection: Connection, pairs: list[tuple[str, str]], dates: dict[str, _StoredDates]
) -> list[dict[str, Any]]:
    """Give each new membership the next position of its category, in the order of `pairs`, and its listing date."""
    # one max() per category, each a single look-up in the (category, position) index; a GROUP BY over
    # them read every membership of those categories, a cost that grew with the store
    highest = [
        select(bindparam(f"c{index}", category, String), func.max(item_categories.c.position))
        .where(item_categories.c.category == category)
        for index, category in enumerate(sorted({category for _, category in pairs}))
    ]
    next_positions = {category: int(position) + 1
                      for category, position in connection.execute(union_all(*highest)) if position is not None}
    rows = []
    for article_id, category in pairs:
        position = next_positions.get(category, 0)
        next_positions[category] = position + 1
        rows.append({"article_id": article_id, "category": category, "position": position,
                     "listed_at": dates[article_id].listed_at})
    return rows


def _write_raw_hashes(
    connection: Connection, raw_hashes: dict[tuple[str, str], str | None], known: set[tuple[str, str]]
) -> None:
    hashed = [
        {"article_id": article_id, "source": source, "raw_hash": raw_hash}
        for (article_id, source), raw_hash in raw_hashes.items()
        if raw_hash is not None
    ]
    unhashed = [
        {"article_id": article_id, "source": source, "raw_hash": None}
        for (article_id, source), raw_hash in raw_hashes.items()
        if raw_hash is None and (article_id, source) not in known
    ]
    if hashed:
        connection.execute(upsert(connection, item_sources, ["article_id", "source"], ["raw_hash"]), hashed)
    if unhashed:
        connection.execute(item_sources.insert(), unhashed)


def _load_items(connection: Connection, query: Any) -> list[Item]:
    """Run an items query and attach each item's categories and sources, keeping the query's order."""
    rows = list(connection.execute(query).mappings())
    ids = {row["article_id"] for row in rows}
    categories = _group_pairs(_select_pairs(connection, item_categories.c.category, ids))
    sources = _group_pairs(_select_pairs(connection, item_sources.c.source, ids))
    return [
        Item(
            article_id=row["article_id"],
            title=row["title"],
            url=row["url"],
            html=row["html"],
            published=row["published"],
            updated=row["updated"],
            categories=frozenset(categories.get(row["article_id"], ())),
            sources=frozenset(sources.get(row["article_id"], ())),
            content_hash=row["content_hash"],
            summary=row["summary"],
            author=row["author"],
            first_seen=row["first_seen"],
        )
        for row in rows
    ]


def _select_pairs(connection: Connection, column: Any, ids: Collection[str]) -> Iterator[tuple[str, Any]]:
    """(article_id, column) for the given items, where `column` belongs to a table keyed by article_id."""
    for row in _select_by_ids(connection, (column.table.c.article_id, column), ids):
        yield row[0], row[1]


def _select_by_ids(connection: Connection, columns: Sequence[Any], ids: Collection[str]) -> Iterator[Any]:
    """Rows of `columns` (the first being an article_id column) for the given items, chunked."""
    for chunk in _chunks(ids):
        yield from connection.execute(select(*columns).where(columns[0].in_(chunk)))


def _group_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for article_id, value in pairs:
        grouped.setdefault(article_id, set()).add(value)
    return grouped


def _chunks(ids: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(ids)
    for begin in range(0, len(ordered), _CHUNK_SIZE):
        yield ordered[begin : begin + _CHUNK_SIZE]
