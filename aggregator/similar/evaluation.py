"""Score same-story decisions against labelled pairs: precision and recall per threshold. No business logic.

Used by tests/test_similar_evaluation.py (the targets at the default threshold) and by
bench/bench_similar.py (the curve over thresholds). A pair is {"label": 1|0, "a": {title, html}, "b": …}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.similar.clusters import numbers_agree, sign_item
from aggregator.similar.signature import Signature, estimate_similarity


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """One labelled pair with what the detector sees of it."""

    pair_id: str
    kind: str
    same_story: bool
    similarity: float
    #: both items are long enough to be matched (signature.MIN_SHINGLES)
    matchable: bool
    #: the numbers of the two items agree (clusters.numbers_agree)
    numbers_agree: bool


@dataclass(frozen=True, slots=True)
class Score:
    threshold: float
    precision: float
    recall: float
    false_merges: int
    missed: int


def load_pairs(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score_pairs(pairs: Iterable[dict[str, object]]) -> list[ScoredPair]:
    scored = []
    for pair in pairs:
        a, b = (_sign(pair[side]) for side in ("a", "b"))
        scored.append(ScoredPair(
            pair_id=str(pair["id"]), kind=str(pair["kind"]), same_story=pair["label"] == 1,
            similarity=estimate_similarity(a.sketch, b.sketch),
            matchable=a.is_matchable and b.is_matchable, numbers_agree=numbers_agree(a.numbers, b.numbers),
        ))
    return scored


def score_at(scored: Sequence[ScoredPair], threshold: float, *, numbers_guard: bool = True) -> Score:
    """Precision and recall when the matchable pairs at or above `threshold` are merged (with the
    numbers guard: only those whose numbers agree, as clusters.best_match decides)."""
    merged = [p for p in scored if p.matchable and p.similarity >= threshold
              and (p.numbers_agree or not numbers_guard)]
    right = sum(1 for p in merged if p.same_story)
    same = sum(1 for p in scored if p.same_story)
    return Score(
        threshold=threshold,
        precision=right / len(merged) if merged else 1.0,
        recall=right / same if same else 1.0,
        false_merges=len(merged) - right,
        missed=same - right,
    )


def _sign(side: object) -> Signature:
    if not isinstance(side, dict):
        raise ValueError(f"similar: a pair side must be an object with title and html, not {side!r}")
    return sign_item(str(side["title"]), str(side["html"]))
