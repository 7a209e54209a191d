"""Search over stored items' titles and text, Chinese-aware without word segmentation, on both backends.

One query interface (`search_documents_page`), two indexes over the same `search_documents` rows:

- SQLite: an FTS5 table with the `trigram` tokenizer (https://www.sqlite.org/fts5.html#the_trigram_tokenizer),
  external content on `search_documents`, rowid = rank. A query of 3+ characters is one FTS5 phrase,
  which under the trigram tokenizer is a case-insensitive substring match.
- PostgreSQL: pg_trgm (https://www.postgresql.org/docs/current/pgtrgm.html) with a GIN index on
  `title || ' ' || body`, which makes `ILIKE '%q%'` an index search for 3+ characters. The extension
  is created by the migration (`CREATE EXTENSION IF NOT EXISTS`, trusted since PostgreSQL 13) in
  `public` unless it already exists elsewhere; the index names its operator class by schema, so a
  store living in its own schema finds it.

Trigrams cannot find 1- or 2-character queries: those fall back to LIKE / ILIKE over the newest
SHORT_QUERY_WINDOW documents only (bounded), scanned newest first so a common character stops early.

Results are newest first by `rank` = listing second × 2²¹ + (position mod 2²¹): the listing date
(published, else first seen) with the store's insertion order breaking ties, identical on both
backends, and the FTS5 rowid, so SQLite stops at the page's last hit instead of sorting all matches.
Every query runs under a time limit (PostgreSQL statement_timeout, SQLite's progress handler).
No business logic beyond the matching rule.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import lxml.html
from lxml import etree
from sqlalchemy import BigInteger, Column, Connection, Integer, String, Table, Text, exc, text

from aggregator.errors import StorageError
from aggregator.storage.schema import metadata

#: longest accepted query, in characters (the route refuses longer ones)
MAX_QUERY_CHARS = 64
#: short (1-2 character) queries look at this many newest documents only
SHORT_QUERY_WINDOW = 10_000
#: trigram indexes need this many characters to narrow anything down
TRIGRAM_CHARS = 3
#: deepest page served: a client walking further gets nothing (OFFSET costs grow with depth)
MAX_PAGE = 50
DEFAULT_TIME_LIMIT_SECONDS = 2.0
#: 2²¹ positions share one listing second before ranks could collide (ties beyond are not expected)
_RANK_SHIFT = 21
_SQLITE_PROGRESS_STEPS = 2000
_CHUNK = 500
_SPACES = re.compile(r"\s+")

search_documents = Table(
    "search_documents",
    metadata,
    #: see the module docstring; INTEGER on SQLite so that it is the rowid the FTS5 table points at
    Column("rank", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("article_id", String, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    #: the body as plain text (tags removed, whitespace collapsed)
    Column("body", Text, nullable=False),
)


class SearchTimeoutError(StorageError):
    """A search query ran past its time limit."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    article_id: str
    title: str
    #: the listing date (published, else first seen), to the second
    listed_at: datetime
    #: a few dozen characters of text around the first match
    snippet: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    query: str
    page: int
    per_page: int
    hits: tuple[SearchHit, ...]
    has_more: bool


def normalise_query(query: str) -> str:
    """Whitespace collapsed and trimmed; what both backends match literally."""
    return _SPACES.sub(" ", query).strip()


def plain_text(html: str) -> str:
    """The text of an HTML fragment, whitespace collapsed."""
    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return normalise_query(re.sub(r"<[^>]*>", " ", html))
    return normalise_query(root.text_content())


def rank_of(listed_at: datetime, position: int) -> int:
    return (int(listed_at.timestamp()) << _RANK_SHIFT) + position % (1 << _RANK_SHIFT)


def listed_at_of(rank: int) -> datetime:
    return datetime.fromtimestamp(rank >> _RANK_SHIFT, UTC)


def create_search_index(connection: Connection) -> None:
    """The migration: the documents table, its backend's trigram index, and every stored item indexed."""
    search_documents.create(connection)
    if connection.dialect.name == "postgresql":
        schema = _pg_trgm_schema(connection)
        connection.execute(text(
            "CREATE INDEX ix_search_documents_trgm ON search_documents "
            f"USING gin ((title || ' ' || body) \"{schema}\".gin_trgm_ops)"
        ))
    else:
        # the rowid's own b-tree holds whole rows: a narrow index makes the short-query window's
        # OFFSET walk cheap
        connection.execute(text("CREATE INDEX ix_search_documents_rank ON search_documents (rank)"))
        connection.execute(text(
            "CREATE VIRTUAL TABLE search_index USING fts5(title, body, content='search_documents', "
            "content_rowid='rank', tokenize='trigram')"
        ))
    ids = [row[0] for row in connection.execute(text("SELECT article_id FROM items ORDER BY position"))]
    index_items(connection, ids)


def index_items(connection: Connection, article_ids: Collection[str]) -> None:
    """(Re)index these items from the items table, inside the caller's transaction; gone ones are dropped."""
    ordered = sorted(set(article_ids))
    for begin in range(0, len(ordered), _CHUNK):
        chunk = ordered[begin : begin + _CHUNK]
        remove_documents(connection, chunk)
        rows = connection.execute(
            text(
                "SELECT article_id, position, coalesce(published, first_seen) AS listed, title, html "
                "FROM items WHERE article_id IN :ids"
            ).bindparams(_expanding("ids")),
            {"ids": chunk},
        ).all()
        documents = [
            {
                "rank": rank_of(_aware(listed), position),
                "article_id": article_id,
                "title": normalise_query(title),
                "body": plain_text(html),
            }
            for article_id, position, listed, title, html in rows
        ]
        if not documents:
            continue
        connection.execute(search_documents.insert(), documents)
        if connection.dialect.name == "sqlite":
            connection.execute(
                text("INSERT INTO search_index(rowid, title, body) VALUES (:rank, :title, :body)"), documents
            )


def remove_documents(connection: Connection, article_ids: Sequence[str]) -> None:
    if not article_ids:
        return
    query = text("SELECT rank, title, body FROM search_documents WHERE article_id IN :ids").bindparams(
        _expanding("ids")
    )
    old = [dict(row._mapping) for row in connection.execute(query, {"ids": list(article_ids)})]
    if not old:
        return
    if connection.dialect.name == "sqlite":
        connection.execute(
            text("INSERT INTO search_index(search_index, rowid, title, body) VALUES ('delete', :rank, :title, :body)"),
            old,
        )
    connection.execute(text("DELETE FROM search_documents WHERE rank = :rank"), [{"rank": r["rank"]} for r in old])


def search_documents_page(
    connection: Connection,
    query: str,
    *,
    page: int = 1,
    per_page: int = 20,
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS,
) -> SearchPage:
    """Documents containing `query` (case-insensitive, literal), newest first; page is 1-based."""
    q = normalise_query(query)
    if len(q) > MAX_QUERY_CHARS:
        raise ValueError(f"search: query longer than {MAX_QUERY_CHARS} characters")
    if not q or not 1 <= page <= MAX_PAGE:
        return SearchPage(q, page, per_page, (), False)
    offset = (page - 1) * per_page
    params: dict[str, Any] = {"limit": per_page + 1, "offset": offset}
    is_pg = connection.dialect.name == "postgresql"
    if len(q) >= TRIGRAM_CHARS and not is_pg:
        sql = (
            "SELECT d.rank, d.article_id, d.title, d.body FROM search_documents d WHERE d.rank IN "
            "(SELECT rowid FROM search_index WHERE search_index MATCH :match ORDER BY rowid DESC "
            "LIMIT :limit OFFSET :offset) ORDER BY d.rank DESC"
        )
        params["match"] = '"' + q.replace('"', '""') + '"'
    else:
        if len(q) < TRIGRAM_CHARS and q.lower() == q.upper():
            # no trigram index to use and nothing to fold (Chinese, digits): a plain substring test,
            # much cheaper than (I)LIKE's case folding
            params["needle"] = q
            function = "strpos" if is_pg else "instr"
            condition = f"({function}(title, :needle) > 0 OR {function}(body, :needle) > 0)"
        else:
            params["pattern"] = "%" + re.sub(r"([\\%_])", r"\\\1", q) + "%"
            if is_pg:
                condition = "(title || ' ' || body) ILIKE :pattern"
            else:
                condition = "(title LIKE :pattern ESCAPE '\\' OR body LIKE :pattern ESCAPE '\\')"
        if len(q) < TRIGRAM_CHARS:
            floor = connection.execute(
                text("SELECT rank FROM search_documents ORDER BY rank DESC LIMIT 1 OFFSET :window"),
                {"window": SHORT_QUERY_WINDOW - 1},
            ).scalar_one_or_none()
            if floor is not None:
                condition += " AND rank >= :floor"
                params["floor"] = floor
        sql = (
            f"SELECT rank, article_id, title, body FROM search_documents WHERE {condition} "
            "ORDER BY rank DESC LIMIT :limit OFFSET :offset"
        )
    with time_limit(connection, time_limit_seconds):
        rows = connection.execute(text(sql), params).all()
    hits = tuple(
        SearchHit(article_id, title, listed_at_of(rank), _snippet(title, body, q))
        for rank, article_id, title, body in rows[:per_page]
    )
    return SearchPage(q, page, per_page, hits, len(rows) > per_page)


@contextlib.contextmanager
def time_limit(connection: Connection, seconds: float) -> Iterator[None]:
    """Cancel the statement after `seconds`: SearchTimeoutError instead of a stuck worker."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}"))
        try:
            yield
        except exc.OperationalError as e:
            if getattr(e.orig, "sqlstate", None) == "57014":  # query_canceled
                raise SearchTimeoutError(f"search: query ran longer than {seconds:g} s") from e.orig
            raise
        return
    raw = connection.connection.dbapi_connection
    deadline = time.monotonic() + seconds
    raw.set_progress_handler(lambda: time.monotonic() > deadline, _SQLITE_PROGRESS_STEPS)  # type: ignore[union-attr]
    try:
        yield
    except exc.OperationalError as e:
        if "interrupted" in str(e.orig):
            raise SearchTimeoutError(f"search: query ran longer than {seconds:g} s") from e.orig
        raise
    finally:
        raw.set_progress_handler(None, 0)  # type: ignore[union-attr]


def _snippet(title: str, body: str, query: str, width: int = 60) -> str:
    at = body.lower().find(query.lower())
    if at < 0:
        return body[:width * 2]
    start = max(0, at - width)
    return ("…" if start else "") + body[start : at + len(query) + width] + ("…" if at + len(query) + width < len(body) else "")


def _pg_trgm_schema(connection: Connection) -> str:
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
    schema = connection.execute(text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'"
    )).scalar_one()
    return str(schema).replace('"', '""')


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def _aware(value: Any) -> datetime:
    """A timestamp as either backend returns it to raw SQL: SQLite text or a (naive) datetime."""
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
