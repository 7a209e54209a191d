"""A story text → its MinHash sketch (bottom-k) and LSH band keys (one-permutation bins); pure, numpy arrays.

Shingles are 4 characters, which needs no word segmentation for Chinese (issue 14). A text encoded
as UTF-16 makes every 4-character shingle exactly one little-endian 64-bit integer, so numpy reads
all of them at once, one per code-unit offset, through a strided view of the encoded bytes. Each
distinct shingle is hashed once, by the function CPython's `hash((shingle,))` computes (the int hash
modulo 2**61 - 1, then tuplehash's one xxHash-style round), redone in uint64 arithmetic: the values
are those of the pure-Python signing that made the stored signatures, bit for bit
(tests/test_similar_signature.py keeps that signing as an oracle). The low 30 bits are kept.

Two summaries come from those hashes, both from one ascending sort:

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
  stored item. A band key is Python's hash of the 5-tuple (band, its 4 bins): 32 hashes per item,
  left to CPython, whose tuple hash `TUPLE_HASH_PROBE` checks.

Classic MinHash (datasketch's) computes 128 hashes per shingle; this computes one. With numpy a
600-character item is signed in ~40 µs instead of ~170 µs in C-level loops of pure Python (README,
"Design"). numpy is imported on the first signing, not with this module: `poll` and `serve` import
Signature without ever signing on a pass of 304s.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregator.errors import AggregatorError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

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
#: CPython's int hash is the value modulo this Mersenne prime (Include/pyhash.h, _PyHASH_MODULUS)
_INT_HASH_MODULUS = (1 << 61) - 1
#: tuplehash's multipliers and seed (Objects/tupleobject.c, 3.8+: xxHash's PRIME64_1, _2 and _5)
_XXPRIME_1 = 11400714785074694791
_XXPRIME_2 = 14029467366897019727
_XXPRIME_5 = 2870177450012600261


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


def shingle_hashes(text: str) -> NDArray[np.uint64]:
    """The 30-bit hash of every distinct 4-character shingle of `text`, ascending (one per shingle:
    two shingles whose hashes collide both count)."""
    import numpy as np

    encoded = text.encode("utf-16-le")
    count = len(encoded) // 2 - SHINGLE_CHARS + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    # the shingle at every character offset, as one little-endian 64-bit integer: a strided view, no copy
    shingles = np.sort(np.ndarray((count,), "<u8", encoded, strides=(2,)))
    distinct = np.ones(count, bool)
    np.not_equal(shingles[1:], shingles[:-1], out=distinct[1:])
    hashes = _tuple_hash(shingles[distinct]) & np.uint64(_HASH_MASK)
    hashes.sort()
    return hashes


def sign_text(text: str, numbers: frozenset[str]) -> Signature:
    """The sketch and band keys of a story text (see the module docstring)."""
    import numpy as np

    hashes = shingle_hashes(text)
    sketch = hashes[:SKETCH_SIZE].astype("<u4").tobytes()
    if len(hashes):
        # ascending, so the first hash of each bin is its minimum; an empty bin's first index is its end
        edges = np.searchsorted(hashes, np.arange(BINS + 1, dtype=np.uint64) << _BIN_SHIFT)
        first = np.minimum(edges[:-1], len(hashes) - 1)
        bins = _densify(hashes[first].astype(np.int64), edges[:-1] < edges[1:])
    else:
        bins = [0] * BINS
    # band b hashes (b, bins[4b], bins[4b + 1], bins[4b + 2], bins[4b + 3])
    rows = (bins[row::ROWS_PER_BAND] for row in range(ROWS_PER_BAND))
    keys = tuple(map(hash, zip(range(BANDS), *rows)))
    return Signature(sketch, keys, len(hashes), numbers)


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


def _tuple_hash(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """hash((value,)) of each 64-bit value, as 64-bit CPython 3.8+ computes it, in uint64 arithmetic.

    An int's hash is its value modulo 2**61 - 1 (Python/pyhash.c); the tuple's is one xxHash round over
    it (Objects/tupleobject.c, tuplehash), checked against `hash((value,))` by the tests. tuplehash
    turns a result of -1 into 1546275796, but no int's hash leads a 1-tuple there (the tests run the
    round backwards), so that case has no code here.
    """
    import numpy as np

    acc = values % np.uint64(_INT_HASH_MODULUS)
    acc *= np.uint64(_XXPRIME_2)
    acc += np.uint64(_XXPRIME_5)
    acc = (acc << np.uint64(31)) | (acc >> np.uint64(33))
    acc *= np.uint64(_XXPRIME_1)
    acc += np.uint64(1 ^ _XXPRIME_5 ^ 3527539)  # the length, mangled as tuplehash does
    return acc


def _densify(values: NDArray[np.int64], full: NDArray[np.bool_]) -> list[int]:
    """Each bin's value; an empty bin takes the next full bin's to its right (circularly), shifted by
    the distance. At least one bin is full."""
    import numpy as np

    full_bins = np.flatnonzero(full)
    indexes = np.arange(BINS)
    # the next full bin at or after each bin, past the end wrapping round to the first full bin
    source = np.concatenate((full_bins, full_bins[:1] + BINS))[np.searchsorted(full_bins, indexes)]
    filled: list[int] = ((values[source % BINS] + (source - indexes) * _ROTATION_STEP) & _HASH_MASK).tolist()
    return filled
