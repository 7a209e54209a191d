"""Tests for aggregator.similar.signature: sketches that estimate Jaccard similarity, band keys that find reprints,
and signatures bit-identical to those of the pure-Python signing that made the stored ones."""

from __future__ import annotations

import itertools
import operator
import random
import struct
import subprocess
import sys
from array import array
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.similar.evaluation import load_pairs
from aggregator.similar.signature import (
    _INT_HASH_MODULUS,
    _XXPRIME_1,
    _XXPRIME_2,
    _XXPRIME_5,
    BANDS,
    BINS,
    MIN_SHINGLES,
    SKETCH_SIZE,
    Signature,
    _tuple_hash,
    check_hash_function,
    estimate_similarity,
    shingle_hashes,
    sign_text,
)
from aggregator.similar.text import story_text
from tests.conftest import DATA_DIR, REPO_ROOT

RNG = random.Random(14)
LONG = "".join(chr(RNG.randrange(0x4E00, 0x9FA5)) for _ in range(2000))


def jaccard(first: str, second: str) -> float:
    a, b = set(shingle_hashes(first).tolist()), set(shingle_hashes(second).tolist())
    return len(a & b) / len(a | b)


def test_shingles_are_every_run_of_four_characters() -> None:
    assert len(shingle_hashes("abcdefg")) == 4  # abcd bcde cdef defg
    assert len(shingle_hashes("abc")) == 0
    assert len(shingle_hashes("abcdabcd")) == 4  # abcd bcda cdab dabc, abcd once
    assert len(shingle_hashes("😀😀")) == 1  # two astral characters are four UTF-16 code units


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


# --- bit-identical to the pure-Python signing (0.x), which made every signature stored so far ---------------


def reference_signature(text: str) -> tuple[bytes, tuple[int, ...], int]:
    """(sketch, band keys, shingle count) as the pure-Python signing computed them: the oracle."""
    mask, empty, step = (1 << 30) - 1, -1, 0x2F4F2A35
    encoded = text.encode("utf-16-le")
    shingles: set[int] = set()
    for offset in range(4):
        whole = (len(encoded) // 2 - offset) // 4
        if whole > 0:
            chunk = array("Q")
            chunk.frombytes(encoded[offset * 2 : (offset + whole * 4) * 2])
            shingles.update(chunk)
    hashes = sorted(map(mask.__and__, map(hash, zip(shingles))), reverse=True)
    sketch = hashes[: -SKETCH_SIZE - 1 : -1]
    minimum = dict(zip(map(operator.rshift, hashes, itertools.repeat(23)), hashes))
    bins = list(map(minimum.get, range(BINS), itertools.repeat(empty))) if minimum else [0] * BINS
    filled = list(bins)
    for index in [index for index, value in enumerate(bins) if value == empty]:
        distance = 1
        while bins[(index + distance) % BINS] == empty:
            distance += 1
        filled[index] = (bins[(index + distance) % BINS] + distance * step) & mask
    keys = tuple(map(hash, zip(range(BANDS), *(filled[row::4] for row in range(4)))))
    return struct.pack(f"<{len(sketch)}I", *sketch), keys, len(hashes)


def signed(text: str) -> tuple[bytes, tuple[int, ...], int]:
    signature = sign_text(text, frozenset())
    return signature.sketch, signature.band_keys, signature.shingle_count


def test_the_oracle_runs_where_stored_signatures_were_made() -> None:
    # array("Q") reads native order: the oracle is the stored format only on a little-endian machine
    assert sys.byteorder == "little"
    check_hash_function()


def test_the_constants_are_those_of_this_pythons_hash() -> None:
    assert sys.hash_info.modulus == _INT_HASH_MODULUS and sys.hash_info.width == 64
    # hash(()) is XXPRIME_5 + (0 ^ XXPRIME_5 ^ 3527539) as a signed 64-bit value
    assert hash(()) == _signed((_XXPRIME_5 + (_XXPRIME_5 ^ 3527539)) % 2**64)
    assert (_XXPRIME_1, _XXPRIME_2) == (11400714785074694791, 14029467366897019727)


UINT64_EDGES = [0, 1, 2, _INT_HASH_MODULUS - 1, _INT_HASH_MODULUS, _INT_HASH_MODULUS + 1, 2 * _INT_HASH_MODULUS,
                2**61, 2**62, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=50))
def test_the_vectorised_hash_of_a_one_tuple_is_pythons(values: list[int]) -> None:
    values += UINT64_EDGES
    hashes = _tuple_hash(np.array(values, dtype=np.uint64)).tolist()
    assert hashes == [hash((value,)) % 2**64 for value in values]


def test_no_integer_makes_the_one_tuple_hash_minus_one() -> None:
    """tuplehash turns -1 into 1546275796; for a 1-tuple of an int that never happens, so _tuple_hash has no
    such branch. Run backwards from -1, the one lane that gives it is no int's hash (all are below 2**61 - 1)."""
    acc = (2**64 - 1 - (1 ^ _XXPRIME_5 ^ 3527539)) * pow(_XXPRIME_1, -1, 2**64) % 2**64
    acc = (acc >> 31 | acc << 33) % 2**64
    lane = (acc - _XXPRIME_5) * pow(_XXPRIME_2, -1, 2**64) % 2**64
    assert lane >= _INT_HASH_MODULUS and lane < 2**64 - _INT_HASH_MODULUS  # neither a positive nor a negative hash


def test_signatures_of_the_evaluation_set_are_those_of_the_pure_python_signing() -> None:
    pairs = load_pairs(DATA_DIR / "similar" / "pairs.jsonl")
    texts = {story_text(str(side["title"]), str(side["html"])) for pair in pairs for side in (pair["a"], pair["b"])}
    assert len(texts) > 500
    for text in sorted(texts):
        assert signed(text) == reference_signature(text), text


def test_signatures_of_the_legacy_posts_are_those_of_the_pure_python_signing(legacy_posts_dir: Path) -> None:
    posts = sorted(legacy_posts_dir.glob("*.md"))
    assert posts
    for path in posts:
        raw = path.read_text(encoding="utf-8")
        # the normalised text, as signed, and the raw file: markup, ASCII, long lines
        for text in (story_text("", raw), raw):
            assert signed(text) == reference_signature(text), path.name


#: Han, ASCII, full-width forms, and astral characters (emoji, CJK extension B: UTF-16 surrogate pairs)
CHARACTERS = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x4E40),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),
    st.characters(min_codepoint=0x1F600, max_codepoint=0x1F64F),
    st.characters(min_codepoint=0x20000, max_codepoint=0x20010),
    st.characters(codec="utf-8"),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(CHARACTERS, max_size=3), st.text(CHARACTERS, max_size=130),
                 st.text(CHARACTERS, max_size=3000)))
def test_signatures_of_any_text_are_those_of_the_pure_python_signing(text: str) -> None:
    assert signed(text) == reference_signature(text)


@settings(max_examples=100, deadline=None)
@given(st.text("ab😀", min_size=4, max_size=40))
def test_repetitive_texts_with_few_shingles_and_many_empty_bins_sign_alike(text: str) -> None:
    assert signed(text) == reference_signature(text)


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "abcd", "😀", "😀😀", "😀a😀", "ａｂｃｄ", "a" * 500],
                         ids=["empty", "1", "2", "3", "4", "astral-1", "astral-2", "astral-3", "full-width", "one-shingle"])
def test_tiny_and_degenerate_texts_sign_as_before(text: str) -> None:
    assert signed(text) == reference_signature(text)
    assert isinstance(sign_text(text, frozenset()), Signature)


def _signed(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


def test_numpy_is_imported_by_the_first_signing_not_by_the_modules_that_store_or_serve_signatures() -> None:
    # poll, run and serve import Signature (storage, update); a pass of 304s never signs (test_cli checks
    # `aggregator poll` itself with -X importtime)
    code = ("import sys, aggregator.cli, aggregator.update, aggregator.serve, aggregator.daemon.scheduler, "
            "aggregator.storage, aggregator.similar.detect; print('numpy' in sys.modules); "
            "aggregator.similar.signature.sign_text('abcd', frozenset()); print('numpy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split() == ["False", "True"]
