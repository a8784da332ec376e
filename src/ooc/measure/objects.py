"""Particles, grains or pores as objects: separation, per-object table, size statistics.

Separation (distance transform + marker watershed, chunk-aware)
---------------------------------------------------------------
1. The exact distance map of the phase (as :func:`ooc.measure.thickness.distance_transform`:
   the certified halo ``h`` is found first, then each block computes its distances from the
   mask with its own halo plus ``h``).
2. Markers: voxels equal to the maximum of the distance map within ``min_distance``
   (a ball), computed block by block with a halo of ``min_distance``: a local operation, so
   the same for any chunking. Peaks are few, so they travel as coordinates: touching maxima
   (a plateau, or the 8 tied voxels of a ball centred between voxels) are joined by
   26-connectivity on the point set and numbered in raster order (:func:`label_points`), and
   each block's marker image is drawn from its own points.
3. ``skimage.segmentation.watershed`` of the negated distance map from those markers,
   restricted to the phase, on each block plus a halo (default ``2 * R_max + min_distance``,
   with ``R_max`` the largest distance in the phase). The marker labels are global, so the
   blocks' labels are stitched by construction: no relabelling is needed. The flood of a
   voxel starts at its object's marker and meets its neighbours' floods inside the union of
   their basins; with basins no wider than the halo (compact objects whose size is ruled by
   their inscribed radius, as spheres and grains) each block floods exactly as the whole
   array does, ties included (skimage breaks ties by insertion order, and insertion order
   inside a sub-box follows the global raster order). Elongated objects need a larger
   ``halo``. Tests compare the result with the whole-array watershed for several chunkings.
4. A connected component of the phase that holds no marker (a fragment whose maximum is
   beaten within ``min_distance`` by a neighbour across a gap) is its own marker, so every
   voxel of the phase belongs to an object.

Per-object measures (additive over blocks, so exact across chunks)
------------------------------------------------------------------
Voxel count, first and second moments of the voxel centres, bounding box and a Crofton
surface estimate (the same 13-direction intercept count as :mod:`ooc.measure.surface`,
credited to the object on each side of a transition; outside the volume counts as
background) are summed per label over blocks (one-voxel halo). From them: volume, equivalent
diameter ``(6V/π)^(1/3)``, surface area, sphericity ``π^(1/3) (6V)^(2/3) / A``, centroid, the
principal axes of the inertia (covariance) tensor of the voxel boxes as the full axis lengths
``2 sqrt(5 λ)`` of the ellipsoid with the same second moments, and aspect ratios. Objects
touching the volume's border are flagged and left out of statistics by default (their size is
cut).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import xarray as xr
from skimage.segmentation import watershed

from ooc.measure._util import (
    core_bounds,
    core_view,
    depth_voxels,
    direction_set,
    map_blocks_reduce,
    overlap,
    weighted_quantiles,
    with_geometry,
    with_min_chunks,
)
from ooc.measure.connectivity import label_components
from ooc.measure.thickness import certified_halo, edt_kernel

__all__ = ["object_statistics", "object_table", "separate_objects"]


# --------------------------------------------------------------------------------------
# kernels


def _ellipsoid_footprint(radius: float, voxel_size: Sequence[float]) -> np.ndarray:
    r = [int(np.floor(radius / v + 1e-9)) for v in voxel_size]
    g = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    d2 = sum((gi * v) ** 2 for gi, v in zip(g, voxel_size, strict=True))
    return d2 <= radius**2 + 1e-9


def peaks_kernel(dist: np.ndarray, footprint: np.ndarray, min_value: float = 0.0) -> np.ndarray:
    """Voxels where ``dist`` equals its maximum over ``footprint`` and exceeds ``min_value``.

    Parameters
    ----------
    dist : numpy.ndarray of float, shape (nz, ny, nx)
    footprint : numpy.ndarray of bool
    min_value : float

    Returns
    -------
    numpy.ndarray of bool, same shape.
    """
    mx = ndi.maximum_filter(dist, footprint=footprint, mode="constant", cval=-np.inf)
    return (dist == mx) & (dist > min_value)


def watershed_kernel(
    dist: np.ndarray, markers: np.ndarray, mask: np.ndarray, connectivity: int = 1
) -> np.ndarray:
    """Marker watershed of ``-dist`` restricted to ``mask`` (skimage)."""
    return watershed(-dist, markers=markers, mask=mask, connectivity=connectivity).astype(
        markers.dtype, copy=False
    )


def _peak_points(ext, index, numblocks, starts, footprint, min_value, depth, sampling):
    """Global (z, y, x) of the distance-map peaks in a block's core (mask plus halo in)."""
    b = core_bounds(ext.shape, index, numblocks, depth, "none")
    pk = core_view(peaks_kernel(edt_kernel(ext, sampling), footprint, min_value), b)
    pts = np.stack(np.nonzero(pk), axis=1).astype(np.int64)
    return pts + np.array([int(st[i]) for st, i in zip(starts, index, strict=True)])


def label_points(points: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """26-connected components of a sparse set of voxels, numbered in raster order.

    Parameters
    ----------
    points : numpy.ndarray of int, shape (n, 3)
    shape : (int, int, int)
        Volume shape.

    Returns
    -------
    points : (n, 3) int64, sorted in raster order
    labels : (n,) int64, 1..k, components numbered by their first voxel in raster order
        (as ``scipy.ndimage.label`` numbers them)
    k : int
    """
    if len(points) == 0:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    lin = np.ravel_multi_index(tuple(points.T), tuple(shape))
    order = np.argsort(lin, kind="stable")
    lin, pts = lin[order], points[order]
    n = len(lin)
    rows, cols = [], []
    for d in itertools.product((-1, 0, 1), repeat=3):
        if d <= (0, 0, 0):
            continue  # the 13 forward offsets
        q = pts + np.array(d)
        ok = np.all((q >= 0) & (q < np.asarray(shape)), axis=1)
        ql = np.ravel_multi_index(tuple(q[ok].T), tuple(shape))
        pos = np.searchsorted(lin, ql)
        pos = np.minimum(pos, n - 1)
        hit = lin[pos] == ql
        rows.append(np.flatnonzero(ok)[hit])
        cols.append(pos[hit])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    g = sp.coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(n, n))
    k, comp = csgraph.connected_components(g, directed=False)
    # number components by their first point (points are in raster order)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n))
    rank = np.empty(k, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, k + 1)
    return pts, rank[comp], int(k)


def _values_at(block, local):
    b = np.asarray(block)
    return b[tuple(local.T)] if len(local) else np.zeros(0, dtype=b.dtype)


def _marker_block(comps, local, labels, lacking, new, dtype):
    """Markers of one block: the labelled peaks, and whole components that have none."""
    c = np.asarray(comps)
    out = np.zeros(c.shape, dtype=dtype)
    if len(lacking):
        pos = np.clip(np.searchsorted(lacking, c), 0, len(lacking) - 1)
        hit = (c != 0) & (lacking[pos] == c)
        out[hit] = new[pos[hit]]
    if len(local):
        out[tuple(local.T)] = labels
    return out


def _ws_mb(mask_ext, markers_ext, depth, ws_depth, sampling, connectivity, block_info=None):
    """Watershed of a block's core: EDT on the mask plus halo, flood on the exact part."""
    loc = block_info[0]
    b = core_bounds(mask_ext.shape, loc["chunk-location"], loc["num-chunks"], depth, "none")
    dist = edt_kernel(mask_ext, sampling)
    # distances are exact within ws_depth of the core (the rest of the halo only served them)
    crop = tuple(
        slice(max(0, lo - w), min(n, hi + w))
        for (lo, hi), w, n in zip(b, ws_depth, mask_ext.shape, strict=True)
    )
    ws = watershed_kernel(dist[crop], np.asarray(markers_ext)[crop], mask_ext[crop], connectivity)
    inner = tuple((lo - c.start, hi - c.start) for (lo, hi), c in zip(b, crop, strict=True))
    return core_view(ws, inner)


def _object_block(ext, index, numblocks, starts, offsets, area_per, sampling):
    """Per-label sums for the core of one block (labels with a one-voxel halo of 0)."""
    b = core_bounds(ext.shape, index, numblocks, (1, 1, 1), 0)
    core = core_view(ext, b)
    flat = core.ravel()
    ids, inv = np.unique(flat, return_inverse=True)
    keep = ids != 0
    n = len(ids)
    cnt = np.bincount(inv, minlength=n).astype(float)
    start = [int(s[i]) for s, i in zip(starts, index, strict=True)]
    shp = core.shape
    coords = []
    for a in range(3):
        c = (np.arange(shp[a], dtype=float) + start[a]) * sampling[a]
        sh = [1, 1, 1]
        sh[a] = shp[a]
        coords.append(np.broadcast_to(c.reshape(sh), shp).ravel())
    sums = {"n": cnt}
    for a, nm in enumerate("zyx"):
        sums[f"s{nm}"] = np.bincount(inv, weights=coords[a], minlength=n)
    for a, b2, nm in (
        (0, 0, "zz"),
        (1, 1, "yy"),
        (2, 2, "xx"),
        (0, 1, "zy"),
        (0, 2, "zx"),
        (1, 2, "yx"),
    ):
        sums[f"s{nm}"] = np.bincount(inv, weights=coords[a] * coords[b2], minlength=n)
    area = np.zeros(n)
    for k, d in enumerate(offsets):
        for sgn in (1, -1):
            nb = core_view(ext, b, sgn * d).ravel()
            diff = (flat != nb) & (flat != 0)
            area += np.bincount(inv[diff], minlength=n) * area_per[k]
    sums["area"] = area
    objs = ndi.find_objects(inv.reshape(shp) + 1)
    lo = np.zeros((n, 3), dtype=np.int64)
    hi = np.zeros((n, 3), dtype=np.int64)
    for i, sl in enumerate(objs):
        if sl is None:
            continue
        for a in range(3):
            lo[i, a] = sl[a].start + start[a]
            hi[i, a] = sl[a].stop - 1 + start[a]
    df = pd.DataFrame({k: v[keep] for k, v in sums.items()})
    df.insert(0, "label", ids[keep].astype(np.int64))
    for a, nm in enumerate("zyx"):
        df[f"min_{nm}"] = lo[keep, a]
        df[f"max_{nm}"] = hi[keep, a]
    return df


# --------------------------------------------------------------------------------------
# chunked operators


def separate_objects(
    mask: da.Array | xr.DataArray,
    *,
    voxel_size: Sequence[float] | float | None = None,
    min_distance: float | None = None,
    connectivity: int = 6,
    halo: float | None = None,
    min_peak: float = 0.0,
    chunk_factor: float = 2.0,
) -> tuple[da.Array, int]:
    """Split a phase into objects: distance transform + marker watershed, across chunks.

    Parameters
    ----------
    mask : dask.array.Array of bool, shape (nz, ny, nx)
        The phase (particles, grains or pores), any chunking.
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x); distances below are in its unit.
    min_distance : float, optional
        Radius of the ball within which a marker must be the distance map's maximum
        (physical); default 3 voxels of the smallest voxel size. Larger merges more.
    connectivity : {6, 18, 26}
        Neighbourhood of the watershed flood.
    halo : float, optional
        Halo of each block for the watershed (physical); default ``2 * R_max + min_distance``.
    min_peak : float
        Markers need a distance larger than this (physical). A connected component of the
        phase left without a marker becomes one object of its own.
    chunk_factor : float
        For the watershed, chunks smaller than ``chunk_factor`` times the halo (in voxels,
        distance halo included) are merged up to that size (capped by the volume), so the
        halo does not dominate the work. Memory per task grows as ``(chunk + 2 halo)³``:
        objects large compared with the chunks cost memory.

    Returns
    -------
    labels : dask.array.Array of int32, shape (nz, ny, nx)
        0 outside the phase; objects numbered 1..m in the raster order of their marker, then
        m+1..n for the connected components of the phase that hold no marker (small
        fragments whose maximum is beaten within ``min_distance`` by a neighbour's), each
        one object, so every voxel of the phase belongs to an object. Lazy.
    n : int
        Number of objects (markers).
    """
    mask, vs, _ = with_geometry(mask, voxel_size, None, "mask")
    if mask.dtype != bool:
        mask = mask != 0
    conn = {6: 1, 18: 2, 26: 3}.get(int(connectivity))
    if conn is None:
        raise ValueError(f"connectivity: expected 6, 18 or 26, got {connectivity}")
    md = float(min_distance) if min_distance is not None else 3 * min(vs)
    h, rmax = certified_halo(mask, vs)
    hvox = depth_voxels(h, vs)
    fp = _ellipsoid_footprint(md, vs)
    pdepth = tuple(min(s, k // 2 + e) for s, k, e in zip(mask.shape, fp.shape, hvox, strict=True))
    mc = with_min_chunks(mask, pdepth)
    ext = overlap(mc, pdepth, "none")
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in mc.chunks]
    parts = map_blocks_reduce(
        _peak_points, ext, mc.numblocks, starts, fp, float(min_peak), pdepth, vs
    )
    pts, plabels, n = label_points(np.concatenate(parts, axis=0), mask.shape)
    # a component of the phase with no peak (a small fragment near a larger one, whose
    # maximum is beaten inside the footprint) becomes one object of its own: it is its marker
    comps, ncomp = label_components(mc, connectivity=int(connectivity))
    grid = list(itertools.product(*(range(k) for k in mc.numblocks)))
    cblocks = comps.to_delayed()
    local = {}
    for idx in grid:
        lo = np.array([int(st[i]) for st, i in zip(starts, idx, strict=True)])
        hi = lo + np.array([mc.chunks[a][idx[a]] for a in range(3)])
        sel = np.all((pts >= lo) & (pts < hi), axis=1)
        local[idx] = (pts[sel] - lo, plabels[sel])
    va = dask.delayed(_values_at, pure=True)
    got = dask.compute(*[va(cblocks[idx], local[idx][0]) for idx in grid])
    peaked = np.unique(np.concatenate([np.asarray(g, dtype=np.int64) for g in got]))
    lacking = np.setdiff1d(np.arange(1, ncomp + 1, dtype=np.int64), peaked)
    new = np.arange(n + 1, n + 1 + lacking.size, dtype=np.int64)
    n += int(lacking.size)
    mdtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
    mb = dask.delayed(_marker_block, pure=True)
    arrs = np.empty(mc.numblocks, dtype=object)
    for idx in grid:
        shp = tuple(mc.chunks[a][idx[a]] for a in range(3))
        arrs[idx] = da.from_delayed(
            mb(cblocks[idx], local[idx][0], local[idx][1], lacking, new, mdtype),
            shape=shp,
            dtype=mdtype,
        )
    markers = da.block(arrs.tolist())
    hw = float(halo) if halo is not None else 2 * float(rmax) + md
    if not np.isfinite(hw):
        hw = float(max(s * v for s, v in zip(mask.shape, vs, strict=True)))
    ws_depth = tuple(min(s, d + 1) for s, d in zip(mask.shape, depth_voxels(hw, vs), strict=True))
    depth = tuple(min(s, a + b) for s, a, b in zip(mask.shape, ws_depth, hvox, strict=True))
    # the flood of each block covers its core plus 2 x depth: chunks much smaller than the
    # halo would repeat most of the work, so they grow to chunk_factor x the halo
    grow = tuple(
        min(s, math.ceil(chunk_factor * d)) for s, d in zip(mask.shape, depth, strict=True)
    )
    m = with_min_chunks(mask.rechunk(markers.chunks), grow)
    m = with_min_chunks(m, depth)
    markers = markers.rechunk(m.chunks)
    labels = da.map_blocks(
        _ws_mb,
        overlap(m, depth, "none"),
        overlap(markers, depth, "none"),
        depth=depth,
        ws_depth=ws_depth,
        sampling=vs,
        connectivity=conn,
        dtype=markers.dtype,
        chunks=m.chunks,
    )
    return labels, int(n)


def object_table(
    labels: da.Array | xr.DataArray,
    *,
    voxel_size: Sequence[float] | float | None = None,
    unit: str | None = None,
) -> pd.DataFrame:
    """Per-object measures of a labelled volume.

    Parameters
    ----------
    labels : dask.array.Array of int, shape (nz, ny, nx)
        Objects (0 = background), e.g. from :func:`separate_objects` or
        :func:`ooc.measure.connectivity.label_components`; any chunking.
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x) in ``unit``.
    unit : str, keyword-only
        Length unit.

    Returns
    -------
    pandas.DataFrame, one row per object, index ``label``. Columns (lengths in ``unit``):
    ``voxels``; ``volume`` (unit³); ``equivalent_diameter``; ``surface_area`` (unit², Crofton);
    ``sphericity``; ``centroid_z, centroid_y, centroid_x``; ``axis_major,
    axis_intermediate, axis_minor`` (full lengths of the ellipsoid with the same inertia);
    ``aspect_intermediate_major``, ``aspect_minor_major`` (0..1); ``bbox_min_z ... bbox_max_x``
    (voxel indices, inclusive); ``touches_border`` (bool). ``df.attrs`` holds ``unit`` and
    ``voxel_size``.
    """
    labels, vs, unit = with_geometry(labels, voxel_size, unit)
    offsets, _lengths, area_per = direction_set(vs)
    x = labels if np.issubdtype(labels.dtype, np.signedinteger) else labels.astype(np.int64)
    xe = overlap(x, (1, 1, 1), 0)
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in x.chunks]
    parts = map_blocks_reduce(_object_block, xe, x.numblocks, starts, offsets, area_per, vs)
    cols = ["n", "sz", "sy", "sx", "szz", "syy", "sxx", "szy", "szx", "syx", "area"]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["label", *cols])
    agg = dict.fromkeys(cols, "sum")
    agg.update({f"min_{a}": "min" for a in "zyx"})
    agg.update({f"max_{a}": "max" for a in "zyx"})
    g = df.groupby("label").agg(agg).sort_index()
    n = g["n"].to_numpy()
    vvox = float(np.prod(vs))
    out = pd.DataFrame(index=g.index)
    out["voxels"] = n.astype(np.int64)
    out["volume"] = n * vvox
    out["equivalent_diameter"] = (6.0 * out["volume"] / np.pi) ** (1.0 / 3.0)
    out["surface_area"] = g["area"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sphericity"] = (
            np.pi ** (1.0 / 3.0) * (6.0 * out["volume"]) ** (2.0 / 3.0) / out["surface_area"]
        )
    mu = np.stack([g["sz"] / n, g["sy"] / n, g["sx"] / n], axis=1)
    for a, nm in enumerate("zyx"):
        out[f"centroid_{nm}"] = mu[:, a]
    cov = np.empty((len(g), 3, 3))
    names = {
        (0, 0): "szz",
        (1, 1): "syy",
        (2, 2): "sxx",
        (0, 1): "szy",
        (0, 2): "szx",
        (1, 2): "syx",
    }
    for (a, b), nm in names.items():
        c = g[nm].to_numpy() / n - mu[:, a] * mu[:, b]
        cov[:, a, b] = c
        cov[:, b, a] = c
    for a in range(3):
        cov[:, a, a] += vs[a] ** 2 / 12.0  # each voxel is a box, not a point
    lam = np.linalg.eigvalsh(cov)[:, ::-1] if len(g) else np.zeros((0, 3))
    axes = 2.0 * np.sqrt(5.0 * np.clip(lam, 0, None))
    out["axis_major"] = axes[:, 0]
    out["axis_intermediate"] = axes[:, 1]
    out["axis_minor"] = axes[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["aspect_intermediate_major"] = axes[:, 1] / axes[:, 0]
        out["aspect_minor_major"] = axes[:, 2] / axes[:, 0]
    touch = np.zeros(len(g), dtype=bool)
    for a, nm in enumerate("zyx"):
        out[f"bbox_min_{nm}"] = g[f"min_{nm}"].to_numpy().astype(np.int64)
        out[f"bbox_max_{nm}"] = g[f"max_{nm}"].to_numpy().astype(np.int64)
        touch |= (out[f"bbox_min_{nm}"].to_numpy() == 0) | (
            out[f"bbox_max_{nm}"].to_numpy() == labels.shape[a] - 1
        )
    out["touches_border"] = touch
    out.index.name = "label"
    out.attrs["unit"] = unit
    out.attrs["voxel_size"] = list(vs)
    return out


def object_statistics(
    table: pd.DataFrame,
    *,
    columns: Sequence[str] = ("equivalent_diameter", "volume", "surface_area", "sphericity"),
    exclude_border: bool = True,
) -> xr.Dataset:
    """Count, mean, std, min, max and D10/D50/D90 of per-object measures.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`object_table`.
    columns : sequence of str
        Columns to summarise.
    exclude_border : bool
        Leave out objects touching the volume's border (default: their size is cut).

    Returns
    -------
    xarray.Dataset
        Dimensions ``measure`` (the columns) and ``weighting`` (``number``: each object counts
        once; ``volume``: each object weighted by its volume). Variables ``count``, ``mean``,
        ``std``, ``min``, ``max``, ``D10``, ``D50``, ``D90`` (``(measure, weighting)``; quantiles
        are the smallest value whose cumulative weight reaches 10/50/90 %), plus
        ``n_objects``, ``n_border`` (objects left out).
    """
    t = table
    nb = int(t["touches_border"].sum()) if "touches_border" in t else 0
    if exclude_border and "touches_border" in t:
        t = t[~t["touches_border"]]
    stats = {
        k: np.full((len(columns), 2), np.nan)
        for k in ("mean", "std", "min", "max", "D10", "D50", "D90")
    }
    count = np.zeros((len(columns), 2))
    w_vol = t["volume"].to_numpy(dtype=float)
    for i, c in enumerate(columns):
        v = t[c].to_numpy(dtype=float)
        ok = np.isfinite(v)
        for j, w in enumerate((np.ones_like(v), w_vol)):
            vv, ww = v[ok], w[ok]
            count[i, j] = ok.sum()
            if vv.size == 0 or ww.sum() <= 0:
                continue
            m = np.average(vv, weights=ww)
            stats["mean"][i, j] = m
            stats["std"][i, j] = np.sqrt(np.average((vv - m) ** 2, weights=ww))
            stats["min"][i, j] = vv.min()
            stats["max"][i, j] = vv.max()
            q = weighted_quantiles(vv, ww, (0.1, 0.5, 0.9))
            stats["D10"][i, j], stats["D50"][i, j], stats["D90"][i, j] = q
    unit = table.attrs.get("unit", "")
    data = {k: (("measure", "weighting"), v) for k, v in stats.items()}
    data["count"] = (("measure", "weighting"), count)
    data["n_objects"] = ((), len(t))
    data["n_border"] = ((), nb)
    return xr.Dataset(
        data,
        coords={"measure": list(columns), "weighting": ["number", "volume"]},
        attrs={"unit": unit, "exclude_border": int(exclude_border)},
    )
