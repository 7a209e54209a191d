"""The LSH band index: the stored candidates of a whole batch of new items, found in two statements.

Each signature has a number, 1, 2, 3, … in the order items were signed (item_signatures.number), and a
band row is (band key, number): one entry of one narrow B-tree (a WITHOUT ROWID table on SQLite), where
the rows were (band key, seen_at, article_id) in a rowid table with two indexes. Written 32 per item,
those rows were the largest single cost of storing a poll: 291,520 of them in 200 transactions take
2.6–4.6 s as numbers against 8.4–10.7 s before on SQLite, in a quarter of the space (bench/bench_bands.py,
alternating in one run). The window `seen_at >= cutoff` becomes `number >= first_number_since(cutoff)`,
one probe of an index on item_signatures; rows below it are pruned through the index on number.

One statement reads, for every distinct band key of the batch, the newest CANDIDATES_PER_KEY rows of
the window (the highest numbers) with their article_ids; the items of each new item are then ranked in
memory by the keys they share with it, and one more statement (per chunk of ids) reads the signatures of
the MAX_CANDIDATES best of each. A lookup reads a bounded number of rows per band key, so its cost does
not grow with the store however common a key becomes, and a poll costs two statements, not one per item
(bench/bench_similar.py). No business logic: clusters.best_match decides.

Numbers follow (seen_at, article_id), the order the lookup used before numbers, as long as items are
signed in the order they are seen: a store migrated to numbers finds the same candidates, and one
writer (a `poll`, the daemon) numbers each transaction's items after every earlier one's. Where two
transactions overlap (concurrent polls of the daemon, workers of the cluster mode: each poll's items
are seen when it starts, numbered when it commits), numbers follow commit order, and "newest" and the
window's edge follow numbers: an item seen a few seconds earlier may count as newer, which neither the
cap of CANDIDATES_PER_KEY nor a window of days can tell apart. Items signed long after they were seen
(nothing does that today) would stay candidates until the window passes the items numbered before them;
one already older than the window gets no band rows (storage/similar.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, delete, func, select

from aggregator.similar.clusters import StoredSignature
from aggregator.storage.schema import item_signatures, signature_bands, stories

#: rows read per band key: the newest items of a key are the likeliest reprints of a new one
CANDIDATES_PER_KEY = 4
#: items compared per new item, those sharing the most band keys: a story reprinted a hundred times
#: (or a template) costs no more than a handful of comparisons
MAX_CANDIDATES = 8
_CHUNK_SIZE = 500


@dataclass(frozen=True, slots=True)
class StoredCandidates:
    """What the band index holds for one batch of new items, as it was before the batch."""

    #: an item's band keys → the ids of its MAX_CANDIDATES stored items sharing the most of them
    ranked: dict[tuple[int, ...], list[str]]
    #: article_id → signature, for every item that is among some new item's MAX_CANDIDATES
    signatures: dict[str, StoredSignature]
    #: story_id → members stored, for the stories of those signatures
    member_counts: dict[str, int]

    def candidates(self, band_keys: tuple[int, ...]) -> list[StoredSignature]:
        """The stored items sharing the most band keys with `band_keys` (an item of the batch), at most
        MAX_CANDIDATES."""
        return [self.signatures[article_id] for article_id in self.ranked.get(band_keys, ())
                if article_id in self.signatures]


def first_number_since(connection: Connection, cutoff: datetime) -> int:
    """The window as numbers: the number of the first signature seen at or after `cutoff`, or the next
    number when there is none. One probe of the (seen_at, number) index."""
    first = connection.execute(
        select(item_signatures.c.number).where(item_signatures.c.seen_at >= cutoff)
        .order_by(item_signatures.c.seen_at, item_signatures.c.number).limit(1)
    ).scalar_one_or_none()
    return next_number(connection) if first is None else int(first)


def next_number(connection: Connection) -> int:
    """The number the next signature gets: one more than the highest (unique index: one probe)."""
    return int(connection.execute(select(func.coalesce(func.max(item_signatures.c.number), 0))).scalar_one()) + 1


def prune_bands(connection: Connection, first_number: int) -> None:
    """Remove the band rows of the signatures numbered before the window's first."""
    connection.execute(delete(signature_bands).where(signature_bands.c.number < first_number))


def insert_bands(connection: Connection, rows: Sequence[tuple[int, int]]) -> None:
    """(band key, number) rows through the driver: 32 rows per item made SQLAlchemy's per-row processing
    cost more than the insert itself (bench/bench_similar.py)."""
    place = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(f"INSERT INTO signature_bands (band_key, number) VALUES ({place}, {place})", rows)


def find_stored_candidates(
    connection: Connection, band_keys_per_item: Iterable[tuple[int, ...]], first_number: int
) -> StoredCandidates:
    """The stored candidates of every item of a batch (given by its band keys), numbered `first_number` or
    higher (first_number_since: the window)."""
    per_item = list(band_keys_per_item)
    keys = sorted({key for band_keys in per_item for key in band_keys})
    hits = _band_hits(connection, keys, first_number) if keys else {}
    ranked = {band_keys: _ranked(hits, band_keys) for band_keys in per_item}
    wanted = sorted({article_id for ids in ranked.values() for article_id in ids})
    signatures: dict[str, StoredSignature] = {}
    member_counts: dict[str, int] = {}
    query = (
        select(item_signatures.c.article_id, item_signatures.c.story_id, item_signatures.c.member_index,
               item_signatures.c.seen_at, item_signatures.c.sketch, item_signatures.c.numbers,
               stories.c.member_count)
        .join(stories, stories.c.story_id == item_signatures.c.story_id)
    )
    for begin in range(0, len(wanted), _CHUNK_SIZE):
        chunk = query.where(item_signatures.c.article_id.in_(wanted[begin : begin + _CHUNK_SIZE]))
        for article_id, story_id, member_index, seen_at, sketch, numbers, member_count in connection.execute(chunk):
            signatures[article_id] = StoredSignature(
                article_id, story_id, member_index, seen_at, bytes(sketch), frozenset(numbers.split()))
            member_counts[story_id] = member_count
    return StoredCandidates(ranked, signatures, member_counts)


def _ranked(hits: dict[int, list[str]], band_keys: Sequence[int]) -> list[str]:
    """The MAX_CANDIDATES ids found under the most of `band_keys`, then by id: LSH's likeliest reprints."""
    shared = Counter(article_id for key in band_keys for article_id in hits.get(key, ()))
    if len(shared) > MAX_CANDIDATES:
        return sorted(shared, key=lambda article_id: (-shared[article_id], article_id))[:MAX_CANDIDATES]
    return list(shared)


def _band_hits(connection: Connection, keys: Sequence[int], first_number: int) -> dict[int, list[str]]:
    dialect = connection.dialect
    sql = _statement(dialect)
    hits: dict[int, list[str]] = {}
    # the driver's own cursor, in the connection's transaction: up to 4 rows per key, 32 keys per item, made
    # SQLAlchemy's per-row result processing cost more than the statement (~7 µs a row, fetchall ~0.3 µs)
    # (so aggregator_db_statements_total does not count this one statement per 64 new items)
    cursor = connection.connection.cursor()
    try:
        for begin in range(0, len(keys), 4 * _CHUNK_SIZE):
            chunk = list(keys[begin : begin + 4 * _CHUNK_SIZE])
            # the keys as one parameter: a JSON text for SQLite's json_each, an array for PostgreSQL's unnest
            parameters: Any = ((json.dumps(chunk), first_number) if dialect.paramstyle == "qmark"
                               else {"keys": chunk, "first": first_number})
            cursor.execute(sql, parameters)
            for key, article_id in cursor.fetchall():
                hits.setdefault(key, []).append(article_id)
    finally:
        cursor.close()
    return hits


#: the band lookup as driver SQL by backend name
_STATEMENTS: dict[str, str] = {}


def _statement(dialect: Dialect) -> str:
    """The newest CANDIDATES_PER_KEY rows of each key (the primary key's order, read backwards), with the
    article_ids of their numbers.

    PostgreSQL runs one index probe per key through LATERAL; SQLite has no LATERAL, so a correlated
    subquery per key picks the numbers, which the unique index on item_signatures.number turns into
    article_ids. Handed to the driver as it is: SQLAlchemy's compilation would cost more than SQLite
    spends running it.
    """
    found = _STATEMENTS.get(dialect.name)
    if found is not None:
        return found
    limit = f"AND number >= {{first}} ORDER BY number DESC LIMIT {CANDIDATES_PER_KEY}"
    if dialect.paramstyle == "qmark":  # sqlite3: ?1 the keys as JSON, ?2 the window's first number
        sql = ("SELECT k.value, s.article_id FROM json_each(?1) AS k JOIN item_signatures AS s ON s.number IN "
               f"(SELECT number FROM signature_bands WHERE band_key = k.value {limit.format(first='?2')})")
    else:  # psycopg: pyformat
        sql = ("SELECT k.key, s.article_id FROM unnest(%(keys)s::bigint[]) AS k(key) CROSS JOIN LATERAL "
               f"(SELECT number FROM signature_bands WHERE band_key = k.key {limit.format(first='%(first)s')}) AS b "
               "JOIN item_signatures AS s ON s.number = b.number")
    found = _STATEMENTS[dialect.name] = sql
    return found
