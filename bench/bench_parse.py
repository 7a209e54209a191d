"""Feed-parser throughput: items/s of aggregator.parse over a generated regional-news RSS corpus.

Each item carries a ~3 KB article (bench/corpus.py). Prints items/s and MB/s for UTF-8 feeds and
for GB18030 feeds served as "charset=GB2312", plus bare feedparser on the same UTF-8 bytes, so the
cost of our own steps (charset choice, prolog cut, date reading, mapping) shows as the difference.
Usage: python bench/bench_parse.py [--sources 40] [--items 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config.load import SourceConfig
from aggregator.models import Fetched
from aggregator.parse import parse
from bench.corpus import generate, render_rss

FETCHED_AT = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def build(sources: int, items: int, encoding: str, label: str) -> list[tuple[Fetched, SourceConfig]]:
    documents = []
    for name, articles in generate(sources, items, duplicate_share=0.0).items():
        body = render_rss(name, articles, emnews_urls=set()).replace("{encoding}", label).encode(encoding)
        url = f"http://127.0.0.1/{name}.xml"
        fetched = Fetched(url=url, final_url=url, status=200,
                          headers={"content-type": f"application/rss+xml; charset={label}"}, body=body,
                          fetched_at=FETCHED_AT)
        documents.append((fetched, SourceConfig(name=name, url=url)))
    return documents


def measure(label: str, documents: list[tuple[Fetched, SourceConfig]], rounds: int,
            run: Callable[[Fetched, SourceConfig], int]) -> None:
    total_bytes = sum(len(fetched.body) for fetched, _ in documents)
    best = float("inf")
    items = 0
    for _ in range(rounds):
        start = time.perf_counter()
        items = sum(run(fetched, source) for fetched, source in documents)
        best = min(best, time.perf_counter() - start)
    print(f"{label:<34} {items:>6} items  {best:6.2f} s  {items / best:8.0f} items/s  "
          f"{total_bytes / best / 1e6:6.1f} MB/s  ({total_bytes / items / 1024:.1f} KB/item)")


def parse_items(fetched: Fetched, source: SourceConfig) -> int:
    return len(parse(fetched, source, "Asia/Shanghai").items)


def feedparser_items(fetched: Fetched, source: SourceConfig) -> int:
    result = feedparser.parse(io.BytesIO(fetched.body), response_headers=dict(fetched.headers),
                              sanitize_html=False, resolve_relative_uris=False)
    return len(result["entries"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", type=int, default=40)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="best of N passes is reported")
    args = parser.parse_args()

    utf8 = build(args.sources, args.items, "utf-8", "utf-8")
    gb18030 = build(args.sources, args.items, "gb18030", "GB2312")
    print(f"python {sys.version.split()[0]}, feedparser {feedparser.__version__}, "
          f"{args.sources} feeds x {args.items} items, best of {args.rounds}")
    measure("aggregator.parse, UTF-8", utf8, args.rounds, parse_items)
    measure("aggregator.parse, GB18030 as GB2312", gb18030, args.rounds, parse_items)
    measure("bare feedparser, UTF-8 (baseline)", utf8, args.rounds, feedparser_items)


if __name__ == "__main__":
    main()
