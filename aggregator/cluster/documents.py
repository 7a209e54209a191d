"""Published files kept in the store, so stateless web replicas serve the same bytes and validators.

The publisher renders into its own output_dir as a single process does (publish/), then
`upload_changed_files` copies every file whose bytes changed into `published_documents`, all in one
transaction (a feed and its .gz twin change together). `StoreFeedApp` is serve/app.py's FeedApp reading those
rows instead of the disk: each request asks the row's version (one primary-key look-up) and keeps the
body cached by it, so every replica answers the version the store holds at that moment, with the ETag
(a hash of the body) and Last-Modified (the publisher's file time) the same everywhere.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from aggregator.config.load import Config
from aggregator.serve.prepared import FileVersion
from aggregator.serve.app import ASGIApp, FeedApp
from aggregator.storage.schema import published_documents
from aggregator.storage.errors import wrap_storage_errors

#: files under output_dir that are bookkeeping (archive seals, WebSub retries, temp files): never served
_HIDDEN_PREFIX = "."


def document_etag(body: bytes) -> str:
    """The same strong ETag serve/app.py computes for a file on disk."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def upload_changed_files(engine: Engine, output_dir: Path, seen: dict[str, tuple[int, int]]) -> int:
    """Copy the files whose (mtime, size) changed since `seen` (updated in place) into the store.

    A row's version is bumped only when its bytes differ, so a publisher taking over (empty `seen`)
    re-uploads nothing that replicas already serve. Returns the number of rows changed.
    """
    changed: dict[str, tuple[bytes, datetime, tuple[int, int]]] = {}
    for folder, dirs, files in os.walk(output_dir):
        dirs[:] = [d for d in dirs if not d.startswith(_HIDDEN_PREFIX)]
        for name in files:
            if name.startswith(_HIDDEN_PREFIX):
                continue
            path = Path(folder, name)
            relative = path.relative_to(output_dir).as_posix()
            try:
                info = path.stat()
                signature = (info.st_mtime_ns, info.st_size)
                if seen.get(relative) == signature:
                    continue
                body = path.read_bytes()
            except FileNotFoundError:  # replaced meanwhile: the next pass sees the new one
                continue
            changed[relative] = (body, datetime.fromtimestamp(info.st_mtime_ns / 1e9, UTC), signature)
    if not changed:
        return 0
    written = 0
    statement = insert(published_documents)
    statement = statement.on_conflict_do_update(
        index_elements=["path"],
        set_={"body": statement.excluded.body, "etag": statement.excluded.etag,
              "updated_at": statement.excluded.updated_at, "version": published_documents.c.version + 1},
        where=published_documents.c.etag != statement.excluded.etag,
    )
    with wrap_storage_errors("could not upload published documents"), engine.begin() as connection:
        for relative, (body, mtime, _) in sorted(changed.items()):
            values = {"path": relative, "body": body, "etag": document_etag(body), "updated_at": mtime, "version": 1}
            written += connection.execute(statement, values).rowcount
    for relative, (_, _, signature) in changed.items():
        seen[relative] = signature
    return written


class StoreFeedApp(FeedApp):
    """FeedApp serving `published_documents` rows (see the module docstring)."""

    def __init__(self, config: Config, engine: Engine, extra_routes: Sequence[tuple[str, ASGIApp]] = (),
                 is_alive: Callable[[], bool] | None = None) -> None:
        super().__init__(config, extra_routes, is_alive)
        self._engine = engine
        self._prefix = str(self._output_dir) + os.sep

    def _read(self, path: str) -> FileVersion | None:
        relative = path.removeprefix(self._prefix).replace(os.sep, "/")
        with self._engine.connect() as connection:
            row = connection.execute(select(published_documents.c.version, published_documents.c.updated_at)
                                     .where(published_documents.c.path == relative)).first()
            if row is None:
                return None
            cached = self._files.cached(path)
            if cached is not None and cached.key == (row[0], _ns(row[1]), 0):
                return cached
            found = connection.execute(select(published_documents.c.body, published_documents.c.etag,
                                              published_documents.c.version, published_documents.c.updated_at)
                                       .where(published_documents.c.path == relative)).first()
        if found is None:
            return None
        body, etag, version, mtime_ns = bytes(found[0]), found[1], found[2], _ns(found[3])
        loaded = FileVersion(key=(version, mtime_ns, 0), body=body, etag=etag.encode("ascii"), mtime_ns=mtime_ns,
                          last_modified=formatdate(mtime_ns / 1e9, usegmt=True).encode(),
                          content_length=str(len(body)).encode())
        self._files.remember(path, loaded)
        return loaded


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000
