"""Where the classifier is unsure: uncertainty maps and the regions most worth labelling next."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["entropy", "margin", "uncertain_regions", "uncertainty"]


def entropy(proba: Any) -> Any:
    """Normalised Shannon entropy of class probabilities, in [0, 1] (1: all classes equal).

    ``proba`` has classes on axis 0 (NumPy, CuPy or Dask, ``(K, ...)``); returns float32 of
    the remaining shape: ``-sum_k p_k log p_k / log K``.
    """
    k = proba.shape[0]
    p = proba.astype(np.float32)
    logp = np.log(np.clip(p, np.float32(1e-12), np.float32(1.0)))
    h = -(p * logp).sum(axis=0) / np.float32(math.log(k) if k > 1 else 1.0)
    return np.clip(h, np.float32(0.0), np.float32(1.0)).astype(np.float32)


def margin(proba: Any) -> Any:
    """One minus the margin between the two most likely classes, in [0, 1] (1: a tie).

    ``proba``: classes on axis 0; returns float32 of the remaining shape.
    """
    if proba.shape[0] < 2:
        return (proba[0] * np.float32(0.0)).astype(np.float32)
    if isinstance(proba, da.Array):
        return da.map_blocks(_margin_np, proba, drop_axis=0, dtype=np.float32)
    return _margin_np(proba)


def _margin_np(p: Any) -> Any:
    top2 = np.sort(p, axis=0)[-2:]
    return (np.float32(1.0) - (top2[1] - top2[0])).astype(np.float32)


def uncertainty(proba: Any, method: str = "entropy") -> Any:
    """The uncertainty map of ``method`` (``"entropy"`` or ``"margin"``); see those."""
    if method == "entropy":
        return entropy(proba)
    if method == "margin":
        return margin(proba)
    raise ValueError(f"uncertainty method must be 'entropy' or 'margin', got {method!r}")


def _cell_means(block: np.ndarray, r: tuple[int, ...]) -> np.ndarray:
    pad = [(0, (-n) % s) for n, s in zip(block.shape, r, strict=True)]
    b = np.pad(block.astype(np.float64), pad, constant_values=np.nan)
    shape = []
    for n, s in zip(b.shape, r, strict=True):
        shape.extend((n // s, s))
    b = b.reshape(shape)
    axes = tuple(range(1, 2 * block.ndim, 2))
    return np.nanmean(b, axis=axes)


def uncertain_regions(
    uncertainty_map: Any,
    *,
    region: int | Sequence[int] = 32,
    top: int = 10,
    voxel_size: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """The ``top`` cubes of a regular grid with the highest mean uncertainty.

    Parameters
    ----------
    uncertainty_map
        Uncertainty per voxel (NumPy or Dask), e.g. from :func:`entropy`.
    region
        Edge of the grid's cells, voxels (one value or one per axis).
    top
        How many regions to return.
    voxel_size, origin
        Voxel size and the first voxel's centre per axis, to give centres in physical units
        (default: voxel units).

    Returns
    -------
    list of dict
        Most uncertain first: ``rank``, ``start`` and ``stop`` (voxel index per axis, stop
        exclusive), ``centre`` (physical coordinates of the cell's centre) and
        ``mean_uncertainty``. Cells do not overlap. Computed block by block.
    """
    u = uncertainty_map if isinstance(uncertainty_map, da.Array) else da.asarray(uncertainty_map)
    ndim = u.ndim
    r = (int(region),) * ndim if np.ndim(region) == 0 else tuple(int(v) for v in region)  # type: ignore[arg-type]
    # chunks that are whole multiples of the cell (the last may be partial) keep cells aligned
    target = tuple(max(s, (c[0] // s) * s) for s, c in zip(r, u.chunks, strict=True))
    u = u.rechunk(target)
    out_chunks = tuple(
        tuple(math.ceil(c / s) for c in cs) for s, cs in zip(r, u.chunks, strict=True)
    )
    means = da.map_blocks(_cell_means, u, r, dtype=np.float64, chunks=out_chunks).compute()
    vs = np.ones(ndim) if voxel_size is None else np.asarray(voxel_size, dtype=float)
    org = np.zeros(ndim) if origin is None else np.asarray(origin, dtype=float)
    flat = np.nan_to_num(means, nan=-1.0).ravel()
    order = np.argsort(-flat, kind="stable")[: max(0, int(top))]
    shape = np.array(u.shape)
    regions = []
    for rank, f in enumerate(order):
        cell = np.array(np.unravel_index(f, means.shape))
        start = cell * np.array(r)
        stop = np.minimum(start + np.array(r), shape)
        centre = org + vs * ((start + stop - 1) / 2.0)
        regions.append(
            {
                "rank": rank + 1,
                "start": [int(v) for v in start],
                "stop": [int(v) for v in stop],
                "centre": [float(v) for v in centre],
                "mean_uncertainty": float(flat[f]),
            }
        )
    return regions
