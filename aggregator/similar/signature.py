"""A story text → its MinHash sketch (bottom-k) and LSH band keys (one-permutation bins); pure, numpy-free.

Shingles are 4 characters, which needs no word segmentation for Chinese (issue 14). A text encoded
as UTF-16 makes every 4-character shingle exactly one 64-bit integer, so the shingles are read
in C by `array("Q")` at the four character offsets instead of being sliced one by one. Each
shingle is hashed once, by CPython's hash of a 1-tuple: one xxHash-style round (multiply, rotate,
multiply) run in C, deterministic for integers (unlike str hashes, it is not salted per process)
and stable since Python 3.8; `TUPLE_HASH_PROBE` refuses a Python whose tuple hash differs. The low
30 bits are kept: single-digit integers sort several times faster than 64-bit ones.

Two summaries come from those hashes, both from one descending sort:

- the *sketch*, the 128 smallest hashes (a bottom-k MinHash sketch, Broder 1997; Cohen & Kaplan
  2007). Two sketches estimate the Jaccard similarity of two texts: of the union's hashes below
  the smaller sketch maximum, the share found in both. A text of at most 128 shingles is its whole
  set, so the estimate is exact for short items, where a fixed-width signature is noisiest.
- the *band keys*, for finding candidates: the top 7 bits of a hash pick one of 128 bins and each
  bin keeps its smallest hash (one-permutation hashing, Li, Owen & Zhang, NIPS 2012); empty bins of
  a short text borrow from the next full bin to their right, shifted by the distance (densification
  by rotation, Shrivastava & Li, ICML 2014). The bins are cut into 32 bands of 4 (LSH, Indyk &
  Motwani 1998): two items share a band key with probability 1 - (1 - s⁴)³², 99% at similarity 0.6
  and 23% at 0.3, so a lookup by band key finds an item's reprints without comparing it with every
  stored item.

Classic MinHash (datasketch's) computes 128 hashes per shingle; this computes one, which is what
makes signing fast enough without numpy (README, "Design"). Everything runs in C-level loops
(`map`, `zip`, `sorted`); no Python-level loop runs per shingle.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import struct
from array import array
from dataclasses import dataclass

from aggregator.errors import AggregatorError

#: characters per shingle: 4 UTF-16 code units are exactly one 64-bit integer
SHINGLE_CHARS = 4
#: hashes kept in the sketch
SKETCH_SIZE = 128
#: one-permutation bins behind the band keys, and their bands
BINS = 128
BANDS = 32
ROWS_PER_BAND = BINS // BANDS
#: fewer shingles than this say too little to call two items one story (a headline-only item)
MIN_SHINGLES = 24
#: hash((1,)) on 64-bit CPython 3.8+ (Objects/tupleobject.c, xxHash-based tuplehash); signatures
#: made under another tuple hash never compare with stored ones
TUPLE_HASH_PROBE = -6644214454873602895

_HASH_BITS = 30
_HASH_MASK = (1 << _HASH_BITS) - 1
_BIN_SHIFT = _HASH_BITS - 7
#: added per bin of distance when an empty bin borrows a neighbour's value
_ROTATION_STEP = 0x2F4F2A35
_EMPTY_BIN = -1


@dataclass(frozen=True, slots=True)
class Signature:
    """What is stored of an item to find its reprints."""

    #: the SKETCH_SIZE smallest shingle hashes, ascending, as little-endian uint32
    sketch: bytes
    #: one signed 64-bit key per LSH band
    band_keys: tuple[int, ...]
    #: distinct shingles of the text; below MIN_SHINGLES the item is never matched
    shingle_count: int
    #: the numbers of the text (clusters.py: a reprint keeps them, a templated near-miss does not)
    numbers: frozenset[str]

    @property
    def is_matchable(self) -> bool:
        return self.shingle_count >= MIN_SHINGLES


def check_hash_function() -> None:
    """Refuse to sign under a tuple hash other than the one stored signatures were made with."""
    if hash((1,)) != TUPLE_HASH_PROBE:
        raise AggregatorError(
            "similar: this Python's tuple hash differs from 64-bit CPython 3.8+; "
            "set similar_detection = false or use such a Python"
        )


def shingle_hashes(text: str) -> list[int]:
    """The 30-bit hash of every distinct 4-character shingle of `text`."""
    encoded = text.encode("utf-16-le")
    unit_count = len(encoded) // 2
    shingles: set[int] = set()
    for offset in range(SHINGLE_CHARS):
        whole = (unit_count - offset) // SHINGLE_CHARS
        if whole <= 0:
            continue
        chunk = array("Q")
        chunk.frombytes(encoded[offset * 2 : (offset + whole * SHINGLE_CHARS) * 2])
        shingles.update(chunk)
    return list(map(_HASH_MASK.__and__, map(hash, zip(shingles))))


def sign_text(text: str, numbers: frozenset[str]) -> Signature:
    """The sketch and band keys of a story text (see the module docstring)."""
    hashes = shingle_hashes(text)
    hashes.sort(reverse=True)
    sketch = hashes[: -SKETCH_SIZE - 1 : -1]
    # the last value written per bin wins: in descending order, that is the bin's minimum
    minimum = dict(zip(map(operator.rshift, hashes, itertools.repeat(_BIN_SHIFT)), hashes))
    bins = list(map(minimum.get, range(BINS), itertools.repeat(_EMPTY_BIN))) if minimum else [0] * BINS
    if len(minimum) < BINS:
        bins = _densify(bins)
    # band b hashes (b, bins[4b], bins[4b + 1], bins[4b + 2], bins[4b + 3])
    rows = (bins[row::ROWS_PER_BAND] for row in range(ROWS_PER_BAND))
    keys = tuple(map(hash, zip(range(BANDS), *rows)))
    return Signature(struct.pack(f"<{len(sketch)}I", *sketch), keys, len(hashes), numbers)


def unpack_sketch(sketch: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(sketch) // 4}I", sketch)


def estimate_similarity(first: bytes, second: bytes) -> float:
    """Estimated Jaccard similarity of two texts from their sketches (exact when both are short)."""
    if first == second:
        return 1.0
    mine = unpack_sketch(first)
    return similarity_of_sketches(mine, frozenset(mine), unpack_sketch(second))


def similarity_of_sketches(first: tuple[int, ...], first_set: frozenset[int], second: tuple[int, ...]) -> float:
    """estimate_similarity for unpacked (ascending) sketches, `first` also as a set.

    Below τ, the smaller of the two sketches' largest hashes, both sketches hold every hash of their
    text, so the union's hashes below τ are known and so are the shared ones (all shared hashes lie
    below τ): their ratio estimates the Jaccard similarity (Cohen & Kaplan 2007). A sketch shorter
    than SKETCH_SIZE is its text's whole set and bounds nothing; two such give the exact similarity.
    One set intersection and two binary searches, all in C.
    """
    if not first or not second:
        return 0.0
    shared = len(first_set.intersection(second))
    bounds = [sketch[-1] for sketch in (first, second) if len(sketch) >= SKETCH_SIZE]
    if not bounds:
        return shared / (len(first) + len(second) - shared)
    tau = min(bounds)
    return shared / (bisect.bisect_right(first, tau) + bisect.bisect_right(second, tau) - shared)


def _densify(bins: list[int]) -> list[int]:
    """Fill each empty bin from the next full bin to its right (circularly), shifted by the distance.

    Only the empty bins are visited (a 600-character item leaves about 5 of 128 empty)."""
    filled = list(bins)
    for index in [index for index, value in enumerate(bins) if value == _EMPTY_BIN]:
        distance = 1
        while bins[(index + distance) % BINS] == _EMPTY_BIN:
            distance += 1
        filled[index] = (bins[(index + distance) % BINS] + distance * _ROTATION_STEP) & _HASH_MASK
    return filled
