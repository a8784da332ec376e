"""Two-point correlation function and chord-length distribution of each phase.

Two-point correlation
---------------------
``S2(l)``: the probability that two voxels a lag ``l`` apart are both in the phase, over all
pairs inside the volume (no periodic wrap). Each block is cross-correlated by FFT with itself
plus a halo of ``max_lag`` (numerator: indicator pairs; denominator: pairs inside the volume,
the same correlation of the "inside" indicator), and the sums over blocks are divided. Every
pair ``(p, p + l)`` with ``p`` in a block's core is counted exactly once, so the result equals
the whole-volume correlation for every lag up to ``max_lag`` and does not depend on the
chunking. Reported along each axis and radially averaged (lags binned by length, width the
smallest voxel size).

Chord lengths
-------------
Along each axis, a chord is a maximal run of voxels of one phase on a line of voxels. The
volume is rechunked so that the axis is whole in each chunk (the other axes are cut so a
chunk keeps about the input's chunk size): a chord is then never cut by a chunk. Chords that
touch the volume's faces are cut by the field of view and are left out by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from ooc.measure._util import (
    Phases,
    codes_block,
    core_bounds,
    depth_voxels,
    map_blocks_reduce,
    overlap,
    resolve_phases,
    with_geometry,
)

__all__ = ["chord_length_distribution", "two_point_correlation"]

_OUTSIDE = -(2**62)


def correlation_kernel(
    core: np.ndarray, ext: np.ndarray, lo: Sequence[int], max_lag: Sequence[int]
) -> np.ndarray:
    """``C[l] = sum_p core[p] * ext[p + lo + l]`` for ``-L <= l <= L`` along each axis (FFT).

    Parameters
    ----------
    core : numpy.ndarray of float, shape (cz, cy, cx)
        Values on the block's core.
    ext : numpy.ndarray of float, shape (ez, ey, ex)
        Values on the block with its halo; the core starts at ``lo`` in it and the halo
        is at least ``L`` on each side (pad with zeros beyond the volume).
    lo : (int, int, int)
    max_lag : (int, int, int)
        ``L`` along each axis.

    Returns
    -------
    numpy.ndarray of float64, shape (2L+1, ...)
        Index ``L + l`` holds lag ``l``.
    """
    L = np.asarray(max_lag, dtype=int)
    # window of ext that the core can reach: core start - L .. core end + L
    win = tuple(
        slice(int(lo[a]) - int(L[a]), int(lo[a]) + core.shape[a] + int(L[a])) for a in range(3)
    )
    b = ext[win]
    shape = tuple(int(s) for s in b.shape)
    fa = np.fft.rfftn(core, s=shape, axes=(0, 1, 2))
    fb = np.fft.rfftn(b, s=shape, axes=(0, 1, 2))
    c = np.fft.irfftn(np.conj(fa) * fb, s=shape, axes=(0, 1, 2))
    # circular index s = l + L (no wrap: core index + s < shape)
    return c[tuple(slice(0, 2 * int(n) + 1) for n in L)]


def _corr_block(ext, index, numblocks, depth, values):
    e = np.asarray(ext)
    bounds = core_bounds(e.shape, index, numblocks, depth, _OUTSIDE)
    inside = (e != _OUTSIDE).astype(np.float64)
    codes = codes_block(e, values)
    lo = [b[0] for b in bounds]
    sl = tuple(slice(b[0], b[1]) for b in bounds)
    den = np.rint(correlation_kernel(inside[sl], inside, lo, depth))
    nums = []
    for i in range(len(values)):
        ind = (codes == i).astype(np.float64) * inside
        nums.append(np.rint(correlation_kernel(ind[sl], ind, lo, depth)))
    return np.stack(nums), den


def two_point_correlation(
    labels: da.Array | xr.DataArray,
    *,
    voxel_size: Sequence[float] | float | None = None,
    unit: str | None = None,
    phases: Phases = None,
    max_lag: float | None = None,
) -> xr.Dataset:
    """Two-point correlation function ``S2`` of each phase, in physical lag units.

    Parameters
    ----------
    labels : dask.array.Array of int, shape (nz, ny, nx)
        Phase labels, any chunking.
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x) in ``unit``.
    unit : str, keyword-only
        Length unit.
    phases : dict {name: value} or list of values, optional
        Phases; default every value present.
    max_lag : float, optional
        Largest lag (physical); default a quarter of the smallest extent of the volume, at
        most 32 voxels of the smallest voxel size.

    Returns
    -------
    xarray.Dataset
        * ``s2 (phase, lag)``: radial average, ``lag`` in ``unit`` (bin centres, width the
          smallest voxel size; ``s2`` at lag 0 is the volume fraction);
        * ``s2_axis (phase, axis, step)``: along ``z, y, x``, with the 2D coordinate
          ``lag_axis (axis, step)`` in ``unit`` (NaN beyond an axis' reach);
        * ``fraction (phase)``: volume fraction (the value at lag 0).
    """
    labels, vs, unit = with_geometry(labels, voxel_size, unit)
    names, values = resolve_phases(labels, phases)
    if max_lag is None:
        ext_min = min(n * v for n, v in zip(labels.shape, vs, strict=True))
        max_lag = min(ext_min / 4.0, 32 * min(vs))
    L = tuple(
        min(n - 1, d) for n, d in zip(labels.shape, depth_voxels(float(max_lag), vs), strict=True)
    )
    x = labels.astype(np.int64)
    ext = overlap(x, L, _OUTSIDE)
    parts = map_blocks_reduce(_corr_block, ext, ext.numblocks, L, values)
    num = np.sum([p[0] for p in parts], axis=0)
    den = np.sum([p[1] for p in parts], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2full = np.where(den > 0, num / den, np.nan)  # (P, 2L+1, ...)
    # along each axis
    nstep = max(L) + 1
    s2ax = np.full((len(values), 3, nstep), np.nan)
    lagax = np.full((3, nstep), np.nan)
    c = tuple(int(v) for v in L)
    for a in range(3):
        idx = [c[0], c[1], c[2]]
        for k in range(L[a] + 1):
            idx[a] = c[a] + k
            s2ax[:, a, k] = s2full[(slice(None), *idx)]
            lagax[a, k] = k * vs[a]
    # radial average
    g = np.meshgrid(*[(np.arange(2 * L[a] + 1) - L[a]) * vs[a] for a in range(3)], indexing="ij")
    r = np.sqrt(sum(gi**2 for gi in g))
    w = min(vs)
    rmax = float(max_lag)
    nb = int(np.floor(rmax / w + 0.5)) + 1
    bins = np.clip(np.floor(r / w + 0.5).astype(int), 0, None)
    ok = (bins < nb) & (r <= rmax + 1e-9)
    s2r = np.zeros((len(values), nb))
    for i in range(len(values)):
        # average over lags of the same length, each lag weighted by its pair count
        numr = np.bincount(bins[ok], weights=num[i][ok], minlength=nb)
        denr = np.bincount(bins[ok], weights=den[ok], minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            s2r[i] = np.where(denr > 0, numr / denr, np.nan)
    frac = s2full[(slice(None), *c)]
    return xr.Dataset(
        {
            "s2": (("phase", "lag"), s2r, {"units": "1"}),
            "s2_axis": (("phase", "axis", "step"), s2ax, {"units": "1"}),
            "fraction": (("phase",), frac, {"units": "1"}),
        },
        coords={
            "phase": names,
            "lag": ("lag", np.arange(nb) * w, {"units": unit}),
            "axis": ["z", "y", "x"],
            "step": np.arange(nstep),
            "lag_axis": (("axis", "step"), lagax, {"units": unit}),
        },
        attrs={
            "unit": unit,
            "voxel_size": list(vs),
            "method": "FFT cross-correlation of each block with its halo of max_lag; exact "
            "pair counts over the whole volume (non-periodic)",
            "max_lag": float(max_lag),
        },
    )


def chord_kernel(codes: np.ndarray, axis: int, ncodes: int, exclude_border: bool) -> np.ndarray:
    """Histogram of chord lengths (voxels) per code along ``axis``.

    Parameters
    ----------
    codes : numpy.ndarray of int, shape (nz, ny, nx)
        Phase codes ``0..ncodes-1``; ``axis`` must be whole.
    axis : int
    ncodes : int
    exclude_border : bool
        Leave out chords that touch either end of the line.

    Returns
    -------
    numpy.ndarray of int64, shape (ncodes, n + 1)
        ``H[c, k]``: chords of code ``c`` that are ``k`` voxels long.
    """
    a = np.moveaxis(np.asarray(codes), axis, -1)
    n = a.shape[-1]
    lines = a.reshape(-1, n).astype(np.int64)
    m = lines.shape[0]
    padded = np.full((m, n + 2), -1, dtype=np.int64)
    padded[:, 1:-1] = lines
    change = padded[:, 1:] != padded[:, :-1]  # (m, n + 1): boundary before position j
    pos = np.flatnonzero(change)
    row = pos // (n + 1)
    col = pos % (n + 1)
    same = row[1:] == row[:-1]
    start = col[:-1][same]
    stop = col[1:][same]
    r = row[:-1][same]
    length = stop - start
    code = lines[r, start]
    if exclude_border:
        keep = (start > 0) & (stop < n)
        length, code = length[keep], code[keep]
    h = np.zeros((ncodes, n + 1), dtype=np.int64)
    np.add.at(h, (code, length), 1)
    return h


def _chord_block(block, index, axis, values, exclude_border):
    codes = codes_block(np.asarray(block), values)
    return chord_kernel(codes, axis, len(values) + 1, exclude_border)


def chord_length_distribution(
    labels: da.Array | xr.DataArray,
    *,
    voxel_size: Sequence[float] | float | None = None,
    unit: str | None = None,
    phases: Phases = None,
    exclude_border: bool = True,
) -> xr.Dataset:
    """Chord-length distribution of each phase along each axis.

    Parameters
    ----------
    labels : dask.array.Array of int, shape (nz, ny, nx)
        Phase labels, any chunking.
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x) in ``unit``.
    unit : str, keyword-only
        Length unit.
    phases : dict {name: value} or list of values, optional
        Phases; default every value present.
    exclude_border : bool
        Leave out chords cut by the volume's faces (default).

    Returns
    -------
    xarray.Dataset
        * ``count (phase, axis, n)``: number of chords ``n`` voxels long;
        * ``probability (phase, axis, n)``: the same normalised to 1 per phase and axis
          (number-weighted distribution);
        * ``mean_chord (phase, axis)``: mean chord length in ``unit``;
        * coordinate ``chord_length (axis, n)`` in ``unit``.
    """
    labels, vs, unit = with_geometry(labels, voxel_size, unit)
    names, values = resolve_phases(labels, phases)
    P = len(values)
    nmax = max(labels.shape)
    counts = np.zeros((P, 3, nmax + 1), dtype=np.int64)
    target = int(np.prod(labels.chunksize))
    for a in range(3):
        others = [k for k in range(3) if k != a]
        side = max(1, int(np.sqrt(max(1, target // labels.shape[a]))))
        ch = [0, 0, 0]
        ch[a] = labels.shape[a]
        for k in others:
            ch[k] = min(labels.shape[k], side)
        x = labels.rechunk(tuple(ch))
        parts = map_blocks_reduce(_chord_block, x, a, values, exclude_border)
        h = np.sum(parts, axis=0)  # (P + 1, n + 1)
        counts[:, a, : labels.shape[a] + 1] = h[:P]
    tot = counts.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(tot > 0, counts / tot, np.nan)
    nn = np.arange(nmax + 1)
    length = np.array([nn * v for v in vs])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (counts * length[None]).sum(axis=2) / tot[..., 0]
    return xr.Dataset(
        {
            "count": (("phase", "axis", "n"), counts),
            "probability": (("phase", "axis", "n"), prob, {"units": "1"}),
            "mean_chord": (("phase", "axis"), mean, {"units": unit}),
        },
        coords={
            "phase": names,
            "axis": ["z", "y", "x"],
            "n": nn,
            "chord_length": (("axis", "n"), length, {"units": unit}),
        },
        attrs={"unit": unit, "voxel_size": list(vs), "exclude_border": int(exclude_border)},
    )
