"""The publishing debt: categories whose feeds committed polls changed and no publish has written yet. No business logic.

Written in the transaction that stores the items (so a killed `poll` leaves its changes owed, never
lost), read by the next `poll`, `build` or daemon start, deleted once the category's files are written.
On a shared PostgreSQL store one publisher at a time claims the debts (`claim_owed`) and settles them;
a publisher that dies mid-publish leaves claims that the next one restores as owed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select

from aggregator.models import ItemChange
from aggregator.storage.schema import insert_ignoring_conflicts, publish_claims, publish_owed, upsert


def owe_publish(connection: Connection, changes: Sequence[ItemChange]) -> None:
    """Record the categories of the changes subscribers see as owed, stamped now (the latest change wins)."""
    categories = sorted({c for change in changes if change.is_published for c in change.item.categories})
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


def claim_owed(connection: Connection, publisher: str) -> list[str]:
    """Move every owed category to the publisher's claims; the caller holds the write lock, so no poll is
    half-stored meanwhile: what a later poll changes is owed again, never lost."""
    rows = connection.execute(select(publish_owed.c.category, publish_owed.c.owed_since)).all()
    if not rows:
        return []
    connection.execute(delete(publish_owed).where(publish_owed.c.category.in_([r[0] for r in rows])))
    statement = insert_ignoring_conflicts(connection, publish_claims, ["category"])
    connection.execute(statement, [{"category": c, "owed_since": s, "publisher": publisher} for c, s in rows])
    return sorted(category for category, _ in rows)


def settle_claims(connection: Connection, categories: Collection[str], *, published: bool) -> None:
    """Forget claims that were published; put failed ones back as owed (an older debt keeps its time)."""
    if not categories:
        return
    claimed = publish_claims.c.category.in_(sorted(categories))
    if not published:
        rows = connection.execute(select(publish_claims.c.category, publish_claims.c.owed_since).where(claimed))
        values = [{"category": c, "owed_since": s} for c, s in rows]
        if values:
            connection.execute(insert_ignoring_conflicts(connection, publish_owed, ["category"]), values)
    connection.execute(delete(publish_claims).where(claimed))


def restore_claims(connection: Connection) -> list[str]:
    """Every claim left by a publisher that died mid-publish, owed again; returns their categories."""
    categories = list(connection.execute(select(publish_claims.c.category)).scalars())
    settle_claims(connection, categories, published=False)
    return sorted(categories)
