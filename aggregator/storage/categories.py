"""Category title queries (titles learnt from sources' media). No business logic."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, select

from aggregator.storage.schema import category_titles, insert_ignoring_conflicts


def select_category_titles(connection: Connection) -> dict[str, str]:
    rows = connection.execute(select(category_titles.c.category, category_titles.c.title))
    return {category: title for category, title in rows}


def insert_category_titles(connection: Connection, titles: Mapping[str, str]) -> None:
    """Insert new titles; an existing category keeps its first title (its feed title must not flip)."""
    statement = insert_ignoring_conflicts(connection, category_titles, ["category"])
    connection.execute(statement, [{"category": c, "title": t} for c, t in titles.items()])
