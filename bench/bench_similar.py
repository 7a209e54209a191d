"""Same-story detection benchmark (issue 14): the precision/recall curve, signing and lookup speed, memory.

Usage: python bench/bench_similar.py [--items 5000] [--store-sizes 2000,10000,30000] [--svg docs/similar-pr.svg]

1. Precision and recall over thresholds on tests/data/similar/pairs.jsonl, with and without the numbers
   guard, as a table and as an SVG plot (written by this script: no plotting dependency).
2. Items per second on one core: signing (normalise + sketch + band keys), lookup (one band-index query for
   the whole batch + best_match per item, against a SQLite store of --items signed items), and the whole
   assign_stories (with writes).
3. Memory and time per batch of 1,000 new items as the store grows: flat when candidates come only from
   the index (tracemalloc peak of the batch, not of the process).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config.load import Settings
from aggregator.models import Item, ItemChange
from aggregator.similar.clusters import best_match, sign_item
from aggregator.similar.evaluation import Score, load_pairs, score_at, score_pairs
from aggregator.similar.signature import Signature
from aggregator.storage import SignedItem, SqlStorage, open_storage
from aggregator.storage.bands import find_stored_candidates, first_number_since

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "similar" / "pairs.jsonl"
PAPERS = ["南通日报", "泉州晚报", "重庆日报", "扬子晚报", "齐鲁晚报"]
NAMES = ["张伟", "王芳", "李娜", "刘洋"]
THRESHOLDS = [round(0.2 + 0.05 * step, 2) for step in range(15)]
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--store-sizes", default="2000,10000,30000")
    parser.add_argument("--svg", type=Path, default=Path("docs/similar-pr.svg"))
    args = parser.parse_args()
    pairs = load_pairs(PAIRS)
    curve(pairs, args.svg)
    pool = sentence_pool([(str(side["title"]), str(side["html"])) for pair in pairs for side in (pair["a"], pair["b"])])
    speed(pool, args.items)
    memory(pool, [int(size) for size in args.store_sizes.split(",")])


def curve(pairs: list[dict[str, object]], svg: Path) -> None:
    scored = score_pairs(pairs)
    same = sum(p.same_story for p in scored)
    chosen = Settings().similar_threshold
    print(f"## precision/recall: {len(scored)} labelled pairs ({same} same story, {len(scored) - same} different)")
    print("| threshold | precision | recall | false merges | missed | precision without numbers guard |")
    print("| --- | --- | --- | --- | --- | --- |")
    guarded = [score_at(scored, t) for t in THRESHOLDS]
    unguarded = [score_at(scored, t, numbers_guard=False) for t in THRESHOLDS]
    for score, bare in zip(guarded, unguarded, strict=True):
        mark = " (default)" if score.threshold == chosen else ""
        print(f"| {score.threshold:.2f}{mark} | {score.precision:.3f} | {score.recall:.3f} | {score.false_merges} | "
              f"{score.missed} | {bare.precision:.3f} |")
    svg.parent.mkdir(parents=True, exist_ok=True)
    svg.write_text(render_svg(guarded, unguarded, chosen), encoding="utf-8")
    print(f"plot: {svg}\n")


def render_svg(guarded: list[Score], unguarded: list[Score], chosen: float) -> str:
    """A line chart of precision and recall over thresholds, as SVG 1.1."""
    width, height, left, top, plot_w, plot_h = 640, 400, 60, 30, 540, 300
    low, high = THRESHOLDS[0], THRESHOLDS[-1]
    floor = 0.5  # the y axis starts here: every value of interest lies above it

    def x(threshold: float) -> float:
        return left + (threshold - low) / (high - low) * plot_w

    def y(value: float) -> float:
        return top + (1 - (max(value, floor) - floor) / (1 - floor)) * plot_h

    def line(scores: list[Score], field: str, colour: str, dash: str = "") -> str:
        points = " ".join(f"{x(s.threshold):.1f},{y(getattr(s, field)):.1f}" for s in scores)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} points="{points}"/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="12"><rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">Same-story detection on {escape(PAIRS.name)}: '
        "precision and recall by threshold</text>",
    ]
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.1f}</text>')
    for threshold in THRESHOLDS[::2]:
        parts.append(f'<text x="{x(threshold):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{threshold:.1f}</text>')
    parts.append(f'<line x1="{x(chosen):.1f}" x2="{x(chosen):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#888" '
                 f'stroke-dasharray="4 3"/><text x="{x(chosen) + 4:.1f}" y="{top + 12}">default {chosen}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    parts += [line(guarded, "precision", "#1f77b4"), line(guarded, "recall", "#d62728"),
              line(unguarded, "precision", "#1f77b4", "6 4")]
    legend = [("#1f77b4", "", "precision"), ("#d62728", "", "recall"),
              ("#1f77b4", "6 4", "precision without the numbers guard")]
    for index, (colour, dash, label) in enumerate(legend):
        ly = top + plot_h + 40
        lx = left + index * 150
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{extra}/>'
                     f'<text x="{lx + 30}" y="{ly + 4}">{escape(label)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">threshold '
                 "(estimated Jaccard similarity of 4-character shingles)</text></svg>")
    return "\n".join(parts) + "\n"


def sentence_pool(texts: list[tuple[str, str]]) -> list[str]:
    """Every distinct sentence of the evaluation texts (real legacy-post and template sentences)."""
    sentences = {part.strip() + "。" for _, html in texts
                 for part in re.split(r"[。！？]", re.sub(r"<[^>]+>", "", html)) if len(part.strip()) >= 12}
    return sorted(sentences)


def make_items(pool: list[str], count: int, seed: int, start: int, reprint_share: float = 0.15) -> list[Item]:
    """`count` items of 4-10 sentences drawn from `pool`, with a serial number and a random figure, so most
    are stories of their own (as most of a day's news is); `reprint_share` of them reprint an earlier
    item of the batch under a new source line and editor."""
    rng = random.Random(seed)
    items: list[Item] = []
    for serial in range(start, start + count):
        if items and rng.random() < reprint_share:
            original = rng.choice(items)
            title = original.title
            html = original.html.rsplit("<p>（文章来源", 1)[0]
        else:
            title = rng.choice(pool)[:24]
            html = "".join(f"<p>{rng.choice(pool)}</p>" for _ in range(rng.randint(4, 10)))
            html += f"<p>第{serial}号，金额{rng.randint(1, 99999)}万元。</p>"
        html += f"<p>（文章来源：{rng.choice(PAPERS)}）</p><p>责任编辑：{rng.choice(NAMES)}</p>"
        items.append(Item(
            article_id=f"NW{serial:018d}", title=title, url=None, html=html, published=NOW, updated=NOW,
            categories=frozenset({"bench"}), sources=frozenset({"bench"}), content_hash=str(serial), first_seen=NOW,
        ))
    return items


def store_items(storage: SqlStorage, items: list[Item], signatures: list[Signature] | None = None) -> tuple[float, float]:
    """Insert and sign `items`; (CPU, wall) seconds spent in assign_stories alone."""
    storage.apply_update([ItemChange("insert", item, "bench", "r") for item in items], None)
    signatures = signatures or [sign_item(i.title, i.html) for i in items]
    signed = [SignedItem(i.article_id, i.categories, NOW, s) for i, s in zip(items, signatures, strict=True)]
    started = _clock()
    storage.assign_stories(signed, threshold=0.5, window=timedelta(days=7), now=NOW)
    return _clock() - started


def speed(pool: list[str], count: int) -> None:
    items = make_items(pool, count, 1, 0)
    chars = sum(len(i.title) + len(i.html) for i in items) / len(items)
    sign_item(items[0].title, items[0].html)  # imports numpy, as a worker does before its first call
    started = _clock()
    signatures = [sign_item(item.title, item.html) for item in items]
    sign = _clock() - started
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage(str(Path(folder) / "bench.db"))
        assert isinstance(storage, SqlStorage)
        assign = store_items(storage, items, signatures)
        probes = make_items(pool, count, 2, count)
        probe_signatures = [sign_item(item.title, item.html) for item in probes]
        candidates = 0
        started = _clock()
        with storage._engine.connect() as connection:
            # one lookup for the whole batch, as assign_stories does for a poll's new items
            first = first_number_since(connection, NOW - timedelta(days=7))
            stored = find_stored_candidates(connection, (s.band_keys for s in probe_signatures), first)
            for signature in probe_signatures:
                found = stored.candidates(signature.band_keys)
                best_match(signature, found, 0.5)
                candidates += len(found)
        lookup = _clock() - started
        storage.close()
    print(f"## speed on one core: {count} items, {chars:.0f} characters of title and HTML each, "
          f"{candidates / count:.1f} candidates per lookup")
    print("| step | items/s (CPU time) | items/s (wall) |")
    print("| --- | --- | --- |")
    for label, (cpu, wall) in [
        ("signature (normalise, sketch, band keys)", sign),
        (f"lookup (band index in SQLite + best_match), store of {count}", lookup),
        ("signature + lookup", (sign[0] + lookup[0], sign[1] + lookup[1])),
        ("assign_stories: lookup + decision + writes, one transaction", assign),
    ]:
        print(f"| {label} | {count / cpu:,.0f} | {count / wall:,.0f} |")
    print()


def _clock() -> _Clock:
    return _Clock(time.process_time(), time.perf_counter())


class _Clock(tuple[float, float]):
    """(CPU seconds of this process, wall seconds): CPU time is what one core spends, whatever else runs."""

    def __new__(cls, cpu: float, wall: float) -> _Clock:
        return super().__new__(cls, (cpu, wall))

    def __sub__(self, other: tuple[float, float]) -> tuple[float, float]:  # type: ignore[override]
        return (self[0] - other[0], self[1] - other[1])


def memory(pool: list[str], sizes: list[int]) -> None:
    """At each store size, one batch of 1,000 new items timed, then one traced (tracemalloc slows it)."""
    print("## memory and time per batch of 1,000 new items as the store grows (SQLite)")
    print("| stored items before the batches | CPU seconds per batch (assign_stories) | tracemalloc peak of a batch |")
    print("| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage(str(Path(folder) / "bench.db"))
        assert isinstance(storage, SqlStorage)
        stored = 0
        for size in sizes:
            while stored < size:
                step = min(5000, size - stored)
                store_items(storage, make_items(pool, step, stored, stored))
                stored += step
            cpu, _wall = store_items(storage, make_items(pool, 1000, stored, stored))
            batch = make_items(pool, 1000, stored + 1000, stored + 1000)
            storage.apply_update([ItemChange("insert", item, "bench", "r") for item in batch], None)
            signed = [SignedItem(i.article_id, i.categories, NOW, sign_item(i.title, i.html)) for i in batch]
            tracemalloc.start()
            storage.assign_stories(signed, threshold=0.5, window=timedelta(days=7), now=NOW)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"| {size:,} | {cpu:.2f} | {peak / 1e6:.1f} MB |")
            stored += 2000
        storage.close()


if __name__ == "__main__":
    main()
