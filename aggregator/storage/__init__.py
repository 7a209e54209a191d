"""open_storage(url) → Storage: items and source state in SQLite (default) or PostgreSQL.

The store itself is `sql.py` (SQLAlchemy Core over both backends); its names are exported here and
loaded at first use, so importing this package costs nothing: a `poll` whose sources all answer 304
reads and writes their states through `lite.py` (sqlite3 alone) and never imports SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.storage.sql import (
        AppliedUpdate, CategoryStats, Purged, SearchPage, SignedItem, SqlStorage, Storage, StoryAssignment,
        StoryCounts, StoryMember, StoryRequest, StoryView, connect_storage, open_storage, wrap_storage_errors,
    )

__all__ = [
    "AppliedUpdate", "CategoryStats", "Purged", "SearchPage", "SignedItem", "SqlStorage", "Storage",
    "StoryAssignment", "StoryCounts", "StoryMember", "StoryRequest", "StoryView", "connect_storage", "open_storage",
    "wrap_storage_errors",
]


def __getattr__(name: str) -> Any:
    """PEP 562: the exported names come from sql.py, imported the first time one is asked for. Other
    names (the submodules) raise AttributeError, which lets `from aggregator.storage import items` import them."""
    sql = importlib.import_module("aggregator.storage.sql")
    try:
        return getattr(sql, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
