"""Decide which story a new item belongs to: the cluster of its most similar earlier item, or a new one.

Pure: the candidates come from the band index (storage/similar.py), the threshold from settings.
A false merge hides news from a reader, which is worse than a missed one (issue 14), so a
candidate must pass two tests: its estimated similarity reaches the threshold, and the numbers
agree. Eastmoney's templated articles (daily market wraps "沪指涨0.52% 成交额…", announcement
digests "XX公司：关于…的公告") share most of their characters but not their figures and stock
codes, while a reprint keeps the figures of the story, however its paper trims it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.similar.signature import (
    Signature,
    estimate_similarity,
    sign_text,
    similarity_of_sketches,
    unpack_sketch,
)
from aggregator.similar.text import numbers_in, story_text

#: share of the numbers of the item with fewer numbers that the other must also have
MIN_NUMBER_AGREEMENT = 0.8


@dataclass(frozen=True, slots=True)
class StoredSignature:
    """An earlier item found through the band index, with what deciding needs."""

    article_id: str
    story_id: str
    #: 0 for the story's representative (its first item), then 1, 2, … in joining order
    member_index: int
    seen_at: datetime
    sketch: bytes
    numbers: frozenset[str]
    #: the sketch unpacked, once: one stored item is compared with many new ones of a batch
    hashes: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hashes", unpack_sketch(self.sketch))


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """The earlier item a new item is a reprint of."""

    article_id: str
    story_id: str
    similarity: float


def sign_item(title: str, html: str) -> Signature:
    """An item's signature: its title and cleaned body, normalised (text.py) and signed (signature.py)."""
    text = story_text(title, html)
    return sign_text(text, numbers_in(text))


def numbers_agree(first: frozenset[str], second: frozenset[str]) -> bool:
    """Whether the numbers of the item with fewer numbers are (nearly all) in the other.

    A reprint that cuts a paragraph loses numbers, one that adds a photo caption gains some;
    neither changes the numbers both keep. Items without numbers agree.
    """
    fewer, more = (first, second) if len(first) <= len(second) else (second, first)
    if not fewer:
        return True
    return len(fewer & more) >= MIN_NUMBER_AGREEMENT * len(fewer)


def is_same_story(first: Signature, second: Signature, threshold: float) -> tuple[bool, float]:
    """The decision for two signatures, and their estimated similarity (for evaluation and tests)."""
    similarity = estimate_similarity(first.sketch, second.sketch)
    same = (
        first.is_matchable and second.is_matchable and similarity >= threshold
        and numbers_agree(first.numbers, second.numbers)
    )
    return same, similarity


def best_match(signature: Signature, candidates: Iterable[StoredSignature], threshold: float) -> StoryMatch | None:
    """The most similar candidate at or above `threshold` whose numbers agree; ties go to the earliest."""
    if not signature.is_matchable:
        return None
    best: tuple[float, datetime, str, StoredSignature] | None = None
    mine = unpack_sketch(signature.sketch)
    mine_set = frozenset(mine)
    for candidate in candidates:
        similarity = similarity_of_sketches(mine, mine_set, candidate.hashes)
        if similarity < threshold or not numbers_agree(signature.numbers, candidate.numbers):
            continue
        # highest similarity first, then the earliest seen, then the smallest id: a total order
        key = (-similarity, candidate.seen_at, candidate.article_id, candidate)
        if best is None or key[:3] < best[:3]:
            best = key
    if best is None:
        return None
    return StoryMatch(best[3].article_id, best[3].story_id, -best[0])
