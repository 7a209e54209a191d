"""The owed-publishing record and the publisher's claims on it, on both backends: a change stored while
its category is being published is owed again, never lost; a dead publisher's claims are owed again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from aggregator.storage import SqlStorage, Storage
from aggregator.storage.schema import publish_claims, publish_owed
from tests.test_storage import change, make_item


def _rows(storage: Storage) -> tuple[list[str], list[tuple[str, str]]]:
    assert isinstance(storage, SqlStorage)
    with storage.engine.connect() as connection:
        owed = list(connection.execute(select(publish_owed.c.category).order_by(publish_owed.c.category)).scalars())
        claims = [tuple(row) for row in connection.execute(
            select(publish_claims.c.category, publish_claims.c.publisher).order_by(publish_claims.c.category))]
    return owed, claims  # type: ignore[return-value]


def test_stored_changes_owe_their_categories_a_publish_in_the_same_transaction(storage: Storage, now: datetime) -> None:
    storage.apply_update([change("insert", make_item("NW1", now, categories=("news", "sports")))], None)
    storage.apply_update([change("unchanged", make_item("NW2", now, categories=("weather",)))], None)

    assert _rows(storage) == (["news", "sports"], [])


def test_a_change_during_a_publish_is_owed_again_and_a_dead_publishers_claims_return(
    storage: Storage, now: datetime
) -> None:
    assert isinstance(storage, SqlStorage)
    storage.apply_update([change("insert", make_item("NW1", now, categories=("news", "sports")))], None)
    assert storage.claim_owed_categories("p1") == ["news", "sports"]
    assert _rows(storage) == ([], [("news", "p1"), ("sports", "p1")])

    storage.apply_update([change("insert", make_item("NW2", now, categories=("news",)))], None)
    storage.settle_publish_claims(["news"], published=True)
    # the publish of "news" read the store before NW2: "news" is owed again
    assert _rows(storage) == (["news"], [("sports", "p1")])

    # p1 died holding "sports"; the next publisher owes it again
    assert storage.restore_publish_claims() == ["sports"]
    assert _rows(storage) == (["news", "sports"], [])
    assert storage.claim_owed_categories("p2") == ["news", "sports"]
    storage.settle_publish_claims(["news", "sports"], published=False)
    assert _rows(storage) == (["news", "sports"], [])


def test_a_refreshed_raw_hash_is_stored_and_owes_no_publish(storage: Storage, now: datetime) -> None:
    item = make_item("NW1", now, categories=("news",))
    storage.apply_update([change("insert", item, "r1")], None)
    storage.settle_publish_claims(storage.claim_owed_categories("p1"), published=True)

    storage.apply_update([change("refresh", item, "r2")], None)

    assert _rows(storage) == ([], [])
    assert storage.get_stored_items(["NW1"])["NW1"].raw_hashes == {"eastmoney-nantong": "r2"}
