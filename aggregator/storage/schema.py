"""The storage schema as SQLAlchemy Core tables, and the ordered migrations that build it.

Both backends share these definitions. Each migration moves the store one version up; `migrate`
applies the missing ones at open in one transaction and records the version in `schema_version`
(after reader `_storage/_schema.py` MIGRATIONS and miniflux `database/migrations.go`). A migration
is never edited once released: change the schema by appending one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    Select,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

from aggregator.errors import StorageError
from aggregator.storage.search_index import create_search_index, merge_search_segments_less_often

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend.

    PostgreSQL keeps `timestamptz` and answers in the session's time zone; SQLite keeps naive
    text. Both are normalised to UTC here. A naive datetime is a bug upstream (models.py says
    every datetime is aware UTC), so it is refused instead of being guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"store: naive datetime {value!r}; every datetime must be aware")
        value = value.astimezone(UTC)
        # SQLite stores text without an offset; UTC text sorts correctly as text.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

#: one row per source; mirrors models.SourceState field for field
sources = Table(
    "sources",
    metadata,
    Column("name", String, primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("next_poll_at", UtcDateTime),
    Column("failures", Integer, nullable=False, server_default="0"),
    #: ErrorInfo fields as a JSON object, `at` as ISO 8601
    Column("last_error", JSON),
    Column("last_success_at", UtcDateTime),
    Column("last_polled_at", UtcDateTime),
    Column("last_status", Integer),
    Column("moved_to", Text),
    Column("moved_count", Integer, nullable=False, server_default="0"),
    Column("retired_url", Text),
    Column("config_url", Text),
    #: items the last successful poll skipped, {reason code: count}; NULL when none were (issue 10)
    Column("skipped_items", JSON),
)

#: one row per article_id, across all sources and categories
items = Table(
    "items",
    metadata,
    Column("article_id", String, primary_key=True),
    #: 0-based insertion order over all items; dense and append-only (the all-categories archive)
    Column("position", Integer, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("url", Text),
    Column("html", Text, nullable=False),
    Column("summary", Text, nullable=False, server_default=""),
    Column("author", Text),
    Column("published", UtcDateTime),
    Column("updated", UtcDateTime, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("content_hash", String, nullable=False),
)

#: (article_id, category) memberships; only ever added
item_categories = Table(
    "item_categories",
    metadata,
    Column("article_id", String, ForeignKey("items.article_id"), nullable=False),
    Column("category", String, nullable=False),
    #: 0-based order of joining the category; dense and append-only (the category archive)
    Column("position", Integer, nullable=False),
    #: the item's newest_first_key(), copied here so a category's newest items are one index range
    #: (kept equal to the item's by storage/items.py)
    Column("listed_at", UtcDateTime),
    PrimaryKeyConstraint("article_id", "category"),
    UniqueConstraint("category", "position"),
)
#: a category feed's head: its newest items, read in index order instead of sorting the whole category
ix_item_categories_newest_first = Index(
    "ix_item_categories_newest_first", item_categories.c.category, item_categories.c.listed_at.desc(),
    item_categories.c.article_id.desc())

#: (article_id, source) with the raw hash last seen from that source; only ever added or re-hashed
item_sources = Table(
    "item_sources",
    metadata,
    Column("article_id", String, ForeignKey("items.article_id"), nullable=False),
    Column("source", String, nullable=False),
    #: NULL when the source is known from Item.sources but no raw hash came with it
    Column("raw_hash", String),
    PrimaryKeyConstraint("article_id", "source"),
)


#: titles of categories learnt from the sources (`categories = "auto"`: slug → "<medium>新闻");
#: categories named in feeds.toml take their title from there
category_titles = Table(
    "category_titles",
    metadata,
    Column("category", String, primary_key=True),
    Column("title", Text, nullable=False),
)


#: one row per signed item (issue 14): its sketch, and its place in a story (aggregator/similar/)
item_signatures = Table(
    "item_signatures",
    metadata,
    Column("article_id", String, ForeignKey("items.article_id"), primary_key=True),
    #: bottom-k sketch, SKETCH_SIZE little-endian uint32 (similar/signature.py)
    Column("sketch", LargeBinary, nullable=False),
    #: the numbers of the story text, space-separated
    Column("numbers", Text, nullable=False),
    Column("shingle_count", Integer, nullable=False),
    #: when the item was signed (its first_seen); the window counts from here
    Column("seen_at", UtcDateTime, nullable=False),
    #: the article_id of the story's first item, its representative
    Column("story_id", String, nullable=False),
    #: 0 for the representative, then 1, 2, … in the order members joined
    Column("member_index", Integer, nullable=False),
    #: the earlier item this one was found to reprint, and their estimated similarity
    Column("matched_id", String),
    Column("similarity", Float),
    #: 1, 2, 3, … in the order items were signed (seen_at, then article_id, within a transaction): the band
    #: index's item key (issue 14, storage/bands.py). NOT NULL on PostgreSQL; SQLite cannot add a NOT NULL
    #: column without a default, and the one writer (storage/similar.py) always sets it
    Column("number", BigInteger, nullable=False),
    UniqueConstraint("story_id", "member_index"),
)

#: LSH band keys of the signed items of the window, by signature number: the index that finds an item's
#: candidates. A WITHOUT ROWID table on SQLite, so a row is one entry of one B-tree ordered by its key.
signature_bands = Table(
    "signature_bands",
    metadata,
    Column("band_key", BigInteger, nullable=False),
    #: item_signatures.number
    Column("number", BigInteger, nullable=False),
    # the key's newest rows last: a lookup reads a bounded number of rows per key, backwards
    PrimaryKeyConstraint("band_key", "number"),
    sqlite_with_rowid=False,
)
# pruning the rows that left the window walks this index from its start
Index("ix_signature_bands_number", signature_bands.c.number)

#: one row per story (a singleton too): its size and when it last gained a member
stories = Table(
    "stories",
    metadata,
    Column("story_id", String, primary_key=True),
    Column("member_count", Integer, nullable=False),
    Column("updated", UtcDateTime, nullable=False),
)
# counting the stories of two or more (status, /metrics) reads only those
Index("ix_stories_member_count", stories.c.member_count)

#: every category a story's members are filed under: the feeds to republish when it grows
story_categories = Table(
    "story_categories",
    metadata,
    Column("story_id", String, nullable=False),
    Column("category", String, nullable=False),
    PrimaryKeyConstraint("story_id", "category"),
)

#: per category, what the index page shows, kept by every write (storage/categories.py): counting the
#: memberships on every publish was a scan that grew with the store (4 s at 127,000 items)
category_stats = Table(
    "category_stats",
    metadata,
    Column("category", String, primary_key=True),
    Column("item_count", Integer, nullable=False),
    Column("last_updated", UtcDateTime, nullable=False),
)

#: categories whose feeds a committed poll changed and no publish has written yet: recorded in the
#: transaction that stores the items, deleted only after the category's files are written, so a killed
#: or failed run leaves them owed to the next `poll`, `build` or daemon start (issue 10)
publish_owed = Table(
    "publish_owed",
    metadata,
    Column("category", String, primary_key=True),
    #: when the oldest unpublished change of the category was committed
    Column("owed_since", UtcDateTime, nullable=False),
)


def newest_first_key() -> ColumnElement[datetime]:
    """The listing date: when the source says it was published, else when we first saw it.

    Listings must order by this very expression for SQLite to use the index below.
    """
    return func.coalesce(items.c.published, items.c.first_seen)


Index("ix_items_newest_first", newest_first_key().desc(), items.c.article_id.desc())
Index("ix_item_sources_source", item_sources.c.source)


def _create_version_1(connection: Connection) -> None:
    metadata.create_all(connection, tables=[sources, items, item_categories, item_sources])


def _add_category_titles(connection: Connection) -> None:
    metadata.create_all(connection, tables=[category_titles])


#: item_signatures and signature_bands as version 4 created them (migration 3, `_add_stories`), frozen
#: so a new store is built through the same migrations as an old one was
_stories_v4 = MetaData()
Table(
    "item_signatures",
    _stories_v4,
    Column("article_id", String, ForeignKey(items.c.article_id), primary_key=True),
    Column("sketch", LargeBinary, nullable=False),
    Column("numbers", Text, nullable=False),
    Column("shingle_count", Integer, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("story_id", String, nullable=False),
    Column("member_index", Integer, nullable=False),
    Column("matched_id", String),
    Column("similarity", Float),
    UniqueConstraint("story_id", "member_index"),
)
_signature_bands_v4 = Table(
    "signature_bands",
    _stories_v4,
    Column("band_key", BigInteger, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("article_id", String, nullable=False),
    PrimaryKeyConstraint("band_key", "seen_at", "article_id"),
)
Index("ix_signature_bands_seen_at", _signature_bands_v4.c.seen_at)


def _add_stories(connection: Connection) -> None:
    # the signature tables as this migration made them; _number_signatures turns them into today's
    metadata.create_all(connection, tables=[stories, story_categories])
    _stories_v4.create_all(connection)


def _add_skipped_items(connection: Connection) -> None:
    # version 1 creates `sources` as defined today, column included: add it only to older stores
    if "skipped_items" not in {column["name"] for column in inspect(connection).get_columns(sources.name)}:
        connection.execute(text(f"ALTER TABLE {sources.name} ADD COLUMN skipped_items {_json_type(connection)}"))


def _add_publish_owed(connection: Connection) -> None:
    metadata.create_all(connection, tables=[publish_owed])


def _json_type(connection: Connection) -> str:
    return str(sources.c.skipped_items.type.compile(dialect=connection.dialect))


# --- coordination of many processes on one store (version 5) --------------------------------------

#: columns added to `sources`: the recorded definition hash (NULL: not in the recorded feeds.toml, never
#: claimed) and the lease (who polls it now, until when)
SOURCE_LEASE_COLUMNS = (("definition_hash", "TEXT"), ("leased_by", "TEXT"), ("lease_until", "TIMESTAMP"))

#: owed categories taken by the publisher now publishing them; put back as owed if it dies
publish_claims = Table(
    "publish_claims",
    metadata,
    Column("category", String, primary_key=True),
    Column("owed_since", UtcDateTime, nullable=False),
    Column("publisher", String, nullable=False),
)

#: one row per `aggregator run` process of a shared store, beating while it lives
workers = Table(
    "workers",
    metadata,
    Column("id", String, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("role", String, nullable=False),
    Column("config_hash", String, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
)

#: named leases held by one process at a time (the publisher)
cluster_leases = Table(
    "cluster_leases",
    metadata,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("lease_until", UtcDateTime, nullable=False),
)

#: the feeds.toml the cluster runs on: one row, its hash, who recorded it and when
cluster_config = Table(
    "cluster_config",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("config_hash", String, nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

#: per newspaper host: when the next request may start and until when it asked us to stay away
host_pace = Table(
    "host_pace",
    metadata,
    Column("host", String, primary_key=True),
    Column("next_start_at", UtcDateTime),
    Column("deferred_until", UtcDateTime),
)

#: one row per request in flight to a host, by any worker; an expired lease no longer counts
host_slots = Table(
    "host_slots",
    metadata,
    Column("id", String, primary_key=True),
    Column("host", String, nullable=False, index=True),
    Column("worker_id", String, nullable=False),
    Column("lease_until", UtcDateTime, nullable=False),
)

#: every published file (feeds, .gz twins, archive pages, index, OPML) as the publisher rendered it,
#: so stateless web replicas serve the same bytes with the same validators without a shared disk
published_documents = Table(
    "published_documents",
    metadata,
    Column("path", String, primary_key=True),
    Column("body", LargeBinary, nullable=False),
    #: strong ETag (a content hash), the same on every replica
    Column("etag", String, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    #: bumped at every change; replicas cache bodies by it
    Column("version", Integer, nullable=False),
)

COORDINATION_TABLES = (publish_claims, workers, cluster_leases, cluster_config, host_pace,
                       host_slots, published_documents)


def _add_coordination(connection: Connection) -> None:
    """Many processes on one PostgreSQL store (aggregator/cluster/): the tables above, the lease columns of
    `sources` (where its dynamic schedule already is), an index for claiming due sources. A SQLite store
    has them too and never fills them: it keeps one writing process."""
    metadata.create_all(connection, tables=list(COORDINATION_TABLES))
    timestamp = "TIMESTAMP WITH TIME ZONE" if connection.dialect.name == "postgresql" else "TIMESTAMP"
    for name, kind in SOURCE_LEASE_COLUMNS:
        column_type = timestamp if kind == "TIMESTAMP" else kind
        connection.execute(text(f"ALTER TABLE sources ADD COLUMN {name} {column_type}"))
    # claims walk the unleased sources by due time; the heartbeat's sweep finds expired leases
    connection.execute(text("CREATE INDEX ix_sources_claimable ON sources (next_poll_at)"
                            " WHERE leased_by IS NULL AND definition_hash IS NOT NULL"))
    connection.execute(text("CREATE INDEX ix_sources_leased ON sources (lease_until) WHERE leased_by IS NOT NULL"))


def count_categories() -> Select[tuple[str, int, datetime]]:
    """category_stats's rows counted from the memberships: one scan of them (narrow it with a WHERE)."""
    return (
        select(item_categories.c.category, func.count(), func.max(items.c.updated))
        .join(items)
        .group_by(item_categories.c.category)
    )


def _add_category_stats(connection: Connection) -> None:
    """category_stats, filled by one scan of the memberships: the last one a publish makes."""
    metadata.create_all(connection, tables=[category_stats])
    connection.execute(
        category_stats.insert().from_select(["category", "item_count", "last_updated"], count_categories()))


def _list_memberships_by_date(connection: Connection) -> None:
    """item_categories.listed_at and its index: a category's head had to sort every item of the category
    (6 s at 163,000 items in one category); version 1 creates the column on a new store, as `sources`'s."""
    if "listed_at" not in {column["name"] for column in inspect(connection).get_columns(item_categories.name)}:
        column_type = item_categories.c.listed_at.type.compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {item_categories.name} ADD COLUMN listed_at {column_type}"))
    connection.execute(update(item_categories).values(listed_at=select(newest_first_key()).where(
        items.c.article_id == item_categories.c.article_id).scalar_subquery()))
    ix_item_categories_newest_first.create(connection, checkfirst=True)


def _number_signatures(connection: Connection) -> None:
    """Band rows keyed by (band key, signature number) instead of (band key, seen_at, article_id) (issue 14).

    Existing signatures are numbered in (seen_at, article_id) order, the order in which the band lookup
    took them to be newest, so a migrated store finds the same candidates; the band rows are rebuilt
    under the numbers. 32 rows per item in one narrow B-tree instead of three wide ones: storage/bands.py.
    """
    number_type = "BIGINT" if connection.dialect.name == "postgresql" else "INTEGER"
    connection.execute(text(f"ALTER TABLE item_signatures ADD COLUMN number {number_type}"))
    connection.execute(text(
        "UPDATE item_signatures SET number = r.n FROM (SELECT article_id, "
        "row_number() OVER (ORDER BY seen_at, article_id) AS n FROM item_signatures) AS r "
        "WHERE r.article_id = item_signatures.article_id"
    ))
    if connection.dialect.name == "postgresql":
        connection.execute(text("ALTER TABLE item_signatures ALTER COLUMN number SET NOT NULL"))
    # the newest number (the next one's base), a number by its item (band lookup), the window's first number
    connection.execute(text("CREATE UNIQUE INDEX ix_item_signatures_number ON item_signatures (number)"))
    connection.execute(text("CREATE INDEX ix_item_signatures_seen_at ON item_signatures (seen_at, number)"))
    connection.execute(text(
        "CREATE TEMPORARY TABLE band_numbers AS SELECT DISTINCT b.band_key, s.number FROM signature_bands AS b "
        "JOIN item_signatures AS s ON s.article_id = b.article_id"
    ))
    connection.execute(text("DROP TABLE signature_bands"))
    metadata.create_all(connection, tables=[signature_bands])
    connection.execute(text(
        "INSERT INTO signature_bands (band_key, number) SELECT band_key, number FROM band_numbers ORDER BY band_key, number"
    ))
    connection.execute(text("DROP TABLE band_numbers"))


Migration = Callable[[Connection], None]

#: MIGRATIONS[i] takes the store from version i to version i + 1
MIGRATIONS: tuple[Migration, ...] = (
    _create_version_1, _add_category_titles, create_search_index, _add_stories, _add_skipped_items, _add_publish_owed,
    _add_coordination, merge_search_segments_less_often, _add_category_stats, _list_memberships_by_date,
    _number_signatures,
)


def migrate(connection: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing migrations inside the caller's transaction; return the version reached.

    The caller holds a write transaction that serialises concurrent openers (SQLite BEGIN
    IMMEDIATE, a PostgreSQL transaction advisory lock).
    """
    schema_version.create(connection, checkfirst=True)
    current = read_version(connection)
    target = len(migrations)
    if current > target:
        raise StorageError(
            f"store: schema version {current} is newer than this program knows ({target}); upgrade aggregator"
        )
    if current == target:
        return current
    for migration in migrations[current:]:
        migration(connection)
    if current == 0:
        connection.execute(schema_version.insert().values(version=target))
    else:
        connection.execute(schema_version.update().values(version=target))
    return target


def read_version(connection: Connection) -> int:
    """The store's schema version; 0 when it has none yet."""
    if not inspect(connection).has_table(schema_version.name):
        return 0
    found = connection.execute(select(schema_version.c.version)).scalar_one_or_none()
    return 0 if found is None else int(found)


def upsert(connection: Connection, table: Table, keys: Iterable[str], update: Iterable[str]) -> Insert:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update = excluded.update, for this backend.

    Both backends spell it the same way but SQLAlchemy keeps the construct per dialect. The
    statement is built once per backend and shape: building `excluded` copies every column of the
    table, which made building it cost more than running it (a `poll` of 304s saves 200 states).
    """
    return _upsert(connection.dialect.name, table, tuple(keys), tuple(update))


def dialect_insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT for this backend, whose on_conflict_do_update takes SQL expressions of `excluded`."""
    return _dialect_insert(connection.dialect.name, table)


def insert_ignoring_conflicts(connection: Connection, table: Table, keys: Iterable[str]) -> Insert:
    """INSERT … ON CONFLICT (keys) DO NOTHING, for this backend."""
    return _dialect_insert(connection.dialect.name, table).on_conflict_do_nothing(index_elements=list(keys))


@functools.cache
def _upsert(dialect_name: str, table: Table, keys: tuple[str, ...], update: tuple[str, ...]) -> Insert:
    statement = _dialect_insert(dialect_name, table)
    columns = {name: statement.excluded[name] for name in update}
    result: Insert = statement.on_conflict_do_update(index_elements=list(keys), set_=columns)
    return result


def _dialect_insert(dialect_name: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    # imported here: the PostgreSQL dialect pulls in its async drivers' modules, which a SQLite store never needs
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
