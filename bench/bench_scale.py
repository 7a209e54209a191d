"""Scale: peak RSS of one large first pass, and whether the time per item grows with the store.

Serves three disjoint corpora on loopback (one address per source): `--small` sources and
`--large` sources of `--items` items each, and `--probe` sources of new articles. Two stores are
built, one by a pass over the small corpus and one by a pass over the large corpus (its wall time
and peak RSS are the scale figures), then the same probe pass (new items only) runs against each:
with no query or structure growing with the store, its time per item is the same on both.
Usage: python bench/bench_scale.py [--small 200] [--large 2000] [--probe 40] [--items 50]
(the issue's figure is --large 10000: 500,000 items; the corpus is held in memory by the server).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_poll import _loopback_address
from bench.corpus import Article, generate, render_rss
from bench.corpus_server import CorpusServer, Document

SERIALS_PER_CORPUS = 10_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--probe", type=int, default=40)
    parser.add_argument("--items", type=int, default=50)
    args = parser.parse_args()
    sizes = {"small": args.small, "large": args.large, "probe": args.probe}
    with tempfile.TemporaryDirectory() as tmp:
        # the server (and the corpus it holds) lives in a process of its own: a child forked from a
        # process holding the corpus would count the corpus in its peak RSS
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        server = context.Process(target=_serve, args=(sizes, args.items, tmp, ready), daemon=True)
        server.start()
        if not ready.wait(600):
            sys.exit("the corpus server did not start")
        try:
            small_wall, small_rss = _pass(Path(tmp) / "small-small.toml")
            large_wall, large_rss = _pass(Path(tmp) / "large-large.toml")
            probe_small, _ = _pass(Path(tmp) / "probe-small.toml")
            probe_large, _ = _pass(Path(tmp) / "probe-large.toml")
        finally:
            server.terminate()
            server.join()

    count = {name: sources * args.items for name, sources in sizes.items()}
    print(f"first pass, {args.small} sources x {args.items}: {small_wall:.1f} s, "
          f"{count['small'] / small_wall:,.0f} items/s, peak RSS {small_rss:.0f} MB")
    print(f"first pass, {args.large} sources x {args.items}: {large_wall:.1f} s, "
          f"{count['large'] / large_wall:,.0f} items/s, peak RSS {large_rss:.0f} MB")
    per_small = probe_small / count["probe"] * 1000
    per_large = probe_large / count["probe"] * 1000
    print(f"probe pass of {count['probe']} new items: {per_small:.2f} ms/item on the small store, "
          f"{per_large:.2f} ms/item on the large store ({per_large / per_small:.2f}x)")


def _serve(sizes: dict[str, int], items: int, tmp: str, ready: Any) -> None:
    """Serve the three corpora on loopback and write the four feeds.toml files; runs until terminated."""
    corpora = {
        name: generate(sources, items, 0.15, seed=index + 1, first_serial=index * SERIALS_PER_CORPUS, prefix=name)
        for index, (name, sources) in enumerate(sizes.items())
    }
    documents = {f"/{name}.xml": _document(name, articles) for corpus in corpora.values()
                 for name, articles in corpus.items()}
    hosts = [_loopback_address(index) for index in range(max(sizes.values()))]
    with CorpusServer(documents, hosts) as server:
        for corpus, store in (("small", "small"), ("large", "large"), ("probe", "small"), ("probe", "large")):
            lines = ["[settings]", f'store = "{store}/aggregator.db"', f'output_dir = "{store}/feeds"',
                     "allow_private_networks = true", "concurrency = 16", "", "[categories.bench]",
                     'title = "Bench"']
            for index, name in enumerate(corpora[corpus]):
                lines += ["", "[[sources]]", f'name = "{name}"', f'url = "{server.url(f"/{name}.xml", index)}"',
                          'categories = ["bench"]']
            (Path(tmp) / f"{corpus}-{store}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        ready.set()
        while True:
            time.sleep(3600)


def _document(name: str, articles: list[Article]) -> Document:
    body = render_rss(name, articles, emnews_urls=set()).replace("{encoding}", "utf-8").encode()
    return Document(body, "application/rss+xml; charset=utf-8", '"' + hashlib.sha1(body).hexdigest() + '"')


def _pass(config: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, the largest process of the pass) of one `aggregator poll --all`."""
    command = [sys.executable, "-m", "aggregator", "poll", "--all", "-q", "--config", str(config)]
    log = config.with_suffix(".log")
    started = time.perf_counter()
    with log.open("wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=config.parent)
        # wait4's rusage is this pass's own (its largest process), not every child's so far
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = status
    elapsed = time.perf_counter() - started
    if status != 0:
        sys.exit(f"poll failed ({status}): {log.read_text()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


if __name__ == "__main__":
    main()
