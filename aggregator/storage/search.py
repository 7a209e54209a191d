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

Trigrams cannot find 1- or 2-character queries: those fall back to a substring test (instr / strpos;
LIKE / ILIKE when the query has letters to fold) over the newest SHORT_QUERY_WINDOW documents only
(bounded), scanned newest first so a common character stops early. The rows live in
storage/search_index.py, which keeps them in step with the items.

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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exc, text

from aggregator.errors import StorageError
from aggregator.storage.search_index import listed_at_of, normalise_query

#: longest accepted query, in characters (the route refuses longer ones)
MAX_QUERY_CHARS = 64
#: short (1-2 character) queries look at this many newest documents only
SHORT_QUERY_WINDOW = 10_000
#: trigram indexes need this many characters to narrow anything down
TRIGRAM_CHARS = 3
#: deepest page served: a client walking further gets nothing (OFFSET costs grow with depth)
MAX_PAGE = 50
DEFAULT_TIME_LIMIT_SECONDS = 2.0
_SQLITE_PROGRESS_STEPS = 2000


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


