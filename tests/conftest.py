"""Shared fixtures: a fixed `now`, the ../shared corpus (with its skip rule), a loopback feed server,
PostgreSQL at 127.0.0.1:5432, and a fresh store on each backend."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.storage import Storage, open_storage
from tests.fixture_server import FixtureServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
DATA_DIR = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("AGGREGATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; skips the test when absent, fails in CI (CI=true) where it must exist."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        message = f"{path} is absent: ../shared (seed, corpus) is only laid beside developer and CI clones"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)


@pytest.fixture
def seed_post() -> Path:
    return shared_path("seed", "2022-01-24-NW202201242257831752.md")


@pytest.fixture
def legacy_posts_dir() -> Path:
    return shared_path("corpus", "legacy-posts")


@pytest.fixture
def feedparser_corpus_dir() -> Path:
    return shared_path("corpus", "feedparser-tests")


@pytest.fixture
def feed_server() -> Iterator[FixtureServer]:
    server = FixtureServer().start()
    try:
        yield server
    finally:
        server.stop()


def _pg_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(PG_URL.replace("postgresql://", "postgresql://", 1), connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL; skipped locally when it is down, a failure in CI."""
    if not _pg_available():
        message = f"PostgreSQL is not reachable at {PG_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PG_URL


STORE_BACKENDS = ["sqlite", "postgresql"]


@contextlib.contextmanager
def fresh_store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A store nobody used yet: a file under tmp_path, or a PostgreSQL schema of its own, dropped after."""
    if backend == "sqlite":
        yield str(tmp_path / "store" / "aggregator.db")
        return
    pg_url: str = request.getfixturevalue("pg_url")
    import psycopg

    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL, once per backend: a real SQLite file and the real PostgreSQL."""
    with fresh_store_url(request.param, tmp_path, request) as url:
        yield url


@pytest.fixture
def storage(store_url: str) -> Iterator[Storage]:
    store = open_storage(store_url)
    try:
        yield store
    finally:
        store.close()
