"""Per-category rows: titles learnt from sources' media, and the counts the index page shows. No business logic."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Insert, bindparam, case, delete, select

from aggregator.storage.schema import (
    category_stats,
    category_titles,
    count_categories,
    dialect_insert,
    insert_ignoring_conflicts,
    item_categories,
)


@dataclass(frozen=True, slots=True)
class CategoryStats:
    """One category as `status` and the feed index show it."""

    category: str
    item_count: int
    #: newest `updated` written to the category's items (a purge recounts it; an update that moves an
    #: item's date back leaves it, as the category did change then)
    last_updated: datetime


def select_category_titles(connection: Connection) -> dict[str, str]:
    rows = connection.execute(select(category_titles.c.category, category_titles.c.title))
    return {category: title for category, title in rows}


def insert_category_titles(connection: Connection, titles: Mapping[str, str]) -> None:
    """Insert new titles; an existing category keeps its first title (its feed title must not flip)."""
    statement = insert_ignoring_conflicts(connection, category_titles, ["category"])
    connection.execute(statement, [{"category": c, "title": t} for c, t in titles.items()])


def select_category_stats(connection: Connection) -> dict[str, CategoryStats]:
    """One row per category: read from `category_stats`, kept by every write, never a scan of the items."""
    rows = connection.execute(
        select(category_stats.c.category, category_stats.c.item_count, category_stats.c.last_updated))
    return {category: CategoryStats(category, count, last_updated) for category, count, last_updated in rows}


def add_to_category_stats(connection: Connection, added: Mapping[str, int], dated: Mapping[str, datetime]) -> None:
    """Count `added` new memberships per category and raise each category's date to `dated`'s, in SQL.

    The sums and maxima are taken by the statement itself, so two writers of a PostgreSQL store never
    lose each other's counts.
    """
    rows = [{"category": category, "item_count": added.get(category, 0), "last_updated": dated[category]}
            for category in sorted(dated)]
    if rows:
        connection.execute(_add_statement(connection), rows)


def recount_category_stats(connection: Connection, categories: Collection[str]) -> None:
    """Count `categories` again from their items (after a purge): one scan of those categories only."""
    wanted = sorted(categories)
    if not wanted:
        return
    connection.execute(delete(category_stats).where(category_stats.c.category.in_(wanted)))
    recounted = count_categories().where(item_categories.c.category.in_(bindparam("wanted", expanding=True)))
    connection.execute(
        category_stats.insert().from_select(["category", "item_count", "last_updated"], recounted),
        {"wanted": wanted},
    )


def _add_statement(connection: Connection) -> Insert:
    statement = dialect_insert(connection, category_stats)
    current, excluded = category_stats.c, statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["category"],
        set_={
            "item_count": current.item_count + excluded.item_count,
            "last_updated": case((excluded.last_updated > current.last_updated, excluded.last_updated),
                                 else_=current.last_updated),
        },
    )
