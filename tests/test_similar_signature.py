"""Tests for aggregator.similar.signature: sketches that estimate Jaccard similarity, band keys that find reprints."""

from __future__ import annotations

import random

import pytest

from aggregator.similar.signature import (
    BANDS,
    MIN_SHINGLES,
    SKETCH_SIZE,
    check_hash_function,
    estimate_similarity,
    shingle_hashes,
    sign_text,
)

RNG = random.Random(14)
LONG = "".join(chr(RNG.randrange(0x4E00, 0x9FA5)) for _ in range(2000))


def jaccard(first: str, second: str) -> float:
    a, b = set(shingle_hashes(first)), set(shingle_hashes(second))
    return len(a & b) / len(a | b)


def test_shingles_are_every_run_of_four_characters() -> None:
    assert len(shingle_hashes("abcdefg")) == 4  # abcd bcde cdef defg
    assert shingle_hashes("abc") == []
    assert len(shingle_hashes("abcdabcd")) == 4  # abcd bcda cdab dabc, abcd once


def test_signature_is_deterministic_and_sized() -> None:
    check_hash_function()
    first, second = sign_text(LONG, frozenset()), sign_text(LONG, frozenset())
    assert first == second
    assert len(first.sketch) == SKETCH_SIZE * 4 and len(first.band_keys) == BANDS


@pytest.mark.parametrize("kept", [0.9, 0.7, 0.5, 0.3])
def test_sketches_estimate_the_jaccard_similarity_of_long_texts(kept: float) -> None:
    part = LONG[: int(len(LONG) * kept)]
    estimate = estimate_similarity(sign_text(LONG, frozenset()).sketch, sign_text(part, frozenset()).sketch)
    assert estimate == pytest.approx(jaccard(LONG, part), abs=0.1)


def test_short_texts_are_compared_exactly() -> None:
    text = LONG[:100]
    edited = text[:60] + "改" + text[61:]
    estimate = estimate_similarity(sign_text(text, frozenset()).sketch, sign_text(edited, frozenset()).sketch)
    assert estimate == pytest.approx(jaccard(text, edited))


def test_near_copies_share_band_keys_and_unrelated_texts_do_not() -> None:
    copy = LONG[:1000] + "编辑" + LONG[1000:1900]
    other = "".join(chr(RNG.randrange(0x4E00, 0x9FA5)) for _ in range(2000))
    keys = set(sign_text(LONG, frozenset()).band_keys)
    assert len(keys & set(sign_text(copy, frozenset()).band_keys)) >= BANDS // 2
    assert not keys & set(sign_text(other, frozenset()).band_keys)


def test_a_headline_alone_is_too_short_to_be_matched() -> None:
    assert not sign_text("北向资金净流入达80亿", frozenset()).is_matchable
    assert sign_text(LONG[: MIN_SHINGLES + 3], frozenset()).is_matchable
