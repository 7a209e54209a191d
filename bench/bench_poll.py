"""End-to-end poll benchmark: serve a generated corpus on loopback, run `aggregator poll --all` twice.

Prints items/s and peak RSS for the first pass and the wall time of the unchanged second pass
(all 304s). Usage: python bench/bench_poll.py [--sources 200] [--items 50] [--duplicates 0.15] [--hosts N]

Each source is served from a loopback address of its own (127.0.1.1, 127.0.1.2, …) by default, as 200
newspapers are 200 hosts, so the shipped per-host politeness (one request at a time, 1 s apart) applies
unchanged and never waits. With fewer `--hosts`, sources share hosts and the per-host limits are lifted
to 16 at once, 1 ms apart; even so, 200 sources on one host spend >= 0.2 s in that 1 ms gap alone.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import generate, render_rss
from bench.corpus_server import CorpusServer, Document

#: what every `poll` process imports before it does any work (the fixed cost of a pass)
STARTUP_IMPORTS = ("import aggregator.cli, aggregator.config.load, aggregator.fetch.client, aggregator.publish, "
                   "aggregator.storage, aggregator.update")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--duplicates", type=float, default=0.15)
    parser.add_argument("--gb18030-every", type=int, default=10, help="every Nth source is GB18030 (header says GB2312)")
    parser.add_argument("--hosts", type=int, help="loopback hosts the sources are spread over (default: one each)")
    parser.add_argument("--show", action="store_true", help="print each pass's summary")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="also run the first pass again under cProfile (main process only) into FILE and print its top")
    args = parser.parse_args()
    hosts = [_loopback_address(index) for index in range(min(args.hosts or args.sources, args.sources))]

    corpus = generate(args.sources, args.items, args.duplicates)
    documents: dict[str, Document] = {}
    emnews = {a.info_code for arts in corpus.values() for a in arts[::7]}
    total_bytes = 0
    for index, (name, articles) in enumerate(corpus.items()):
        gb = args.gb18030_every and index % args.gb18030_every == 0
        encoding = "gb18030" if gb else "utf-8"
        body = render_rss(name, articles, emnews_urls=emnews).replace("{encoding}", encoding).encode(encoding)
        total_bytes += len(body)
        documents[f"/{name}.xml"] = Document(
            body, f"application/rss+xml; charset={'GB2312' if gb else 'utf-8'}",
            '"' + hashlib.sha1(body).hexdigest() + '"',
        )
    distinct = len({a.info_code for arts in corpus.values() for a in arts})
    total_items = sum(len(a) for a in corpus.values())

    with tempfile.TemporaryDirectory() as tmp, CorpusServer(documents, hosts) as server:
        config = Path(tmp) / "feeds.toml"
        lines = [
            "[settings]",
            'store = "store/aggregator.db"',
            "allow_private_networks = true  # the corpus is served on loopback",
            "concurrency = 16",
        ]
        if len(hosts) < len(corpus):
            lines += ["# sources share hosts: lift the politeness limits so they are not what is measured",
                      "per_host_concurrency = 16", 'per_host_delay = "1ms"']
        lines += ["", "[categories.bench]", 'title = "Bench"']
        for index, name in enumerate(corpus):
            url = server.url(f"/{name}.xml", index % len(hosts))
            lines += ["", "[[sources]]", f'name = "{name}"', f'url = "{url}"', 'categories = ["bench"]']
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "aggregator", "poll", "--all", "-q", "--config", str(config)]
        if args.show:
            command.remove("-q")

        first = _timed(command, args.show)
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        second = _timed(command, args.show)
        if args.profile:
            (Path(tmp) / "store").rename(Path(tmp) / "store-before-profile")
            profiled = [sys.executable, "-m", "cProfile", "-o", str(args.profile), *command[1:]]
            _timed(profiled, args.show)
        startup = min(_timed([sys.executable, "-c", STARTUP_IMPORTS], False) for _ in range(3))

    print(f"corpus: {args.sources} sources x {args.items} items = {total_items} items "
          f"({distinct} distinct articles), {total_bytes / 1e6:.1f} MB of RSS, on {len(hosts)} loopback host(s)")
    print(f"first pass:  {first:.2f} s wall, {total_items / first:,.0f} items/s, peak RSS {peak_rss_mb:.0f} MB")
    print(f"second pass: {second:.2f} s wall (unchanged: all 304), {first / second:.1f}x faster than the first")
    print(f"  of which interpreter start-up and imports: {startup:.2f} s; the passes' own work: "
          f"{first - startup:.2f} s vs {second - startup:.2f} s, {(first - startup) / (second - startup):.1f}x")
    if args.profile:
        import pstats

        print(f"\nfirst pass, main process (parse and clean run in the pool's workers): {args.profile}")
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(30)


def _loopback_address(index: int) -> str:
    """127.0.1.1, 127.0.1.2, …, 127.0.1.250, 127.0.2.1, …: all of 127.0.0.0/8 reaches lo on Linux."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def _timed(command: list[str], show: bool) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.perf_counter() - started
    if show:
        print(result.stdout[-3000:], result.stderr[-3000:])
    if result.returncode != 0:
        sys.exit(f"poll failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


if __name__ == "__main__":
    main()
