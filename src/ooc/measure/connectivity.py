"""Connected components of a phase across the whole volume, and its percolation.

How components cross chunk boundaries
-------------------------------------
Modelled on ``dask_image.ndmeasure.label`` (label each block, offset, merge across faces,
relabel), written here because ``ooc`` needs what it does not give:

* **every chunk boundary as one plane pair**: each boundary between two layers of chunks is
  assembled as the last voxel plane before it and the first after it, over the full extent of
  the other two axes, and every voxel pair of the structuring element (6, 18 or 26) that
  straddles it is checked, so pairs that cross an edge or a corner of the chunk grid are seen
  by the boundaries they cross (tested against ``scipy.ndimage.label`` with one-voxel chunks);
* **canonical labels**: components are numbered in the raster order of their first voxel,
  exactly as ``scipy.ndimage.label`` numbers them on the whole array, so the labelled array
  does not depend on the chunking (tested for equality, not just up to a permutation);
* **per-component summaries without the labelled array**: voxel counts and the faces of the
  volume each component touches come out of the first pass (percolation needs nothing more).

The first pass (``label each block`` and its face planes, boundary matching as Dask tasks,
union-find on the client over the few labels that touch a boundary) is computed when the
function is called; the labelled array itself is returned lazily and relabels each block again
(``scipy.ndimage.label`` is deterministic), so no labelled block is held in memory between the
passes. Memory on the client is one integer per block-local label.

Percolation
-----------
Along an axis, a component is *percolating* when it touches both faces of the volume normal to
that axis, *dead-end* when it touches exactly one of them, and *isolated* when it touches
neither. Fractions are of the phase's volume. ``isolated_fraction`` without an axis counts the
components that touch none of the six faces (closed porosity, for a pore phase).
"""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import xarray as xr

from ooc.measure._util import as_dask, resolve_phases, with_geometry

__all__ = ["ComponentInfo", "label_components", "phase_connectivity", "structure"]


def structure(connectivity: int) -> np.ndarray:
    """Structuring element for 6-, 18- or 26-connectivity.

    Parameters
    ----------
    connectivity : {6, 18, 26}
        Neighbours that share a face (6), a face or an edge (18), or any corner (26).

    Returns
    -------
    numpy.ndarray of bool, shape (3, 3, 3)
    """
    rank = {6: 1, 18: 2, 26: 3}.get(int(connectivity))
    if rank is None:
        raise ValueError(f"connectivity: expected 6, 18 or 26, got {connectivity}")
    return ndi.generate_binary_structure(3, rank)


# --------------------------------------------------------------------------------------
# kernels (numpy in, numpy out)


def _label_block(block: np.ndarray, struct: np.ndarray) -> tuple[np.ndarray, int]:
    lab, n = ndi.label(np.asarray(block, dtype=bool), structure=struct)
    return lab, int(n)


def _first_positions(lab: np.ndarray, n: int) -> np.ndarray:
    """Flat index (in the block) of the first voxel of labels 1..n, raster order.

    ``scipy.ndimage.label`` numbers labels in the raster order of their first voxel, so the
    first voxel of each label is where the running maximum of the labels seen so far grows.
    """
    flat = lab.ravel()
    idx = np.flatnonzero(flat)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    v = flat[idx]
    prev = np.maximum.accumulate(v)
    new = np.empty(v.shape, dtype=bool)
    new[0] = True
    new[1:] = v[1:] > prev[:-1]
    first = idx[new]
    if len(first) != n:  # never for scipy's numbering; fall back to a sort
        _, first_u = np.unique(v, return_index=True)
        first = idx[first_u]
    return first.astype(np.int64)


def _pass1_block(
    block: np.ndarray,
    index: tuple[int, ...],
    struct: np.ndarray,
    start: tuple[int, ...],
    shape: tuple[int, ...],
) -> dict:
    """Label one block; return its count, voxel counts, first voxels and face planes."""
    lab, n = _label_block(block, struct)
    counts = np.bincount(lab.ravel(), minlength=n + 1).astype(np.int64)
    first = _first_positions(lab, n)
    # global raster index of each label's first voxel
    zz, yy, xx = np.unravel_index(first, lab.shape)
    gfirst = np.ravel_multi_index((zz + start[0], yy + start[1], xx + start[2]), shape).astype(
        np.int64
    )
    faces = {}
    for a in range(3):
        faces[(a, 0)] = np.take(lab, 0, axis=a).copy()
        faces[(a, 1)] = np.take(lab, -1, axis=a).copy()
    return {"n": n, "counts": counts, "first": gfirst, "faces": faces, "index": index}


def _block_n(meta: dict) -> int:
    return meta["n"]


def _block_summary(meta: dict) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Counts, first voxels and labels on each of the block's 6 faces (unique)."""
    touch = [np.unique(meta["faces"][(a, s)]) for a in range(3) for s in (0, 1)]
    return meta["counts"], meta["first"], touch


def _boundary_edges(
    offsets: np.ndarray,
    lo_metas: list[dict],
    hi_metas: list[dict],
    axis: int,
    other_chunks: tuple[tuple[int, ...], tuple[int, ...]],
    grid_shape: tuple[int, ...],
    struct: np.ndarray,
) -> np.ndarray:
    """Equivalent global labels across one chunk boundary along ``axis``.

    ``lo_metas``/``hi_metas`` are the blocks of the layer before/after the boundary, in C
    order over the two other axes. The two planes are assembled over the full extent of the
    other axes so pairs that cross an edge or a corner of the chunk grid are found too.
    Returns an array of shape (2, E) of global labels (block offset + local label).
    """
    c1, c2 = other_chunks
    n1, n2 = sum(c1), sum(c2)
    planes = []
    for metas, side in ((lo_metas, 1), (hi_metas, 0)):
        plane = np.zeros((n1, n2), dtype=np.int64)
        k = 0
        o1 = 0
        for s1 in c1:
            o2 = 0
            for s2 in c2:
                m = metas[k]
                f = m["faces"][(axis, side)].astype(np.int64)
                flat_index = np.ravel_multi_index(m["index"], grid_shape)
                f = np.where(f > 0, f + offsets[flat_index], 0)
                plane[o1 : o1 + s1, o2 : o2 + s2] = f
                k += 1
                o2 += s2
            o1 += s1
        planes.append(plane)
    lo, hi = planes
    # structure offsets that step +1 along axis: the 3x3 slab of the structuring element
    slab = np.take(struct, 2, axis=axis)
    pairs = []
    for d1 in (-1, 0, 1):
        for d2 in (-1, 0, 1):
            if not slab[d1 + 1, d2 + 1]:
                continue
            a = lo[max(0, -d1) : n1 - max(0, d1), max(0, -d2) : n2 - max(0, d2)]
            b = hi[max(0, d1) : n1 + min(0, d1), max(0, d2) : n2 + min(0, d2)]
            both = (a > 0) & (b > 0)
            if np.any(both):
                e = np.stack([a[both], b[both]])
                pairs.append(np.unique(e, axis=1))
    if not pairs:
        return np.zeros((2, 0), dtype=np.int64)
    return np.unique(np.concatenate(pairs, axis=1), axis=1)


def _relabel_block(block: np.ndarray, struct: np.ndarray, lut: np.ndarray) -> np.ndarray:
    lab, _ = _label_block(block, struct)
    return lut[lab]


# --------------------------------------------------------------------------------------
# the chunked operator


class ComponentInfo:
    """Summary of the connected components of a mask, from the first labelling pass.

    Attributes
    ----------
    n : int
        Number of components.
    volume_voxels : numpy.ndarray of int64, shape (n,)
        Voxels in component ``i + 1``.
    touches : numpy.ndarray of bool, shape (n, 3, 2)
        Whether component ``i + 1`` touches the low (0) / high (1) face of the volume normal to
        axis ``z, y, x``.
    """

    def __init__(self, n: int, volume_voxels: np.ndarray, touches: np.ndarray) -> None:
        self.n = n
        self.volume_voxels = volume_voxels
        self.touches = touches


def _stitch(mask: da.Array, struct: np.ndarray):
    """First pass: per-block labels, boundary equivalences, union-find, canonical numbering.

    Returns the per-block lookup tables (local label -> final label) and a ComponentInfo.
    """
    chunks = mask.chunks
    grid = mask.numblocks
    offs = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]
    blocks = mask.to_delayed()
    indices = list(itertools.product(*(range(n) for n in grid)))
    p1 = dask.delayed(_pass1_block, pure=True)
    metas = {
        idx: p1(
            blocks[idx],
            idx,
            struct,
            tuple(int(offs[a][idx[a]]) for a in range(3)),
            mask.shape,
        )
        for idx in indices
    }
    ns = [dask.delayed(_block_n, pure=True)(metas[idx]) for idx in indices]
    offsets_d = dask.delayed(_offsets, pure=True)(ns)
    edge_tasks = []
    be = dask.delayed(_boundary_edges, pure=True)
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for i in range(grid[axis] - 1):
            lo_m, hi_m = [], []
            for j1 in range(grid[others[0]]):
                for j2 in range(grid[others[1]]):
                    lo_idx = [0, 0, 0]
                    lo_idx[axis], lo_idx[others[0]], lo_idx[others[1]] = i, j1, j2
                    hi_idx = list(lo_idx)
                    hi_idx[axis] = i + 1
                    lo_m.append(metas[tuple(lo_idx)])
                    hi_m.append(metas[tuple(hi_idx)])
            edge_tasks.append(
                be(
                    offsets_d,
                    lo_m,
                    hi_m,
                    axis,
                    (chunks[others[0]], chunks[others[1]]),
                    grid,
                    struct,
                )
            )
    summaries = [dask.delayed(_block_summary, pure=True)(metas[idx]) for idx in indices]
    offsets, edges, summaries = dask.compute(offsets_d, edge_tasks, summaries)

    total = int(offsets[-1])  # global ids 1..total (offsets has len nblocks + 1)
    e = np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), dtype=np.int64)
    graph = sp.coo_matrix(
        (np.ones(e.shape[1], dtype=np.int8), (e[0], e[1])), shape=(total + 1, total + 1)
    ).tocsr()
    ncomp, comp = csgraph.connected_components(graph, directed=False)
    # comp[0] is background's own component; global ids 1..total map to comp ids
    counts_g = np.zeros(total + 1, dtype=np.int64)
    first_g = np.full(total + 1, np.iinfo(np.int64).max, dtype=np.int64)
    touch_g = np.zeros((total + 1, 3, 2), dtype=bool)
    for k, (counts, first, touch) in enumerate(summaries):
        o = offsets[k]
        n = len(counts) - 1
        counts_g[o + 1 : o + 1 + n] = counts[1:]
        first_g[o + 1 : o + 1 + n] = first
        idx = indices[k]
        for a in range(3):
            for s in (0, 1):
                on_face = (s == 0 and idx[a] == 0) or (s == 1 and idx[a] == grid[a] - 1)
                if on_face:
                    t = touch[2 * a + s]
                    t = t[t > 0]
                    touch_g[o + t, a, s] = True
    gid = np.arange(1, total + 1)
    c = comp[gid]
    # canonical order: raster index of the first voxel of each component
    cfirst = np.full(ncomp, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(cfirst, c, first_g[gid])
    present = cfirst < np.iinfo(np.int64).max
    order = np.argsort(cfirst[present], kind="stable")
    rank = np.zeros(ncomp, dtype=np.int64)
    rank[np.flatnonzero(present)[order]] = np.arange(1, order.size + 1)
    n_final = int(order.size)
    final = np.zeros(total + 1, dtype=np.int64)
    final[gid] = rank[c]
    vol = np.bincount(final[gid], weights=counts_g[gid], minlength=n_final + 1)[1:]
    touches = np.zeros((n_final + 1, 3, 2), dtype=bool)
    for a in range(3):
        for s in (0, 1):
            hit = np.flatnonzero(touch_g[gid, a, s])
            touches[final[gid[hit]], a, s] = True
    dtype = np.int32 if n_final < np.iinfo(np.int32).max else np.int64
    luts = {}
    for k, idx in enumerate(indices):
        o, n = offsets[k], offsets[k + 1] - offsets[k]
        lut = np.zeros(n + 1, dtype=dtype)
        lut[1:] = final[o + 1 : o + 1 + n]
        luts[idx] = lut
    info = ComponentInfo(n_final, vol.astype(np.int64), touches[1:])
    return luts, info, dtype, indices


def _offsets(ns: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(ns, dtype=np.int64))])


def label_components(
    mask: da.Array, *, connectivity: int = 6, return_info: bool = False
) -> tuple[da.Array, int] | tuple[da.Array, int, ComponentInfo]:
    """Connected components of a boolean mask across the whole volume.

    Parameters
    ----------
    mask : dask.array.Array of bool, shape (nz, ny, nx)
        The phase (any chunking). An integer array is taken as ``mask != 0``.
    connectivity : {6, 18, 26}, keyword-only
        Neighbourhood: shared face, face or edge, or any corner.
    return_info : bool, keyword-only
        Also return a :class:`ComponentInfo` (voxel counts, faces touched).

    Returns
    -------
    labels : dask.array.Array of int32 (int64 beyond 2**31 components), shape (nz, ny, nx)
        0 outside the mask; components numbered 1..n in the raster order of their first voxel,
        so the array equals ``scipy.ndimage.label(mask, structure)[0]`` on the whole array,
        whatever the chunking. Lazy: computing it labels each block again.
    n : int
        Number of components.
    info : ComponentInfo
        Only with ``return_info=True``.

    Notes
    -----
    The first pass runs when this is called (see the module docstring for how components are
    joined across chunk boundaries).
    """
    mask = as_dask(mask, "mask")
    if mask.dtype != bool:
        mask = mask != 0
    struct = structure(connectivity)
    luts, info, dtype, indices = _stitch(mask, struct)
    blocks = mask.to_delayed()
    rl = dask.delayed(_relabel_block, pure=True)
    arrs = np.empty(mask.numblocks, dtype=object)
    for idx in indices:
        shape = tuple(mask.chunks[a][idx[a]] for a in range(3))
        arrs[idx] = da.from_delayed(rl(blocks[idx], struct, luts[idx]), shape=shape, dtype=dtype)
    labels = da.block(arrs.tolist())
    if return_info:
        return labels, info.n, info
    return labels, info.n


def phase_connectivity(
    labels: da.Array | xr.DataArray,
    *,
    voxel_size: tuple[float, float, float] | float | None = None,
    unit: str | None = None,
    phases: dict[str, int] | list[int] | None = None,
    connectivity: int = 6,
) -> xr.Dataset:
    """Connected components, percolating, dead-end and isolated fractions of each phase.

    Parameters
    ----------
    labels : dask.array.Array of int, shape (nz, ny, nx)
        Phase labels (any chunking).
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x) in ``unit``.
    unit : str, keyword-only
        Length unit of ``voxel_size`` (e.g. ``"µm"``).
    phases : dict {name: value} or list of values, optional
        Phases to analyse; default every value present.
    connectivity : {6, 18, 26}
        Neighbourhood used to join voxels of a phase.

    Returns
    -------
    xarray.Dataset
        Dimensions ``phase`` and ``axis`` (``z, y, x``). Variables:

        * ``n_components (phase)``: number of connected components;
        * ``largest_component_fraction (phase)``: volume of the largest / phase volume;
        * ``percolating_fraction (phase, axis)``: phase volume in components touching both
          faces normal to the axis, / phase volume (0..1);
        * ``dead_end_fraction (phase, axis)``: ... touching exactly one of the two faces;
        * ``isolated_axis_fraction (phase, axis)``: ... touching neither;
        * ``isolated_fraction (phase)``: ... touching none of the six faces;
        * ``phase_volume (phase)``: in ``unit``³.
    """
    labels, vs, unit = with_geometry(labels, voxel_size, unit)
    names, values = resolve_phases(labels, phases)
    struct = structure(connectivity)
    P = len(values)
    ncomp = np.zeros(P, dtype=np.int64)
    largest = np.zeros(P)
    perc = np.zeros((P, 3))
    dead = np.zeros((P, 3))
    iso_ax = np.zeros((P, 3))
    iso = np.zeros(P)
    pvol = np.zeros(P)
    for i, v in enumerate(values):
        info = _stitch(labels == v, struct)[1]
        vol = info.volume_voxels.astype(float)
        tot = vol.sum()
        ncomp[i] = info.n
        pvol[i] = tot * float(np.prod(vs))
        if tot == 0:
            largest[i] = perc[i] = dead[i] = iso_ax[i] = iso[i] = np.nan
            continue
        largest[i] = vol.max() / tot
        t = info.touches
        nt = t.sum(axis=2)  # faces touched per axis: 0, 1, 2
        for a in range(3):
            perc[i, a] = vol[nt[:, a] == 2].sum() / tot
            dead[i, a] = vol[nt[:, a] == 1].sum() / tot
            iso_ax[i, a] = vol[nt[:, a] == 0].sum() / tot
        iso[i] = vol[~t.any(axis=(1, 2))].sum() / tot
    ds = xr.Dataset(
        {
            "n_components": (("phase",), ncomp),
            "largest_component_fraction": (("phase",), largest),
            "percolating_fraction": (("phase", "axis"), perc),
            "dead_end_fraction": (("phase", "axis"), dead),
            "isolated_axis_fraction": (("phase", "axis"), iso_ax),
            "isolated_fraction": (("phase",), iso),
            "phase_volume": (("phase",), pvol, {"units": f"{unit}^3"}),
        },
        coords={"phase": names, "axis": ["z", "y", "x"], "label_value": ("phase", values)},
        attrs={
            "connectivity": int(connectivity),
            "unit": unit,
            "voxel_size": list(vs),
            "definitions": (
                "percolating: touches both faces normal to the axis; dead-end: exactly one; "
                "isolated: neither (isolated_fraction: none of the six faces); fractions of "
                "the phase volume"
            ),
        },
    )
    return ds
