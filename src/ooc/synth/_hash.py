"""Counter-based random numbers: pure functions of integer keys (splitmix64), vectorised.

Every random quantity in :mod:`ooc.synth` is a hash of (seed, stream, integer coordinates), so a
value never depends on which block, tile or process computes it.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15  # splitmix64 increment (golden ratio)


def mix_int(x: int) -> int:
    """splitmix64 finaliser on a Python int (used for keys, never for arrays)."""
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def stream_key(seed: int, *tags: int) -> int:
    """Key of an independent random stream named by ``seed`` and integer ``tags``."""
    key = mix_int(seed * GAMMA + 1)
    for tag in tags:
        key = mix_int(key ^ mix_int(tag * GAMMA + 7))
    return key


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9
    x ^= x >> 27
    x *= 0x94D049BB133111EB
    x ^= x >> 31
    return x


def hash_coords(key: int, *coords: np.ndarray) -> np.ndarray:
    """Hash of ``key`` and integer coordinate arrays (broadcast together), as uint64."""
    h = np.full(np.broadcast_shapes(*(np.shape(c) for c in coords)), key, dtype=np.uint64)
    for c in coords:
        h ^= np.asarray(c, dtype=np.int64).view(np.uint64)
        mix(h)
    return h


def counter(key: int, n: np.ndarray) -> np.ndarray:
    """Hash of ``key`` and a non-negative counter array (one multiply-add and one mix)."""
    return counter_(key, np.array(n, dtype=np.uint64))


def counter_(key: int, n: np.ndarray) -> np.ndarray:
    """:func:`counter` in place on a uint64 array ``n``, returned."""
    n *= np.uint64(GAMMA)
    n += np.uint64(key)
    return mix(n)


def uniform(h: np.ndarray) -> np.ndarray:
    """Float64 uniforms in [0, 1) from the top 53 bits of uint64 hashes."""
    return (h >> 11).astype(np.float64) * 2.0**-53


def normal8_(h: np.ndarray) -> np.ndarray:
    """Approximately standard normal float32 from uint64 hashes; ``h`` is used as scratch.

    The sum of the eight bytes of each hash (Irwin-Hall, n = 8), shifted and scaled to exactly
    zero mean and unit variance; tails cut at 4.9 sigma. Integer arithmetic only, so the result
    is bit-identical on every CPU, unlike transcendental functions (Box-Muller) whose SIMD
    implementations differ.
    """
    # Sum of the 8 bytes by SWAR: bytes -> 4 x 16-bit lanes -> 2 x 32-bit lanes -> one sum.
    s = h & np.uint64(0x00FF00FF00FF00FF)
    h >>= 8
    h &= np.uint64(0x00FF00FF00FF00FF)
    s += h
    np.right_shift(s, 16, out=h)
    h &= np.uint64(0x0000FFFF0000FFFF)
    s &= np.uint64(0x0000FFFF0000FFFF)
    s += h
    np.right_shift(s, 32, out=h)
    s &= np.uint64(0xFFFFFFFF)
    s += h
    del h
    out = s.astype(np.float32)
    out -= np.float32(8 * 127.5)
    out *= np.float32(1.0 / np.sqrt(8 * (256**2 - 1) / 12))
    return out
