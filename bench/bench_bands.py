"""Band-index write benchmark (issue 14): a first pass's band rows, as version 8 stored them and by signature number.

Usage: python bench/bench_bands.py [--items 9110] [--transactions 200] [--rounds 3] [--postgresql URL]

A first pass of `bench/bench_poll.py` signs 9,110 new items in 200 transactions (one per source) and writes
32 band rows for each: 291,520 rows. This script writes as many random band keys, the same number per
transaction, into a fresh store of each layout, alternating the layouts round by round so that both see the
same load on a shared machine:

- `v8`: (band_key, seen_at, article_id), the primary key an index of a rowid table, with an index on seen_at
  (the store as migrations 0–7 leave it);
- `numbers`: (band_key, number), a WITHOUT ROWID table on SQLite, with an index on number (migration 8).

Then, on the full table, the prune of a window that moved past the first tenth of the items. Prints wall
seconds per round and the size of the store (SQLite: its files; PostgreSQL: the two signature tables).
Compare the layouts within one run. The lookup's speed is bench/bench_similar.py's (real signatures, real
store).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Connection, text

from aggregator.storage import SqlStorage, connect_storage
from aggregator.storage.schema import MIGRATIONS, _number_signatures

KEYS_PER_ITEM = 32
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=9110)
    parser.add_argument("--transactions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgresql", metavar="URL", help="also measure a PostgreSQL store (its own schema)")
    args = parser.parse_args()
    print(f"## {args.items:,} items × {KEYS_PER_ITEM} band rows = {args.items * KEYS_PER_ITEM:,} rows "
          f"in {args.transactions} transactions")
    print("| backend | layout | round | write s | prune ms | size MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    backends = ["sqlite"] + (["postgresql"] if args.postgresql else [])
    for round_number in range(1, args.rounds + 1):
        for backend in backends:
            for layout in ("v8", "numbers") if round_number % 2 else ("numbers", "v8"):
                with _store(backend, args.postgresql) as (storage, size):
                    row = measure(storage, layout, args.items, args.transactions, random.Random(round_number))
                    print(f"| {backend} | {layout} | {round_number} | {row[0]:.2f} | {row[1]:.1f} "
                          f"| {size() / 1e6:.1f} |", flush=True)


def measure(storage: SqlStorage, layout: str, count: int, transactions: int, rng: random.Random) -> tuple[float, ...]:
    version = MIGRATIONS.index(_number_signatures)
    storage.migrate(MIGRATIONS[:version] if layout == "v8" else MIGRATIONS)
    engine = storage._engine  # the benchmark writes under the API, as storage/similar.py does
    keys = [[rng.getrandbits(64) - 2**63 for _ in range(KEYS_PER_ITEM)] for _ in range(count)]
    seen = [NOW + timedelta(seconds=index * transactions // count) for index in range(count)]
    with engine.connect() as connection:
        place = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        started = time.perf_counter()
        per = -(-count // transactions)
        for begin in range(0, count, per):
            with connection.begin():
                rows = [_row(layout, connection, key, index, seen[index])
                        for index in range(begin, min(begin + per, count)) for key in keys[index]]
                columns = "band_key, seen_at, article_id" if layout == "v8" else "band_key, number"
                values = ", ".join([place] * (3 if layout == "v8" else 2))
                connection.exec_driver_sql(f"INSERT INTO signature_bands ({columns}) VALUES ({values})", rows)
        write = time.perf_counter() - started
        started = time.perf_counter()
        with connection.begin():
            if layout == "v8":
                connection.execute(text("DELETE FROM signature_bands WHERE seen_at < :cutoff"),
                                   {"cutoff": _bound(connection, seen[count // 10])})
            else:
                connection.execute(text("DELETE FROM signature_bands WHERE number < :first"),
                                   {"first": count // 10 + 1})
        prune = time.perf_counter() - started
    return write, prune * 1000


def _row(layout: str, connection: Connection, key: int, index: int, seen_at: datetime) -> tuple[Any, ...]:
    return (key, _bound(connection, seen_at), f"NW{index:018d}") if layout == "v8" else (key, index + 1)


def _bound(connection: Connection, value: datetime) -> Any:
    return value if connection.dialect.name == "postgresql" else value.replace(tzinfo=None).isoformat(sep=" ")


class _store:
    """A fresh store: a SQLite file in a temporary folder, or a PostgreSQL schema of its own."""

    def __init__(self, backend: str, pg_url: str | None) -> None:
        self.backend, self.pg_url = backend, pg_url

    def __enter__(self) -> tuple[SqlStorage, Callable[[], int]]:
        if self.backend == "sqlite":
            self.folder = tempfile.TemporaryDirectory()
            path = Path(self.folder.name) / "bench.db"
            self.storage = connect_storage(str(path))
            return self.storage, lambda: sum(p.stat().st_size for p in path.parent.iterdir())
        import psycopg

        assert self.pg_url is not None
        self.schema = f"bench_bands_{random.getrandbits(32):08x}"
        with psycopg.connect(self.pg_url, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{self.schema}"')
        self.storage = connect_storage(f"{self.pg_url}?options=-csearch_path%3D{self.schema}")
        return self.storage, self._pg_size

    def _pg_size(self) -> int:
        with self.storage._engine.connect() as connection:
            return int(connection.exec_driver_sql(
                "SELECT pg_total_relation_size('signature_bands') + pg_total_relation_size('item_signatures')"
            ).scalar_one())

    def __exit__(self, *exc: object) -> None:
        self.storage.close()
        if self.backend == "sqlite":
            self.folder.cleanup()
            return
        import psycopg

        assert self.pg_url is not None
        with psycopg.connect(self.pg_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


if __name__ == "__main__":
    main()
