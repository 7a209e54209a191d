"""Remove items older than the retention cutoff, keeping archive positions dense.

No business logic: what is old is decided by the caller's cutoff (settings.retention). Items go with
their memberships, source hashes and search documents, and their categories are counted again; the
positions left are renumbered 0, 1, 2, … in their old order (all items, and per category), so RFC 5005
archive arithmetic (publish/archive.py) still holds: the caller re-renders archive pages once after a purge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, text

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
    for begin in range(0, len(ids), _CHUNK):
        chunk = ids[begin : begin + _CHUNK]
        categories.update(
            connection.execute(
                select(item_categories.c.category).where(item_categories.c.article_id.in_(chunk)).distinct()
            ).scalars()
        )
        remove_documents(connection, chunk)
        for table in ("item_categories", "item_sources", "items"):
            connection.execute(
                text(f"DELETE FROM {table} WHERE article_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                {"ids": chunk},
            )
    _renumber(connection)
    recount_category_stats(connection, categories)
    return Purged(tuple(ids), frozenset(categories), tuple(position for _, position in rows))


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
