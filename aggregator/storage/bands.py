"""The LSH band index: the stored candidates of a whole batch of new items, found in two statements.

One statement reads, for every distinct band key of the batch, the newest CANDIDATES_PER_KEY rows of
the window; the items of each new item are then ranked in memory by the keys they share with it, and
one more statement (per chunk of ids) reads the signatures of the MAX_CANDIDATES best of each. A
lookup reads a bounded number of rows per band key, so its cost does not grow with the store however
common a key becomes, and a poll costs two statements, not one per item (bench/bench_similar.py).
No business logic: clusters.best_match decides.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, select

from aggregator.similar.clusters import StoredSignature
from aggregator.storage.schema import UtcDateTime, item_signatures, stories

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


def find_stored_candidates(
    connection: Connection, band_keys_per_item: Iterable[tuple[int, ...]], cutoff: datetime
) -> StoredCandidates:
    """The stored candidates of every item of a batch (given by its band keys), seen at or after `cutoff`."""
    per_item = list(band_keys_per_item)
    keys = sorted({key for band_keys in per_item for key in band_keys})
    hits = _band_hits(connection, keys, cutoff) if keys else {}
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


def _band_hits(connection: Connection, keys: Sequence[int], cutoff: datetime) -> dict[int, list[str]]:
    dialect = connection.dialect
    sql, bind_cutoff = _statement(dialect)
    hits: dict[int, list[str]] = {}
    for begin in range(0, len(keys), 4 * _CHUNK_SIZE):
        chunk = list(keys[begin : begin + 4 * _CHUNK_SIZE])
        # the keys as one parameter: a JSON text for SQLite's json_each, an array for PostgreSQL's unnest
        parameters: Any = ((json.dumps(chunk), bind_cutoff(cutoff)) if dialect.paramstyle == "qmark"
                           else {"keys": chunk, "cutoff": bind_cutoff(cutoff)})
        for key, article_id in connection.exec_driver_sql(sql, parameters):
            hits.setdefault(key, []).append(article_id)
    return hits


#: the band lookup as driver SQL by backend name, with the bind converter of its one datetime
_STATEMENTS: dict[str, tuple[str, Callable[[Any], Any]]] = {}


def _statement(dialect: Dialect) -> tuple[str, Callable[[Any], Any]]:
    """The newest CANDIDATES_PER_KEY rows of each key (the primary key's order, read backwards).

    PostgreSQL runs one index probe per key through LATERAL; SQLite has no LATERAL, so its per-key
    subquery picks rowids, which a rowid table (signature_bands is one) reads back directly. Handed to
    the driver as it is: SQLAlchemy's compilation would cost more than SQLite spends running it.
    """
    found = _STATEMENTS.get(dialect.name)
    if found is not None:
        return found
    limit = (f"AND seen_at >= {{cutoff}} ORDER BY seen_at DESC, article_id DESC LIMIT {CANDIDATES_PER_KEY}")
    if dialect.paramstyle == "qmark":  # sqlite3: ?1 the keys as JSON, ?2 the cutoff
        sql = ("SELECT k.value, b.article_id FROM json_each(?1) AS k JOIN signature_bands AS b ON b.rowid IN "
               f"(SELECT rowid FROM signature_bands WHERE band_key = k.value {limit.format(cutoff='?2')})")
    else:  # psycopg: pyformat
        sql = ("SELECT k.key, b.article_id FROM unnest(%(keys)s::bigint[]) AS k(key) CROSS JOIN LATERAL "
               f"(SELECT article_id FROM signature_bands WHERE band_key = k.key "
               f"{limit.format(cutoff='%(cutoff)s')}) AS b")
    found = _STATEMENTS[dialect.name] = (sql, datetime_binder(dialect))
    return found


def datetime_binder(dialect: Dialect) -> Callable[[Any], Any]:
    """What UtcDateTime makes of a datetime on this backend, for driver-level SQL (SQLite: text)."""
    return UtcDateTime().dialect_impl(dialect).bind_processor(dialect) or _unchanged


def _unchanged(value: Any) -> Any:
    return value
