"""Shapes with known answers, for tests and benchmarks (generators that double as test data).

Each generator returns a NumPy array for small volumes; :func:`lazy_spheres` builds a large
volume block by block as a dask array (each block draws only the spheres that reach it), so a
volume larger than memory can be made without ever existing whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

__all__ = [
    "ball_mask",
    "cylinder_mask",
    "lazy_spheres",
    "random_balls",
    "random_spheres",
    "slab_mask",
    "spheres_mask",
]


def ball_mask(
    shape: Sequence[int], centre: Sequence[float], radius: float, voxel_size=(1.0, 1.0, 1.0)
) -> np.ndarray:
    """Voxels whose centre lies in a ball (physical centre and radius; voxel i at i*vs)."""
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((gi * v) - c) ** 2 for gi, v, c in zip(g, voxel_size, centre, strict=True))
    return d2 <= radius * radius


def spheres_mask(
    shape: Sequence[int],
    centres: np.ndarray,
    radii: np.ndarray,
    voxel_size=(1.0, 1.0, 1.0),
    origin: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Union of balls, on the box ``origin .. origin + shape`` of a larger voxel grid."""
    out = np.zeros(tuple(shape), dtype=bool)
    vs = np.asarray(voxel_size, dtype=float)
    lo = np.asarray(origin) * vs
    hi = (np.asarray(origin) + np.asarray(shape) - 1) * vs
    centres = np.atleast_2d(np.asarray(centres, dtype=float)).reshape(-1, 3)
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    near = np.all(centres + radii[:, None] >= lo, axis=1) & np.all(
        centres - radii[:, None] <= hi, axis=1
    )
    for c, r in zip(centres[near], radii[near], strict=True):
        a = np.maximum(np.floor((c - r) / vs).astype(int) - np.asarray(origin), 0)
        b = np.minimum(np.ceil((c + r) / vs).astype(int) + 1 - np.asarray(origin), shape)
        if np.any(b <= a):
            continue
        g = np.ogrid[tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))]
        d2 = sum(((gi + o) * v - ci) ** 2 for gi, o, v, ci in zip(g, origin, vs, c, strict=True))
        out[tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))] |= d2 <= r * r
    return out


def random_spheres(
    shape: Sequence[int],
    n: int,
    radius_range: tuple[float, float],
    *,
    seed: int = 0,
    gap: float = 1.5,
    margin: float | None = None,
    max_tries: int = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres and radii (voxels) of ``n`` non-overlapping balls at least ``gap`` apart.

    ``margin`` keeps them that far from the volume's faces (default: none, balls may be cut).
    """
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    tries = 0
    while len(centres) < n and tries < max_tries:
        tries += 1
        r = rng.uniform(*radius_range)
        m = r + (margin if margin is not None else -r)
        c = np.array([rng.uniform(m, s - 1 - m) for s in shape])
        if any(
            np.linalg.norm(c - c2) < r + r2 + gap for c2, r2 in zip(centres, radii, strict=True)
        ):
            continue
        centres.append(c)
        radii.append(r)
    return np.array(centres).reshape(-1, 3), np.array(radii)


def random_balls(
    shape: Sequence[int], n: int, radius_range: tuple[float, float], *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Centres and radii (voxels) of ``n`` balls placed uniformly at random (they may overlap)."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 1, (n, 3)) * (np.asarray(shape) - 1)
    return c, rng.uniform(*radius_range, n)


def slab_mask(shape: Sequence[int], normal: Sequence[float], offset: float, thickness: float):
    """Voxels with ``|n . (x - centre) - offset| <= thickness / 2`` (n normalised)."""
    n = np.asarray(normal, dtype=float)
    n /= np.linalg.norm(n)
    g = np.ogrid[tuple(slice(0, s) for s in shape)]
    s = sum((gi - (sh - 1) / 2) * ni for gi, sh, ni in zip(g, shape, n, strict=True))
    return np.abs(s - offset) <= thickness / 2


def cylinder_mask(
    shape: Sequence[int], axis: int, centre: Sequence[float], radius: float
) -> np.ndarray:
    """Voxels within ``radius`` of a line along ``axis`` through ``centre`` (2 coordinates)."""
    others = [a for a in range(3) if a != axis]
    g = np.ogrid[tuple(slice(0, s) for s in shape)]
    d2 = (g[others[0]] - centre[0]) ** 2 + (g[others[1]] - centre[1]) ** 2
    return np.broadcast_to(d2 <= radius * radius, tuple(shape)).copy()


def _sphere_block(centres, radii, voxel_size, values, block_info=None):
    loc = block_info[None]
    origin = [r[0] for r in loc["array-location"]]
    shape = loc["chunk-shape"]
    m = spheres_mask(shape, centres, radii, voxel_size, origin)
    out = np.full(shape, values[0], dtype=np.uint8)
    out[m] = values[1]
    return out


def lazy_spheres(
    shape: Sequence[int],
    chunks: Sequence[int],
    centres: np.ndarray,
    radii: np.ndarray,
    *,
    voxel_size=(1.0, 1.0, 1.0),
    values: tuple[int, int] = (0, 1),
) -> da.Array:
    """A uint8 dask volume of balls (``values[1]``) in a matrix (``values[0]``), made per block."""
    return da.map_blocks(
        _sphere_block,
        centres,
        radii,
        tuple(voxel_size),
        values,
        dtype=np.uint8,
        chunks=da.core.normalize_chunks(tuple(chunks), tuple(shape)),
    )
