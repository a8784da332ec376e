"""Shared helpers of :mod:`ooc.measure`: input checks, phases, block geometry, reductions.

Nothing here holds state; every helper is a pure function so that the graphs built from
them pickle and run on any Dask scheduler.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

Phases = Mapping[str, int] | Sequence[int] | None


def as_dask(labels: Any, name: str = "labels") -> da.Array:
    """Check a 3D integer (or boolean) array and return it as a dask array.

    Raises
    ------
    TypeError, ValueError
        With a message naming ``name`` and what was expected.
    """
    if not isinstance(labels, da.Array):
        if isinstance(labels, np.ndarray):
            labels = da.from_array(labels, chunks=labels.shape)
        else:
            raise TypeError(f"{name}: expected a dask.array.Array, got {type(labels).__name__}")
    if labels.ndim != 3:
        raise ValueError(f"{name}: expected a 3D array (z, y, x), got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise TypeError(f"{name}: expected integer labels or a boolean mask, got {labels.dtype}")
    if any(math.isnan(c) for cs in labels.chunks for c in cs):
        raise ValueError(f"{name}: chunk sizes must be known (call compute_chunk_sizes())")
    return labels


def with_geometry(
    labels: Any,
    voxel_size: Sequence[float] | float | None,
    unit: str | None,
    name: str = "labels",
) -> tuple[da.Array, tuple[float, float, float], str]:
    """Labels (or a mask) as a checked dask array with their voxel size and unit.

    ``labels`` is the ``xarray.DataArray`` :func:`ooc.open_volume` returns (geometry from its
    attrs and coordinates; ``voxel_size``/``unit`` override them), or a NumPy/Dask array with
    ``voxel_size`` (one value or z, y, x) and ``unit`` given.
    """
    from ooc.volume import Volume, as_volume

    if isinstance(labels, xr.DataArray | Volume):
        vol = as_volume(labels, voxel_size=voxel_size, unit=unit)
        return as_dask(vol.data, name), check_voxel_size(vol.voxel_size), vol.unit
    if voxel_size is None:
        raise ValueError(
            f"{name}: give voxel_size (and unit), or pass the DataArray ooc.open_volume returns"
        )
    return as_dask(labels, name), check_voxel_size(voxel_size), unit or "voxel"


def check_voxel_size(voxel_size: Sequence[float]) -> tuple[float, float, float]:
    """Return ``voxel_size`` as three positive floats (z, y, x) or raise ``ValueError``."""
    try:
        vs = tuple(float(v) for v in voxel_size)
    except TypeError:
        vs = (float(voxel_size),) * 3  # type: ignore[arg-type]
    if len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
        raise ValueError(f"voxel_size: expected three positive numbers (z, y, x), got {voxel_size}")
    return vs  # type: ignore[return-value]


def resolve_phases(labels: da.Array, phases: Phases) -> tuple[list[str], np.ndarray]:
    """Phase names and label values.

    ``phases`` is a mapping ``{name: value}``, a sequence of values (named by their value), or
    ``None`` (every value present in ``labels``; this computes ``unique`` once).
    """
    if phases is None:
        if labels.dtype == bool:
            values = np.array([0, 1])
        else:
            values = np.asarray(da.unique(labels).compute())
        return [str(int(v)) for v in values], values.astype(np.int64)
    if isinstance(phases, Mapping):
        names = [str(k) for k in phases]
        values = np.array([int(v) for v in phases.values()], dtype=np.int64)
    else:
        values = np.array([int(v) for v in phases], dtype=np.int64)
        names = [str(int(v)) for v in values]
    if len(set(values.tolist())) != len(values):
        raise ValueError(f"phases: label values must be distinct, got {list(values)}")
    if len(values) == 0:
        raise ValueError("phases: at least one phase is needed")
    return names, values


def resolve_phase(labels: da.Array, phase: int | None) -> da.Array:
    """A boolean dask mask: ``labels == phase``, or ``labels`` itself when it is boolean."""
    if phase is None:
        if labels.dtype != bool:
            raise ValueError("phase: give the label value of the phase, or pass a boolean mask")
        return labels
    return labels == phase


def codes_block(block: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Map label values to codes ``0..P-1``; other values get ``P``. Returns uint8/uint16."""
    p = len(values)
    out = np.full(block.shape, p, dtype=np.uint8 if p < 250 else np.uint16)
    for i, v in enumerate(values):
        out[block == v] = i
    return out


def block_offsets(chunks: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    """Start index of every chunk along each axis."""
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64) for c in chunks]


def block_grid(
    chunks: tuple[tuple[int, ...], ...],
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``[(block_index, start), ...]`` for every chunk, in C order (the order of to_delayed)."""
    offs = block_offsets(chunks)
    out = []
    for idx in itertools.product(*(range(len(c)) for c in chunks)):
        out.append((idx, tuple(int(offs[a][i]) for a, i in enumerate(idx))))
    return out


def depth_voxels(distance: float, voxel_size: Sequence[float]) -> tuple[int, int, int]:
    """Voxels along each axis needed to see ``distance`` (physical) away."""
    return tuple(math.ceil(distance / v - 1e-9) for v in voxel_size)  # type: ignore[return-value]


def with_min_chunks(x: da.Array, depth: Sequence[int]) -> da.Array:
    """Rechunk so every chunk along an axis is at least ``depth`` long (or the whole axis)."""
    new = []
    changed = False
    for n, cs, d in zip(x.shape, x.chunks, depth, strict=True):
        d = min(int(d), n)
        if d == 0 or min(cs) >= d:
            new.append(cs)
            continue
        changed = True
        new.append(da.overlap.ensure_minimum_chunksize(d, cs))
    return x.rechunk(tuple(new)) if changed else x


def overlap(x: da.Array, depth: Sequence[int], boundary: Any) -> da.Array:
    """``da.overlap.overlap`` with per-axis depth; ``boundary`` "none" or a constant."""
    depth = tuple(min(int(d), n) for d, n in zip(depth, x.shape, strict=True))
    x = with_min_chunks(x, depth)
    if all(d == 0 for d in depth):
        return x
    if boundary == "none":
        bnd: Any = dict.fromkeys(range(3), "none")
    else:
        bnd = dict.fromkeys(range(3), boundary)
    return da.overlap.overlap(x, depth=dict(enumerate(depth)), boundary=bnd)


def core_bounds(
    ext_shape: Sequence[int],
    index: Sequence[int],
    numblocks: Sequence[int],
    depth: Sequence[int],
    boundary: Any,
) -> tuple[tuple[int, int], ...]:
    """``(lo, hi)`` of the core of an overlapped block along each axis.

    With ``boundary="none"`` a block on the volume's edge has no halo on that side.
    """
    out = []
    for a in range(3):
        d = min(int(depth[a]), int(ext_shape[a]))
        lo = 0 if (boundary == "none" and index[a] == 0) else d
        hi = 0 if (boundary == "none" and index[a] == numblocks[a] - 1) else d
        out.append((lo, int(ext_shape[a]) - hi))
    return tuple(out)


def core_view(ext: np.ndarray, bounds: Sequence[tuple[int, int]], d: Sequence[int] = (0, 0, 0)):
    """View of the core of ``ext`` shifted by ``d`` voxels (the halo must be deep enough)."""
    return ext[
        tuple(slice(lo + int(o), hi + int(o)) for (lo, hi), o in zip(bounds, d, strict=True))
    ]


def map_blocks_reduce(func, x: da.Array, *args: Any, **kwargs: Any) -> list[Any]:
    """Apply ``func(block, block_index, *args, **kwargs)`` to every block, compute, return list.

    Results are small per-block summaries; they are computed together so Dask can run and
    free blocks in any order.
    """
    blocks = x.to_delayed().ravel()
    indices = list(itertools.product(*(range(n) for n in x.numblocks)))
    f = dask.delayed(func, pure=True)
    parts = [f(b, idx, *args, **kwargs) for b, idx in zip(blocks, indices, strict=True)]
    return list(dask.compute(*parts))


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of a weighted sample: the smallest value whose cumulative weight reaches ``q``.

    This is the inverted-CDF definition used for D10/D50/D90 (no interpolation). Empty input
    gives NaN.
    """
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if values.size == 0 or weights.sum() <= 0:
        return np.full(len(qs), np.nan)
    order = np.argsort(values, kind="stable")
    v = values[order]
    cw = np.cumsum(weights[order])
    cw /= cw[-1]
    idx = [min(int(np.searchsorted(cw, q - 1e-12, side="left")), len(v) - 1) for q in qs]
    return v[idx]


def direction_set(voxel_size: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 13 line directions of the 26-neighbourhood and their Crofton weights.

    Returns
    -------
    offsets : (13, 3) int
        One of each pair ``±d`` (the first nonzero component positive).
    lengths : (13,) float
        Physical step length ``|d * voxel_size|``.
    area_per_transition : (13,) float
        Surface area (unit²) that one phase transition along a line of direction ``d``
        stands for: ``2 * c_d * v / l_d`` where ``c_d`` is the share of the unit sphere whose
        nearest direction (of the 26) is ``±d`` (Voronoi solid angle, computed numerically on
        a Fibonacci sphere of 200 000 points, so anisotropic voxels are handled),
        ``v`` the voxel volume and ``l_d`` the step length. This is the discrete Cauchy-Crofton
        formula ``S = 2 * E[intersections per unit line length] * V`` (Ohser & Mücklich 2000;
        Lang, Ohser & Hilfer 2001; Legland, Kiêu & Devaux 2007).
    """
    vs = np.asarray(voxel_size, dtype=float)
    offs = []
    for d in itertools.product((-1, 0, 1), repeat=3):
        nz = [c for c in d if c != 0]
        if nz and nz[0] > 0:
            offs.append(d)
    offsets = np.array(offs, dtype=np.int64)
    vecs = offsets * vs
    lengths = np.linalg.norm(vecs, axis=1)
    unit = vecs / lengths[:, None]
    n = 200_000
    i = np.arange(n) + 0.5
    phi = np.arccos(1.0 - 2.0 * i / n)
    theta = np.pi * (1.0 + 5.0**0.5) * i
    pts = np.stack([np.cos(phi), np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta)], axis=1)
    # nearest of ±d: the largest |cos|
    nearest = np.argmax(np.abs(pts @ unit.T), axis=1)
    share = np.bincount(nearest, minlength=len(offsets)) / n  # sums to 1 over the 13 pairs
    v = float(np.prod(vs))
    return offsets, lengths, 2.0 * share * v / lengths


def centres(start: int, stop: int, vs: float) -> float:
    """Physical coordinate of the centre of voxels ``start..stop-1`` (voxel i at ``i * vs``)."""
    return 0.5 * (start + stop - 1) * vs
