"""The store: SqlStorage, one SQLAlchemy Core code path for SQLite (default) and PostgreSQL.

The schema is created and migrated at open (schema.py); every method is one transaction and turns
environment failures into StorageError. A SQLite store is a file path or a `sqlite:///` URL; PostgreSQL
is a `postgresql://` URL, run through psycopg 3, which is imported only for such URLs. A
`?options=-csearch_path%3D<schema>` query is passed to libpq, so a store can live in its own schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

from aggregator.errors import StorageError
from aggregator.models import Item, ItemChange, RejectedChange, SourceState, StoredItem, StoryCounts
from aggregator.storage import categories, items, owed, retention, schema, search, search_index, similar, sources
from aggregator.storage.errors import wrap_storage_errors
from aggregator.storage.categories import CategoryStats
from aggregator.storage.lock import advisory_key, hold_advisory_lock, hold_file_lock
from aggregator.storage.pragmas import SQLITE_BUSY_TIMEOUT_SECONDS, set_up_connection
from aggregator.storage.retention import Purged
from aggregator.storage.search import SearchPage
from aggregator.storage.similar import SignedItem, StoryAssignment, StoryMember, StoryRequest, StoryView

__all__ = [
    "AppliedUpdate", "CategoryStats", "Purged", "SearchPage", "SignedItem", "SqlStorage", "Storage",
    "StoryAssignment", "StoryCounts", "StoryMember", "StoryRequest", "StoryView", "connect_storage", "open_storage",
    "wrap_storage_errors",
]

#: how long opening a PostgreSQL connection may take, unless the URL says otherwise
PG_CONNECT_TIMEOUT_SECONDS = 10

#: execution option marking a connection that will write (SQLite then begins IMMEDIATE)
_WRITE_OPTION = "aggregator_write"


@dataclass(frozen=True, slots=True)
class AppliedUpdate:
    """What apply_update committed besides the changes themselves."""

    #: changes the database refused (a NUL in a URL on PostgreSQL); the others were stored
    refused: list[RejectedChange] = field(default_factory=list)
    #: where each new item of the StoryRequest went, in its order (issue 14)
    stories: list[StoryAssignment] = field(default_factory=list)


class Storage(Protocol):
    """What the rest of the program may ask of a store (like reader's StorageType)."""

    url: str

    def close(self) -> None: ...

    def writer_lock(self, wait_seconds: float) -> contextlib.AbstractContextManager[None]:
        """Be the only writing process; StoreLockedError after `wait_seconds`. Not reentrant."""
        ...

    def get_source_states(self) -> dict[str, SourceState]: ...

    def get_source_state(self, name: str) -> SourceState | None: ...

    def save_source_state(self, state: SourceState) -> None: ...

    def save_source_states(self, states: Sequence[SourceState]) -> None:
        """Several sources' states in one transaction and one statement (a pass of 304s)."""
        ...

    def get_stored_items(self, article_ids: Collection[str]) -> dict[str, StoredItem]: ...

    def apply_update(
        self, changes: Sequence[ItemChange], state: SourceState | None, category_titles: Mapping[str, str] | None = None,
        *, stories: StoryRequest | None = None,
    ) -> AppliedUpdate:
        """Every change, the titles of the categories they create, the new items' stories (`stories`), the
        source state and the categories now owed a publish in ONE transaction: a kill -9 never leaves half
        a poll, nor stored items without a story. A category keeps the first title it got. A change the
        database refuses (a NUL in a URL on PostgreSQL) is left out, with its story, and returned with the
        reason; the others are stored."""
        ...

    def owed_categories(self) -> dict[str, datetime]:
        """Categories changed by committed polls and not published since, with the last change's time."""
        ...

    def clear_owed(self, categories: Collection[str], published_from: datetime) -> None:
        """Publishing of `categories` read the store from `published_from` on: their debts up to then are paid."""
        ...

    def get_item(self, article_id: str) -> Item | None: ...

    def list_items(self, category: str | None, *, limit: int) -> list[Item]:
        """Newest first: coalesce(published, first_seen) desc, then article_id desc; None = all."""
        ...

    def count_items(self, category: str | None = None) -> int: ...

    def list_items_in_order(self, category: str | None, *, start: int, limit: int) -> list[Item]:
        """Oldest first by membership position (0-based `start`), for archive pages; append-only."""
        ...

    def category_stats(self) -> dict[str, CategoryStats]: ...

    def items_per_source(self) -> dict[str, int]: ...

    def category_titles(self) -> dict[str, str]:
        """Titles of categories learnt from sources (medium names), by category id."""
        ...

    def add_category_titles(self, titles: Mapping[str, str]) -> None:
        """Remember titles of new categories; a category keeps the first title it got."""
        ...

    def search(self, query: str, *, page: int, per_page: int, time_limit_seconds: float) -> SearchPage:
        """Items whose title or text contains `query`, newest first (storage/search.py)."""
        ...

    def purge_items_before(self, cutoff: datetime) -> Purged:
        """Remove items listed before `cutoff` (settings.retention); positions stay dense."""
        ...

    def assign_stories(
        self, signed: Sequence[SignedItem], *, threshold: float, window: timedelta, now: datetime
    ) -> list[StoryAssignment]:
        """Place new items in stories (issue 14), in order, in ONE transaction; signed items are skipped."""
        ...

    def story_members(self, article_id: str) -> list[StoryMember]:
        """Every member of the item's story, representative first; [] for an item never signed."""
        ...

    def stories_of(self, article_ids: Collection[str]) -> dict[str, StoryView]:
        """The stories of two or more members the given items belong to, by article_id, each with its
        first members (storage/similar.py MEMBERS_SHOWN)."""
        ...

    def earlier_members_in(self, article_ids: Collection[str], category: str) -> set[str]:
        """Those of the given items that have an earlier member of their story in `category`."""
        ...

    def story_counts(self) -> StoryCounts: ...

    def story_counts_per_source(self) -> dict[str, StoryCounts]: ...


def open_storage(url: str) -> Storage:
    """Open (creating and migrating as needed) the store at a file path, sqlite:/// or postgresql:// URL."""
    storage = connect_storage(url)
    try:
        storage.migrate()
    except BaseException:
        storage.close()
        raise
    return storage


def connect_storage(url: str) -> SqlStorage:
    """The store at `url`, its schema untouched: for open_storage, and for tests of migrations."""
    engine_url, sqlite_path = _engine_url(url)
    label = str(sqlite_path) if sqlite_path else engine_url.render_as_string(hide_password=True)
    if sqlite_path is not None:
        with wrap_storage_errors(f"could not create the folder of {label}"):
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            engine_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, hide_parameters=True
        )
        _configure_sqlite(engine)
    else:
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in engine_url.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_SECONDS
        try:
            engine = create_engine(
                engine_url, connect_args=connect_args, pool_pre_ping=True, hide_parameters=True
            )
        except ImportError as e:
            raise StorageError(
                f"store: {label} needs the PostgreSQL driver: pip install 'aggregator[postgresql]'"
            ) from e
    return SqlStorage(url, engine, label, sqlite_path)


class SqlStorage:
    """The Storage of both backends: one connection (and transaction) per call."""

    def __init__(self, url: str, engine: Engine, label: str, sqlite_path: Path | None) -> None:
        self.url = url
        self._engine = engine
        #: the store as messages name it: the file, or the URL without its password
        self._label = label
        self._sqlite_path = sqlite_path
        #: PostgreSQL advisory key serialising this store's write transactions, found at first write
        self._write_key: int | None = None

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        """For aggregator/cluster/'s coordination queries, which run outside the write lock."""
        return self._engine

    @property
    def is_shared(self) -> bool:
        """Whether many processes may poll this store together (PostgreSQL); SQLite keeps one writer."""
        return self._sqlite_path is None

    def migrate(self, migrations: Sequence[schema.Migration] = schema.MIGRATIONS) -> int:
        """Apply the missing migrations in one transaction; return the version reached."""
        with wrap_storage_errors(f"could not open {self._label}"), self._write() as connection:
            return schema.migrate(connection, migrations)

    def schema_version(self) -> int:
        """The version recorded in the store; 0 for a store never migrated."""
        with (
            wrap_storage_errors(f"could not read the schema version of {self._label}"),
            self._read() as connection,
        ):
            return schema.read_version(connection)

    def writer_lock(self, wait_seconds: float) -> contextlib.AbstractContextManager[None]:
        if self._sqlite_path is not None:
            lock_path = self._sqlite_path.with_name(self._sqlite_path.name + ".lock")
            return hold_file_lock(lock_path, self._label, wait_seconds)
        return hold_advisory_lock(self._engine, self._label, wait_seconds)

    def get_source_states(self) -> dict[str, SourceState]:
        with wrap_storage_errors("could not read source states"), self._read() as connection:
            return sources.select_source_states(connection)

    def get_source_state(self, name: str) -> SourceState | None:
        with wrap_storage_errors(f"could not read the state of source {name}"), self._read() as connection:
            return sources.select_source_state(connection, name)

    def save_source_state(self, state: SourceState) -> None:
        with (
            wrap_storage_errors(f"could not save the state of source {state.name}"),
            # one row by its key: nothing to keep dense, so no store-wide serialising (many workers)
            self._write(serialize=False) as connection,
        ):
            sources.write_source_state(connection, state)

    def save_source_states(self, states: Sequence[SourceState]) -> None:
        if not states:
            return
        with wrap_storage_errors(f"could not save the state of {len(states)} sources"), self._write() as connection:
            sources.write_source_states(connection, states)

    def get_stored_items(self, article_ids: Collection[str]) -> dict[str, StoredItem]:
        with wrap_storage_errors("could not read stored items"), self._read() as connection:
            return items.select_stored_items(connection, article_ids)

    def apply_update(
        self, changes: Sequence[ItemChange], state: SourceState | None, category_titles: Mapping[str, str] | None = None,
        *, stories: StoryRequest | None = None,
    ) -> AppliedUpdate:
        action = (
            "could not save a poll" if state is None else f"could not save the poll of source {state.name}"
        )
        # only item writes need the store-wide order (dense positions, signature numbers); a poll that changed
        # nothing does not
        serialize = (any(change.action != "unchanged" for change in changes) or bool(category_titles)
                     or bool(stories and stories.signed))
        try:
            with wrap_storage_errors(action), self._write(serialize=serialize) as connection:
                if category_titles:
                    categories.insert_category_titles(connection, category_titles)
                items.write_changes(connection, changes)
                placed = _place_in_stories(connection, stories)
                search_index.index_items(connection, [c.item.article_id for c in changes if c.is_published])
                owed.owe_publish(connection, changes)
                if state is not None:
                    sources.write_source_state(connection, state)
            return AppliedUpdate(stories=placed)
        except (exc.StatementError, ValueError):
            # not the environment (wrap_storage_errors made those StorageError): the data of one change
            # broke the batch. Write each change under a savepoint and leave out the ones refused.
            if len(changes) == 0:
                raise
        rejected: list[RejectedChange] = []
        with wrap_storage_errors(action), self._write() as connection:
            if category_titles:
                categories.insert_category_titles(connection, category_titles)
            for change in changes:
                try:
                    with connection.begin_nested():
                        items.write_changes(connection, [change])
                except (exc.StatementError, ValueError) as e:
                    rejected.append(RejectedChange(change, _refusal(e)))
            accepted = [c for c in changes if all(r.change is not c for r in rejected)]
            refused_ids = {r.change.item.article_id for r in rejected}
            placed = _place_in_stories(connection, stories.without(refused_ids) if stories else None)
            search_index.index_items(connection, [c.item.article_id for c in accepted if c.is_published])
            owed.owe_publish(connection, accepted)
            if state is not None:
                sources.write_source_state(connection, state)
        return AppliedUpdate(rejected, placed)

    def owed_categories(self) -> dict[str, datetime]:
        with wrap_storage_errors("could not read the categories owed a publish"), self._read() as connection:
            return owed.select_owed(connection)

    def clear_owed(self, categories: Collection[str], published_from: datetime) -> None:
        if not categories:
            return
        with wrap_storage_errors("could not record a publish"), self._write() as connection:
            owed.delete_owed(connection, categories, published_from)

    def get_item(self, article_id: str) -> Item | None:
        with wrap_storage_errors(f"could not read item {article_id}"), self._read() as connection:
            return items.select_item(connection, article_id)

    def list_items(self, category: str | None, *, limit: int) -> list[Item]:
        with wrap_storage_errors("could not list items"), self._read() as connection:
            return items.select_items(connection, category, limit)

    def count_items(self, category: str | None = None) -> int:
        with wrap_storage_errors("could not count items"), self._read() as connection:
            return items.count_items(connection, category)

    def list_items_in_order(self, category: str | None, *, start: int, limit: int) -> list[Item]:
        with wrap_storage_errors("could not list items"), self._read() as connection:
            return items.select_items_in_order(connection, category, start, limit)

    def category_stats(self) -> dict[str, CategoryStats]:
        with wrap_storage_errors("could not read category statistics"), self._read() as connection:
            return categories.select_category_stats(connection)

    def items_per_source(self) -> dict[str, int]:
        with wrap_storage_errors("could not count items per source"), self._read() as connection:
            return items.count_items_per_source(connection)

    def category_titles(self) -> dict[str, str]:
        with wrap_storage_errors("could not read category titles"), self._read() as connection:
            return categories.select_category_titles(connection)

    def add_category_titles(self, titles: Mapping[str, str]) -> None:
        if not titles:
            return
        with wrap_storage_errors("could not save category titles"), self._write() as connection:
            categories.insert_category_titles(connection, titles)

    def search(self, query: str, *, page: int, per_page: int, time_limit_seconds: float) -> SearchPage:
        with wrap_storage_errors("could not search"), self._engine.connect() as connection, connection.begin():
            return search.search_documents_page(
                connection, query, page=page, per_page=per_page, time_limit_seconds=time_limit_seconds
            )

    def purge_items_before(self, cutoff: datetime) -> Purged:
        with wrap_storage_errors("could not remove items past retention"), self._write() as connection:
            return retention.purge_items_before(connection, cutoff)

    def assign_stories(
        self, signed: Sequence[SignedItem], *, threshold: float, window: timedelta, now: datetime
    ) -> list[StoryAssignment]:
        if not signed:
            return []
        with wrap_storage_errors("could not save stories"), self._write() as connection:
            return similar.assign_stories(connection, signed, threshold, window, now)

    def story_members(self, article_id: str) -> list[StoryMember]:
        with wrap_storage_errors(f"could not read the story of item {article_id}"), self._read() as connection:
            story_id = similar.select_story_id(connection, article_id)
            return [] if story_id is None else similar.select_story_members(connection, story_id)

    def stories_of(self, article_ids: Collection[str]) -> dict[str, StoryView]:
        with wrap_storage_errors("could not read stories"), self._read() as connection:
            return similar.select_stories_of(connection, article_ids)

    def earlier_members_in(self, article_ids: Collection[str], category: str) -> set[str]:
        with wrap_storage_errors("could not read stories"), self._read() as connection:
            return similar.select_earlier_members_in(connection, article_ids, category)

    def story_counts(self) -> StoryCounts:
        with wrap_storage_errors("could not count stories"), self._read() as connection:
            return similar.count_stories(connection)

    def story_counts_per_source(self) -> dict[str, StoryCounts]:
        with wrap_storage_errors("could not count stories per source"), self._read() as connection:
            return similar.count_stories_per_source(connection)

    def claim_owed_categories(self, publisher: str) -> list[str]:
        """Take every category owed a publish (for `publisher`, until settle_publish_claims)."""
        with wrap_storage_errors("could not claim owed categories"), self._write() as connection:
            return owed.claim_owed(connection, publisher)

    def settle_publish_claims(self, categories: Collection[str], *, published: bool) -> None:
        with wrap_storage_errors("could not settle publish claims"), self._write() as connection:
            owed.settle_claims(connection, categories, published=published)

    def restore_publish_claims(self) -> list[str]:
        """A new publisher owes again what a dead one had claimed."""
        with wrap_storage_errors("could not restore publish claims"), self._write() as connection:
            return owed.restore_claims(connection)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        # one transaction per call, so a listing and its categories come from one snapshot
        with self._engine.connect() as connection:
            yield connection

    @contextlib.contextmanager
    def _write(self, *, serialize: bool = True) -> Iterator[Connection]:
        with self._engine.connect() as connection:
            connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                if serialize and connection.dialect.name == "postgresql":
                    # PostgreSQL's counterpart of SQLite's BEGIN IMMEDIATE: one write transaction
                    # at a time per store, so positions stay dense even without the writer lock and
                    # two first opens do not both migrate; released at commit or rollback
                    if self._write_key is None:
                        self._write_key = advisory_key(connection, "write")
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._write_key})
                yield connection


def _place_in_stories(connection: Connection, request: StoryRequest | None) -> list[StoryAssignment]:
    if request is None or not request.signed:
        return []
    return similar.assign_stories(connection, request.signed, request.threshold, request.window, request.now)


def _refusal(error: BaseException) -> str:
    """The database's own words for a refused change, without the SQL SQLAlchemy appends."""
    cause = error.orig if isinstance(error, exc.StatementError) and error.orig is not None else error
    first_line = str(cause).splitlines()[0] if str(cause) else ""
    return f"store: {type(cause).__name__}: {first_line}" if first_line else f"store: {type(cause).__name__}"


def _engine_url(url: str) -> tuple[URL, Path | None]:
    """The SQLAlchemy URL for a store setting, and the database file when it is SQLite."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return make_url(url).set(drivername="postgresql+psycopg"), None
    if scheme in ("sqlite", "sqlite+pysqlite"):
        database = make_url(url).database
        if not database or database == ":memory:":
            raise StorageError(f"store: {url} is an in-memory SQLite database; give a file path")
        path = Path(database).expanduser().absolute()
    elif scheme:
        raise StorageError(
            f"store: unsupported store URL {url!r}; use a file path, sqlite:/// or postgresql://"
        )
    else:
        path = Path(url).expanduser().absolute()
    return URL.create("sqlite+pysqlite", database=str(path)), path


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys on every connection; BEGIN emitted by us, not by sqlite3.

    sqlite3 (before 3.12's autocommit attribute) begins transactions on its own and not before
    DDL, so SQLAlchemy's documented recipe takes BEGIN over ("Serializable isolation / Savepoints
    / Transactional DDL" in the pysqlite dialect docs). Writers begin IMMEDIATE: they take the
    write lock up front and wait busy_timeout for it, instead of failing "database is locked"
    when a read transaction cannot be upgraded.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            set_up_connection(cursor.execute)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")
