"""`aggregator migrate --to postgresql://…`: copy a SQLite store into PostgreSQL, with progress and a verification count.

Copied table by table in primary-key order and in batches, each batch one transaction: items (with their
positions, so archive pages stay the same pages), category memberships, titles and counts, per-source raw hashes,
source state (validators, schedule, failures), the owed-publishing record, and the published files under
output_dir (feeds, archives, index) as `published_documents`, so web replicas serve them at once. The
target must hold no items: a copy never merges two stores. Afterwards every table is counted on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Table, func, select

from aggregator.cluster.documents import upload_changed_files
from aggregator.errors import StorageError
from aggregator.storage import SqlStorage
from aggregator.storage.errors import wrap_storage_errors
from aggregator.storage.schema import (
    category_stats,
    category_titles,
    item_categories,
    item_sources,
    items,
    publish_owed,
    published_documents,
    sources,
)

#: rows per INSERT batch (and per progress line)
BATCH_ROWS = 2000
#: what is copied, in foreign-key order
COPIED_TABLES: tuple[Table, ...] = (items, item_categories, item_sources, category_titles, category_stats, sources,
                                     publish_owed)


@dataclass(frozen=True, slots=True)
class TableCount:
    """One line of the verification: rows in the SQLite store and in PostgreSQL after the copy."""

    table: str
    source_rows: int
    target_rows: int

    @property
    def matches(self) -> bool:
        return self.source_rows == self.target_rows


def migrate_store(source: SqlStorage, target: SqlStorage, output_dir: Path,
                  progress: Callable[[str, int, int], None]) -> list[TableCount]:
    """Copy `source` into the empty `target`; `progress(table, copied, total)` after every batch."""
    if target.count_items() != 0:
        raise StorageError(f"migrate: {target.url} already holds items; migrate into an empty store")
    counts = []
    for table in COPIED_TABLES:
        with wrap_storage_errors(f"could not copy {table.name}"), source.engine.connect() as reader:
            total = _count(reader, table)
            copied = 0
            for batch in _batches(reader, table):
                with target.engine.begin() as writer:
                    writer.execute(table.insert(), batch)
                copied += len(batch)
                progress(table.name, copied, total)
        if total == 0:
            progress(table.name, 0, 0)
        with target.engine.connect() as connection:
            counts.append(TableCount(table.name, total, _count(connection, table)))
    files = _count_files(output_dir)
    uploaded = upload_changed_files(target.engine, output_dir, {}) if output_dir.is_dir() else 0
    progress(published_documents.name, uploaded, files)
    with target.engine.connect() as connection:
        counts.append(TableCount(published_documents.name, files, _count(connection, published_documents)))
    return counts


def _batches(connection: Connection, table: Table) -> Iterator[list[dict[str, object]]]:
    key = list(table.primary_key.columns)
    result = connection.execution_options(stream_results=True).execute(select(table).order_by(*key))
    for rows in result.mappings().partitions(BATCH_ROWS):
        yield [dict(row) for row in rows]


def _count(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def _count_files(output_dir: Path) -> int:
    """Published files as upload_changed_files sees them (bookkeeping dot-files left out)."""
    if not output_dir.is_dir():
        return 0
    return sum(1 for path in output_dir.rglob("*")
               if path.is_file() and not any(part.startswith(".") for part in path.relative_to(output_dir).parts))
