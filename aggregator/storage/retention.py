"""Remove items older than the retention cutoff, keeping archive positions dense.

No business logic: what is old is decided by the caller's cutoff (settings.retention). Items go with
their memberships, source hashes, search documents, signatures and band rows; their categories are counted
and their stories numbered again. The positions left are renumbered 0, 1, 2, … in their old order (all
items, and per category), so RFC 5005 archive arithmetic (publish/archive.py) still holds: the caller
re-renders archive pages once after a purge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, select, text

from aggregator.storage.categories import recount_category_stats
from aggregator.storage.schema import item_categories, items, newest_first_key
from aggregator.storage.search_index import remove_documents

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge removed."""

    article_ids: tuple[str, ...] = ()
    #: categories that lost items
    categories: frozenset[str] = frozenset()
    #: how many removed items sat below each old all-items position (for publish's high-water mark)
    old_positions: tuple[int, ...] = ()


def purge_items_before(connection: Connection, cutoff: datetime) -> Purged:
    """Delete items listed before `cutoff` inside the caller's write transaction."""
    rows = connection.execute(
        select(items.c.article_id, items.c.position).where(newest_first_key() < cutoff).order_by(items.c.position)
    ).all()
    if not rows:
        return Purged()
    ids = [article_id for article_id, _ in rows]
    categories: set[str] = set()
    stories: set[str] = set()
    for begin in range(0, len(ids), _CHUNK):
        chunk = ids[begin : begin + _CHUNK]
        categories.update(
            connection.execute(
                select(item_categories.c.category).where(item_categories.c.article_id.in_(chunk)).distinct()
            ).scalars()
        )
        remove_documents(connection, chunk)
        stories.update(_execute(connection, "SELECT DISTINCT story_id FROM item_signatures WHERE article_id IN :ids",
                                chunk).scalars())
        _execute(connection, "DELETE FROM signature_bands WHERE number IN "
                             "(SELECT number FROM item_signatures WHERE article_id IN :ids)", chunk)
        for table in ("item_signatures", "item_categories", "item_sources", "items"):
            _execute(connection, f"DELETE FROM {table} WHERE article_id IN :ids", chunk)
    _renumber(connection)
    _renumber_stories(connection, sorted(stories))
    recount_category_stats(connection, categories)
    return Purged(tuple(ids), frozenset(categories), tuple(position for _, position in rows))


def _renumber_stories(connection: Connection, story_ids: list[str]) -> None:
    """The stories that lost members: gone when none is left, else members numbered 0, 1, 2, … again in
    their old order and counted, so the next reprint takes index member_count as always. A story keeps its
    id (its first item's, now purged): feeds name the story by it."""
    for begin in range(0, len(story_ids), _CHUNK):
        chunk = story_ids[begin : begin + _CHUNK]
        for table in ("stories", "story_categories"):
            _execute(connection, f"DELETE FROM {table} WHERE story_id IN :ids AND NOT EXISTS "
                                 f"(SELECT 1 FROM item_signatures AS s WHERE s.story_id = {table}.story_id)", chunk)
        _execute(connection, "UPDATE item_signatures SET member_index = -1 - member_index WHERE story_id IN :ids", chunk)
        _execute(connection, "UPDATE item_signatures SET member_index = r.n FROM (SELECT article_id, row_number() "
                             "OVER (PARTITION BY story_id ORDER BY member_index DESC) - 1 AS n FROM item_signatures "
                             "WHERE story_id IN :ids) AS r WHERE r.article_id = item_signatures.article_id", chunk)
        _execute(connection, "UPDATE stories SET member_count = (SELECT count(*) FROM item_signatures AS s "
                             "WHERE s.story_id = stories.story_id) WHERE story_id IN :ids", chunk)


def _execute(connection: Connection, sql: str, ids: list[str]) -> CursorResult[Any]:
    """`sql` with its `:ids` list expanded."""
    return connection.execute(text(sql).bindparams(bindparam("ids", expanding=True)), {"ids": ids})


def _renumber(connection: Connection) -> None:
    """Dense positions in the old order. Negated first: both backends check UNIQUE per row."""
    connection.execute(text("UPDATE items SET position = -1 - position"))
    connection.execute(text(
        "UPDATE items SET position = r.p FROM (SELECT article_id, "
        "row_number() OVER (ORDER BY position DESC) - 1 AS p FROM items) AS r "
        "WHERE r.article_id = items.article_id"
    ))
    connection.execute(text("UPDATE item_categories SET position = -1 - position"))
    connection.execute(text(
        "UPDATE item_categories SET position = r.p FROM (SELECT article_id, category, "
        "row_number() OVER (PARTITION BY category ORDER BY position DESC) - 1 AS p FROM item_categories) AS r "
        "WHERE r.article_id = item_categories.article_id AND r.category = item_categories.category"
    ))
