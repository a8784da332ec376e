"""Where the classifier is unsure: uncertainty maps and the regions most worth labelling next."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import dask.array as da
import numpy as np

from ooc.units import unit_symbol
from ooc.volume import as_volume

__all__ = [
    "UncertainRegion",
    "entropy",
    "format_regions",
    "margin",
    "uncertain_regions",
    "uncertainty",
]


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


class UncertainRegion(TypedDict):
    """One cell of the region grid (see :func:`uncertain_regions`); JSON-ready.

    ``centre`` and ``size`` are per axis (z, y, x) in the volume's unit; ``voxel_start`` and
    ``voxel_stop`` the cell's voxel index box (stop exclusive).
    """

    rank: int
    centre: list[float]
    size: list[float]
    voxel_start: list[int]
    voxel_stop: list[int]
    mean_uncertainty: float


def _cell_edges(n: int, r: int) -> np.ndarray:
    """Cell bounds along an axis of ``n`` voxels: every ``r``; a last cell under ``r/2`` joins
    the one before it (no slivers at the far face)."""
    edges = [*range(0, n, r), n]
    if len(edges) > 2 and 2 * (n - edges[-2]) < r:
        del edges[-2]
    return np.asarray(edges)


def _cell_sums(block: np.ndarray, r: tuple[int, ...]) -> np.ndarray:
    pad = [(0, (-n) % s) for n, s in zip(block.shape, r, strict=True)]
    b = np.pad(block.astype(np.float64), pad)
    shape = []
    for n, s in zip(b.shape, r, strict=True):
        shape.extend((n // s, s))
    return b.reshape(shape).sum(axis=tuple(range(1, 2 * block.ndim, 2)))


def uncertain_regions(
    uncertainty_map: Any,
    *,
    region: int | Sequence[int] = 32,
    top: int = 10,
    voxel_size: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> list[UncertainRegion]:
    """The ``top`` cells of a regular grid with the highest mean uncertainty: where to label next.

    The grid's cells are ``region`` voxels on a side. At the far face of each axis, a remainder
    of at least ``region / 2`` voxels is a cell of its own and a shorter one joins the cell
    before it, so thin partial cells at the volume's edge never lead the list.

    Parameters
    ----------
    uncertainty_map
        Uncertainty per voxel, (z, y, x) or (y, x): an ``xarray.DataArray`` (geometry from its
        coordinates, see :func:`ooc.volume.as_volume`), Dask or NumPy array.
    region
        Edge of the grid's cells, voxels (one value or one per axis).
    top
        How many regions to return.
    voxel_size, origin
        Voxel size and the first voxel's centre per axis in the volume's unit (default: from
        an ``xarray.DataArray``'s coordinates, else 1 and 0: voxel units).

    Returns
    -------
    list of UncertainRegion
        Most uncertain first (cells without a finite mean left out); cells do not overlap.
        Computed block by block.
    """
    vol = as_volume(uncertainty_map, voxel_size=voxel_size)
    u = vol.data
    ndim = u.ndim
    r = (int(region),) * ndim if np.ndim(region) == 0 else tuple(int(v) for v in region)  # type: ignore[arg-type]
    # chunks that are whole multiples of the cell (the last may be partial) keep cells aligned
    target = tuple(max(s, (c[0] // s) * s) for s, c in zip(r, u.chunks, strict=True))
    u = u.rechunk(target)
    out_chunks = tuple(
        tuple(math.ceil(c / s) for c in cs) for s, cs in zip(r, u.chunks, strict=True)
    )
    sums = da.map_blocks(_cell_sums, u, r, dtype=np.float64, chunks=out_chunks).compute()
    edges = [_cell_edges(n, s) for n, s in zip(u.shape, r, strict=True)]
    for axis, e in enumerate(edges):  # add a short last cell's sum into the one before it
        sums = np.add.reduceat(sums, np.arange(len(e) - 1), axis=axis)
    counts = math.prod(np.ix_(*(np.diff(e) for e in edges)))
    means = sums / counts
    vs = np.asarray(vol.voxel_size, dtype=float)
    org = (
        np.array([vol.coords[d][0] for d in vol.dims], dtype=float)
        if origin is None
        else np.asarray(origin, dtype=float)
    )
    finite = np.flatnonzero(np.isfinite(means))
    order = finite[np.argsort(-means.ravel()[finite], kind="stable")][: max(0, int(top))]
    regions: list[UncertainRegion] = []
    for rank, f in enumerate(order, start=1):
        cell = np.unravel_index(f, means.shape)
        start = np.array([e[i] for e, i in zip(edges, cell, strict=True)])
        stop = np.array([e[i + 1] for e, i in zip(edges, cell, strict=True)])
        regions.append(
            {
                "rank": rank,
                "centre": [float(v) for v in org + vs * (start + stop - 1) / 2.0],
                "size": [float(v) for v in vs * (stop - start)],
                "voxel_start": [int(v) for v in start],
                "voxel_stop": [int(v) for v in stop],
                "mean_uncertainty": float(means[cell]),
            }
        )
    return regions


def format_regions(regions: Sequence[Mapping[str, Any]], unit: str) -> str:
    """A small aligned text table of :func:`uncertain_regions`' regions, one line per region.

    Columns: rank, centre z, y, x and size (z×y×x) in ``unit`` (written as its symbol, e.g.
    "µm"), mean uncertainty (3 decimals). No regions: a one-line note.
    """
    if not regions:
        return "(no regions)"
    symbol = unit_symbol(unit)
    dims = ("z", "y", "x")[-len(regions[0]["centre"]) :]
    header = (
        "rank",
        *(f"{d} ({symbol})" for d in dims),
        f"size {'×'.join(dims)} ({symbol})",
        "mean uncertainty",
    )
    rows = [
        (
            str(r["rank"]),
            *(f"{v:g}" for v in r["centre"]),
            "×".join(f"{v:g}" for v in r["size"]),
            f"{r['mean_uncertainty']:.3f}",
        )
        for r in regions
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )
