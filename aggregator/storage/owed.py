"""The publishing debt: categories whose feeds committed polls changed and no publish has written yet. No business logic.

Written in the transaction that stores the items (so a killed `poll` leaves its changes owed, never
lost), read by the next `poll`, `build` or daemon start, deleted once the category's files are written.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select

from aggregator.models import ItemChange
from aggregator.storage.schema import publish_owed, upsert


def owe_publish(connection: Connection, changes: Sequence[ItemChange]) -> None:
    """Record the categories of the written changes as owed, stamped now (the latest change wins)."""
    categories = sorted({c for change in changes if change.action != "unchanged" for c in change.item.categories})
    if not categories:
        return
    now = datetime.now(UTC)
    connection.execute(upsert(connection, publish_owed, ["category"], ["owed_since"]),
                       [{"category": category, "owed_since": now} for category in categories])


def select_owed(connection: Connection) -> dict[str, datetime]:
    rows = connection.execute(select(publish_owed.c.category, publish_owed.c.owed_since))
    return {category: owed_since for category, owed_since in rows}


def delete_owed(connection: Connection, categories: Collection[str], published_from: datetime) -> None:
    """Delete the debts of `categories` recorded up to `published_from`; a change committed after the
    publish began reading stays owed."""
    connection.execute(
        delete(publish_owed).where(publish_owed.c.category.in_(sorted(categories)),
                                   publish_owed.c.owed_since <= published_from)
    )
