"""The website's figures: pages written per second at the legacy scale, and search latency on both backends.

1. Pages: stores --items generated articles (bench/corpus.py bodies, ~3 KB each) spread over
   --categories media in a SQLite store, then times `aggregator build --pages` (every article page,
   category page and the index, each with its .gz twin) and a poll-sized publish (20 new items in one
   category: 20 article pages, that category's pages and the index).
2. Search: loads --search-items documents (a title and a ~150-character digest each, listed one
   minute apart) straight into the search tables of a fresh SQLite store and a fresh PostgreSQL schema
   (the trigram indexes built after the load, as a migration of an existing store does), then runs a
   fixed mix of queries (common and rare 3+ character phrases, an absent phrase, 1- and 2-character
   queries) through Storage.search and prints p50/p95/max in milliseconds.

Usage: python bench/bench_site.py [--items 37000] [--categories 2000] [--search-items 500000]
       [--pg postgresql://postgres@127.0.0.1:5432/test] [--skip-pages] [--skip-search]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config.load import Config, Settings
from aggregator.models import Item, ItemChange
from aggregator.publish.layout import output_dir_of
from aggregator.publish.run import publish_categories
from aggregator.publish.pages import publish_pages
from aggregator.publish.page_layout import PAGES_STATE_FILE
from aggregator.storage import Storage, open_storage
from aggregator.storage.search_index import plain_text, rank_of
from bench.corpus import SENTENCES, make_article

BASE = datetime(2022, 1, 1, tzinfo=UTC)
#: the query mix: (label, query)
QUERIES = [
    ("3+ chars, common", "绿色低碳"),
    ("3+ chars, common", "二氧化碳排放"),
    ("3+ chars, common", "重点项目建设"),
    ("3+ chars, rare", "第123457号"),
    ("3+ chars, rare", "第4242号新闻"),
    ("3+ chars, absent", "低碳绿色能源替代"),
    ("3+ chars, absent", "南通港吞吐量"),
    ("2 chars", "财政"),
    ("2 chars", "港口"),
    ("1 char", "碳"),
    ("1 char", "鲸"),
]
ROUNDS = 5
VERBOSE = False


def bench_pages(items: int, categories: int) -> None:
    rng = random.Random(15)
    with tempfile.TemporaryDirectory(prefix="bench-site-") as folder:
        root = Path(folder)
        config = Config(path=root / "feeds.toml", settings=Settings(
            base_url="https://news.example/", output_dir=Path("site"), store=str(root / "store.db")))
        storage = open_storage(config.settings.store)
        try:
            started = time.perf_counter()
            batch: list[Item] = []
            for serial in range(items):
                batch.append(_item(rng, serial, f"medium{serial % categories:04d}"))
                if len(batch) == 1000:
                    _store(storage, batch)
                    batch = []
            _store(storage, batch)
            print(f"stored {items} items in {categories} categories in {time.perf_counter() - started:.0f} s")
            started = time.perf_counter()
            publish_categories(storage, config, None)  # feeds and pages
            print(f"first publish (feeds and pages) in {time.perf_counter() - started:.0f} s")
            site = output_dir_of(config)
            for folder in (site / "a", site / "c"):
                shutil.rmtree(folder)
            (site / PAGES_STATE_FILE).unlink()
            stats = storage.category_stats()
            started = time.perf_counter()
            publish_pages(storage, config, site, names=sorted(stats), touched=None, stats=stats, full=True)
            seconds = time.perf_counter() - started
            pages = (_count_files(site / "a") + _count_files(site / "c")) // 2
            print(f"| every page written afresh, {items} items | {pages} pages (+ .gz) | {seconds:.1f} s | "
                  f"{pages / seconds:.0f} pages/s |")
            new = [_item(rng, items + n, "medium0001") for n in range(20)]
            _store(storage, new)
            snapshot = _mtimes(site)
            started = time.perf_counter()
            publish_categories(storage, config, ["medium0001"])
            seconds = time.perf_counter() - started
            changed = [p for p, m in _mtimes(site).items() if snapshot.get(p) != m and not p.endswith(".gz")]
            pages = [p for p in changed if p.startswith(("a/", "c/", "index"))]
            print(f"| poll publish, 20 new items in one category | {len(pages)} pages written "
                  f"({sum(p.startswith('a/') for p in pages)} article pages) | {seconds:.2f} s | — |")
        finally:
            storage.close()


def bench_search(count: int, pg_url: str | None) -> None:
    rng = random.Random(5005)
    rows = []
    for n in range(count):
        listed = BASE + timedelta(minutes=n)
        medium = f"地方报{n % 2000}"
        rows.append({
            "rank": rank_of(listed, n), "article_id": f"NW{202201010000000000 + n}",
            "title": f"{medium}：第{n}号新闻 区域经济观察",
            "body": "".join(rng.choice(SENTENCES) for _ in range(3)),
        })
    print(f"generated {count} documents of ~{statistics.mean(len(r['body']) for r in rows[:1000]):.0f} characters")
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        _report("SQLite (FTS5 trigram)", count, _loaded_sqlite(Path(folder) / "search.db", rows))
    if pg_url:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        try:
            _report("PostgreSQL (pg_trgm GIN)", count, _loaded_pg(f"{pg_url}?options=-csearch_path%3D{schema}", rows))
        finally:
            with psycopg.connect(pg_url, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _loaded_sqlite(path: Path, rows: list[dict[str, object]]) -> Storage:
    storage = open_storage(str(path))
    started = time.perf_counter()
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.executemany("INSERT INTO search_documents VALUES (:rank, :article_id, :title, :body)", rows)
        connection.execute("INSERT INTO search_index(search_index) VALUES ('rebuild')")
    print(f"SQLite: loaded and indexed in {time.perf_counter() - started:.0f} s, "
          f"{path.stat().st_size / 2**20:.0f} MiB")
    return storage


def _loaded_pg(url: str, rows: list[dict[str, object]]) -> Storage:
    storage = open_storage(url)
    import psycopg

    started = time.perf_counter()
    conninfo, _, options = url.partition("?options=")
    with psycopg.connect(conninfo, options=options.replace("%3D", "="), autocommit=True) as connection:
        index = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_search_documents_trgm'").fetchone()
        assert index is not None
        connection.execute("DROP INDEX ix_search_documents_trgm")
        with connection.cursor().copy("COPY search_documents (rank, article_id, title, body) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row["rank"], row["article_id"], row["title"], row["body"]))
        connection.execute(index[0])
        connection.execute("ANALYZE search_documents")
    print(f"PostgreSQL: loaded and indexed in {time.perf_counter() - started:.0f} s")
    return storage


def _report(backend: str, count: int, storage: Storage) -> None:
    try:
        latencies: list[float] = []
        per_query: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            for label, query in QUERIES:
                started = time.perf_counter()
                hits = len(storage.search(query, page=1, per_page=20, time_limit_seconds=10).hits)
                latency = (time.perf_counter() - started) * 1000
                latencies.append(latency)
                per_query.setdefault(f"{label}: {query} ({hits} hits)", []).append(latency)
        if VERBOSE:
            for name, values in per_query.items():
                print(f"    {name}: median {statistics.median(values):.1f} ms")
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(f"| {backend} | {count} documents | p50 {statistics.median(ordered):.1f} ms | p95 {p95:.1f} ms | "
              f"max {ordered[-1]:.1f} ms |")
    finally:
        storage.close()


def _item(rng: random.Random, serial: int, category: str) -> Item:
    article = make_article(rng, serial, BASE)
    moment = BASE + timedelta(seconds=serial * 30)
    return Item(article_id=f"NW{202201010000000000 + serial}", title=article.title, url=f"https://finance.eastmoney.com/a/{serial}.html",
                html=article.html, published=moment, updated=moment, categories=frozenset({category}),
                sources=frozenset({"bench"}), content_hash=f"h{serial}")


def _store(storage: Storage, items: list[Item]) -> None:
    if items:
        storage.apply_update([ItemChange("insert", i, "bench", i.content_hash) for i in items], None)


def _count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=37_000)
    parser.add_argument("--categories", type=int, default=2_000)
    parser.add_argument("--search-items", type=int, default=500_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print each query's median latency")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    assert plain_text("<p>ok</p>") == "ok"
    if not args.skip_pages:
        bench_pages(args.items, args.categories)
    if not args.skip_search:
        bench_search(args.search_items, args.pg or None)


if __name__ == "__main__":
    main()
