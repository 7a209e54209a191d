"""The labelled evaluation set (tests/data/similar/pairs.jsonl) scored at the default threshold (issue 14)."""

from __future__ import annotations

from collections import Counter

import pytest

from aggregator.config.load import Settings
from aggregator.similar.evaluation import ScoredPair, load_pairs, score_at, score_pairs
from tests.conftest import DATA_DIR

PAIRS = DATA_DIR / "similar" / "pairs.jsonl"


@pytest.fixture(scope="module")
def scored() -> list[ScoredPair]:
    return score_pairs(load_pairs(PAIRS))


def test_evaluation_set_has_300_labelled_pairs_of_every_kind(scored: list[ScoredPair]) -> None:
    kinds = Counter(pair.kind.split("-")[0] if pair.kind.startswith("reprint") else pair.kind for pair in scored)
    assert len(scored) >= 300
    assert set(kinds) == {"channel-copy", "reprint", "template-reprint", "market-wrap", "announcement",
                          "flash-template", "different-post"}
    assert sum(p.same_story for p in scored) >= 150 and sum(not p.same_story for p in scored) >= 150


def test_default_threshold_merges_with_precision_099_and_recall_095(scored: list[ScoredPair]) -> None:
    score = score_at(scored, Settings().similar_threshold)
    assert score.precision >= 0.99, score
    assert score.recall >= 0.95, score


def test_templated_near_misses_are_never_merged(scored: list[ScoredPair]) -> None:
    threshold = Settings().similar_threshold
    merged = [p.pair_id for p in scored if not p.same_story and p.matchable and p.numbers_agree
              and p.similarity >= threshold]
    assert merged == []


def test_numbers_guard_is_what_keeps_announcement_digests_apart(scored: list[ScoredPair]) -> None:
    """Without it the boilerplate every notice shares would merge different companies' announcements."""
    threshold = Settings().similar_threshold
    unguarded = score_at(scored, threshold, numbers_guard=False)
    assert unguarded.false_merges > 0
    assert {p.kind for p in scored if not p.same_story and p.matchable and p.similarity >= threshold} == {
        "announcement"}
