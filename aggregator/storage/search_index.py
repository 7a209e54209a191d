"""Keep the search documents in step with the items: one plain-text row per item, and its trigram index.

No business logic. `search_documents` holds each item's title and text (tags removed) under its
`rank` (storage/search.py explains the ordering); SQLite mirrors it into an FTS5 `trigram` table,
PostgreSQL indexes it with pg_trgm GIN. `create_search_index` is the migration that builds both and
indexes the items already stored; `index_items` runs inside every write transaction that changes
items, `remove_documents` inside retention's purge. The table has its own MetaData: the schema module
imports this one for its migration list, never the reverse.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table, Text, bindparam, text

#: 2²¹ positions share one listing second before ranks could collide (ties beyond are not expected)
_RANK_SHIFT = 21
_CHUNK = 500
_SPACES = re.compile(r"\s+")

metadata = MetaData()

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


def normalise_query(query: str) -> str:
    """Whitespace collapsed and trimmed; what both backends match literally."""
    return _SPACES.sub(" ", query).strip()


def plain_text(html: str) -> str:
    """The text of an HTML fragment, whitespace collapsed."""
    if not html.strip():
        return ""
    # imported here: a poll of 304s, which indexes nothing, never loads lxml (~60 ms of start-up)
    import lxml.html
    from lxml import etree

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


def merge_search_segments_less_often(connection: Connection) -> None:
    """The migration that tunes SQLite's FTS5 index for many small write transactions (a poll writes
    one per source): merge 16 segments at a time instead of 4. Indexing a first pass of 9,110 items in
    200 transactions took 6.4 s with the default and 3.8 s with this, in one run; a query reads a few
    more segments (still well under a millisecond). PostgreSQL's GIN index has no such setting."""
    if connection.dialect.name == "sqlite":
        connection.execute(text("INSERT INTO search_index(search_index, rank) VALUES ('automerge', 16)"))


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


def _pg_trgm_schema(connection: Connection) -> str:
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
    schema = connection.execute(text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'"
    )).scalar_one()
    return str(schema).replace('"', '""')


def _expanding(name: str) -> Any:
    return bindparam(name, expanding=True)


def _aware(value: Any) -> datetime:
    """A timestamp as either backend returns it to raw SQL: SQLite text or a (naive) datetime."""
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
