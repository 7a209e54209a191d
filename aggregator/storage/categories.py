"""Category title queries (titles learnt from sources' media). No business logic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from aggregator.storage.schema import category_titles


def select_category_titles(connection: Connection) -> dict[str, str]:
    rows = connection.execute(select(category_titles.c.category, category_titles.c.title))
    return {category: title for category, title in rows}


def insert_category_titles(connection: Connection, titles: Mapping[str, str]) -> None:
    """Insert new titles; an existing category keeps its first title (its feed title must not flip)."""
    module: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = module.insert(category_titles).on_conflict_do_nothing(index_elements=["category"])
    connection.execute(statement, [{"category": c, "title": t} for c, t in titles.items()])
