"""Counter-based random numbers: a pure function of (seed, stream, index).

Each value is splitmix64 of the index, keyed by the seed and a stream name
(the column), so row `i` of a column has the same value however the rows
are batched and after any seek, with no state to save. Everything is
vectorised over numpy uint64 arrays (wrapping arithmetic).
"""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["random_u64", "random_unit", "random_int"]

U64 = npt.NDArray[np.uint64]
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: U64) -> U64:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _key(seed: int, stream: str) -> int:
    state = np.array([(seed * _GOLDEN + zlib.crc32(stream.encode())) & _MASK], np.uint64)
    return int(_mix(state)[0])


def random_u64(seed: int, stream: str, start: int, count: int) -> U64:
    """Return the 64-bit random words of indexes `start .. start+count-1`."""
    index = np.arange(start, start + count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _mix((index + np.uint64(1)) * np.uint64(_GOLDEN) + np.uint64(_key(seed, stream)))


def random_unit(seed: int, stream: str, start: int, count: int) -> npt.NDArray[np.float64]:
    """Return uniform floats in [0, 1) for indexes `start .. start+count-1`."""
    words = random_u64(seed, stream, start, count)
    return (words >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def random_int(seed: int, stream: str, start: int, count: int, low: int, high: int
               ) -> npt.NDArray[np.int64]:
    """Return integers in [low, high] (inclusive) for indexes `start .. start+count-1`."""
    words = random_u64(seed, stream, start, count)
    span = high - low + 1
    if span >= 1 << 64:
        return words.view(np.int64)
    with np.errstate(over="ignore"):
        return (words % np.uint64(span)).view(np.int64) + np.int64(low)
