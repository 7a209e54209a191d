"""The owed-publishing record: categories whose feeds must be published again. No business logic.

Rows are written in the same transaction as the items that changed, so a publisher that dies (or a
process killed between storing and publishing) leaves the debt in the store instead of losing it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select

from aggregator.storage.schema import insert_ignoring_conflicts, publish_claims, publish_owed


def mark_owed(connection: Connection, categories: Collection[str]) -> None:
    """Owe a publish of each category, inside the caller's transaction; an older debt keeps its time."""
    if not categories:
        return
    now = datetime.now(UTC)
    statement = insert_ignoring_conflicts(connection, publish_owed, ["category"])
    connection.execute(statement, [{"category": c, "owed_since": now} for c in sorted(categories)])


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
