"""Where each scan sits in the material, its voxel grid, and its ground-truth labels."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np

from ooc.synth._hash import counter, stream_key, uniform
from ooc.synth.material import (
    SOLID,
    Box,
    cells_around,
    fine_labels,
    fine_points,
    processes,
    spheres,
)
from ooc.synth.spec import PHASE_MAPS, PORE_FINE, SCALES, UNITS, SampleSpec

Region = tuple[slice, slice, slice]

TILE_VOXELS = 1 << 22
"""Largest block rendered at once; bigger regions are rendered tile by tile (bounds memory)."""

_DEPTH = {"MicroCT": 1, "FIB-SEM": 2, "TEM": 3, "fine": 3}
_CANDIDATES = 64
_PROBE = 9  # probe points per axis when scoring a candidate field of view


@functools.lru_cache(maxsize=32)
def _origins(spec: SampleSpec) -> tuple[tuple[float, float, float], ...]:
    """Field-of-view origins (z, y, x) in nm of MicroCT, FIB-SEM and TEM.

    MicroCT starts at 0. FIB-SEM is placed inside a micro-porous region of the MicroCT field
    (candidates: centres of micro-porous spheres nearest the MicroCT centre), TEM inside
    nano-porous solid of the FIB-SEM field (candidates: hashed points). Each candidate is scored
    by the fraction of a probe grid over its box that lies in the wanted phase; the first best
    wins, so a field too large to fit still gets the most suitable place.
    """
    ext = [np.multiply(s.shape, s.voxel_nm) for s in spec.scales]
    ct_lo, ct_hi = np.zeros(3), ext[0]
    _, micro, _, _ = processes(spec.material, spec.seed)
    _, centres, _ = spheres(micro, cells_around(micro, ct_lo, ct_hi))
    inside = np.all((centres >= ct_lo) & (centres <= ct_hi), axis=1)
    centres = centres[inside]
    mid = ct_hi / 2
    order = np.lexsort((*centres.T[::-1], np.sum((centres - mid) ** 2, axis=1)))
    cand = np.vstack([centres[order[:_CANDIDATES]], mid])
    fib = _best(spec, cand, ext[1], ct_lo, ct_hi, depth=1, phases=(SOLID,))

    fib_hi = fib + ext[1]
    n = np.arange(_CANDIDATES * 3).reshape(-1, 3)
    u = uniform(counter(stream_key(spec.seed, 2), n))
    cand = np.vstack([fib + ext[1] / 2, fib + ext[2] / 2 + u * np.maximum(ext[1] - ext[2], 0)])
    tem = _best(spec, cand, ext[2], fib, fib_hi, depth=2, phases=(SOLID,))
    return tuple(tuple(float(v) for v in o) for o in (np.zeros(3), fib, tem))  # type: ignore[return-value]


def _best(
    spec: SampleSpec,
    centres: np.ndarray,
    size: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    depth: int,
    phases: tuple[int, ...],
) -> np.ndarray:
    """Origin (nm, whole) of the first best box of ``size`` centred near one of ``centres``."""
    # Keep the box inside [lo, hi] where it fits, else centre it there.
    half = size / 2
    c = np.where(size <= hi - lo, np.clip(centres, lo + half, hi - half), (lo + hi) / 2)
    origins = np.round(c - half)
    t = np.linspace(0.0, 1.0, _PROBE)
    probe = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3) * size
    pts = (origins[:, None, :] + probe[None]).reshape(-1, 3)
    lab = fine_points(spec.material, spec.seed, pts, depth).reshape(len(origins), -1)
    score = np.isin(lab, phases).mean(axis=1)
    return origins[int(np.argmax(score))]


def field_of_view(spec: SampleSpec, scale: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Origin (corner of the first voxel) and extent (z, y, x) of a scan, in the scan's unit."""
    sc = spec.scale(scale)
    f = UNITS[sc.unit]
    origin = tuple(v / f for v in _origins(spec)[SCALES.index(scale)])
    return origin, tuple(float(n * v) for n, v in zip(sc.shape, sc.voxel_size, strict=True))


def grid_shape(
    spec: SampleSpec, scale: str, voxel_size: tuple[float, float, float] | None = None
) -> tuple[int, int, int]:
    """Shape of the grid that covers ``scale``'s field of view at ``voxel_size`` (its unit)."""
    sc = spec.scale(scale)
    if voxel_size is None:
        return sc.shape
    return tuple(
        max(1, round(n * v / w))
        for n, v, w in zip(sc.shape, sc.voxel_size, voxel_size, strict=True)
    )  # type: ignore[return-value]


def normalize_region(
    region: Region | None, shape: tuple[int, int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(start, stop) of ``region`` (3 slices, step 1, non-negative; None means the whole grid)."""
    if region is None:
        return (0, 0, 0), tuple(shape)
    if len(region) != 3:
        raise ValueError(f"region must be 3 slices (z, y, x), got {region!r}")
    start, stop = [], []
    for s, n in zip(region, shape, strict=True):
        if not isinstance(s, slice) or s.step not in (None, 1):
            raise ValueError(f"region must be slices with step 1, got {region!r}")
        a = 0 if s.start is None else int(s.start)
        b = n if s.stop is None else int(s.stop)
        if a < 0 or b < a:
            raise ValueError(f"region needs 0 <= start <= stop on every axis, got {region!r}")
        start.append(a)
        stop.append(b)
    return tuple(start), tuple(stop)


def tiles(
    start: tuple[int, ...], stop: tuple[int, ...], max_voxels: int | None = None
) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Split [start, stop) into near-cubic tiles of at most ``max_voxels`` (default
    :data:`TILE_VOXELS`), in C order."""
    max_voxels = TILE_VOXELS if max_voxels is None else max_voxels
    n = [b - a for a, b in zip(start, stop, strict=True)]
    if min(n) <= 0:
        return
    parts = [1, 1, 1]
    while math.prod(math.ceil(k / p) for k, p in zip(n, parts, strict=True)) > max_voxels:
        axis = int(np.argmax([math.ceil(k / p) for k, p in zip(n, parts, strict=True)]))
        parts[axis] += 1
    edges = [
        np.linspace(a, b, p + 1).round().astype(int)
        for a, b, p in zip(start, stop, parts, strict=True)
    ]
    for z0, z1 in zip(edges[0][:-1], edges[0][1:], strict=True):
        for y0, y1 in zip(edges[1][:-1], edges[1][1:], strict=True):
            for x0, x1 in zip(edges[2][:-1], edges[2][1:], strict=True):
                yield (int(z0), int(y0), int(x0)), (int(z1), int(y1), int(x1))


def render_labels(
    spec: SampleSpec,
    scale: str,
    region: Region | None = None,
    *,
    voxel_size: tuple[float, float, float] | None = None,
    phases: str | None = None,
) -> np.ndarray:
    """Ground-truth labels of a scan, or of its field of view at another resolution.

    Parameters
    ----------
    spec
        The sample.
    scale
        ``"MicroCT"``, ``"FIB-SEM"`` or ``"TEM"``: whose field of view (origin) and grid.
    region
        Three slices (z, y, x) of voxel indices of that grid (they may reach past it: the
        material is defined everywhere); None: the whole grid.
    voxel_size
        Render at this voxel size (z, y, x), in the scale's unit, instead of the scan's; the
        grid then covers the same field of view (see :func:`grid_shape`).
    phases
        Label set: a scale name (default: ``scale``) or ``"fine"`` for
        :data:`~ooc.synth.spec.FINE_PHASES` (every level resolved).

    Returns
    -------
    numpy.ndarray
        uint8 labels of the region's shape. Equal, bit for bit, however a grid is split into
        regions.
    """
    sc = spec.scale(scale)
    phases = scale if phases is None else phases
    if phases not in PHASE_MAPS:
        raise ValueError(f"phases must be one of {tuple(PHASE_MAPS)}, got {phases!r}")
    if voxel_size is not None and (len(voxel_size) != 3 or min(voxel_size) <= 0):
        raise ValueError(f"voxel_size must be 3 positive numbers, got {voxel_size!r}")
    f = UNITS[sc.unit]
    voxel = sc.voxel_nm if voxel_size is None else tuple(float(v) * f for v in voxel_size)
    start, stop = normalize_region(region, grid_shape(spec, scale, voxel_size))
    origin = _origins(spec)[SCALES.index(scale)]
    lut = np.asarray(PHASE_MAPS[phases], dtype=np.uint8)
    out = np.empty([b - a for a, b in zip(start, stop, strict=True)], dtype=np.uint8)
    for t0, t1 in tiles(start, stop):
        box = Box(origin, voxel, t0, t1)  # type: ignore[arg-type]
        sl = tuple(slice(a - s, b - s) for a, b, s in zip(t0, t1, start, strict=True))
        out[sl] = lut[fine_labels(spec.material, spec.seed, box, _DEPTH[phases])]
    return out


def subresolution_porosity(
    spec: SampleSpec, scale: str, region: Region | None = None, *, samples: int = 8
) -> np.ndarray:
    """Pore fraction of the finer material inside each voxel of a scan (its partial volume).

    Parameters
    ----------
    spec
        The sample.
    scale
        ``"MicroCT"``, ``"FIB-SEM"`` or ``"TEM"``.
    region
        Three slices (z, y, x) of voxel indices of that scan's grid; None: the whole grid.
    samples
        Points per axis inside each voxel: the voxel centres of the grid ``samples`` times finer,
        labelled with every level of the material resolved.

    Returns
    -------
    numpy.ndarray
        float32, the region's shape: the fraction of the ``samples**3`` points that are pore
        (macro-, micro- or nano-pore).  Equal to the block mean of
        ``render_labels(..., voxel_size=voxel / samples, phases="fine")`` by construction.
    """
    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be an int >= 1, got {samples!r}")
    n = int(samples)
    sc = spec.scale(scale)
    start, stop = normalize_region(region, sc.shape)
    shape = [b - a for a, b in zip(start, stop, strict=True)]
    out = np.empty(shape, dtype=np.float32)
    pore = np.zeros(len(PHASE_MAPS["fine"]), dtype=np.float32)
    pore[list(PORE_FINE)] = 1.0
    fine_vox = tuple(v / n for v in sc.voxel_size)
    # tiles of the coarse grid small enough that the fine render stays within TILE_VOXELS
    for t0, t1 in tiles(start, stop, max(1, TILE_VOXELS // n**3)):
        fine_region = tuple(slice(a * n, b * n) for a, b in zip(t0, t1, strict=True))
        lab = render_labels(spec, scale, fine_region, voxel_size=fine_vox, phases="fine")  # type: ignore[arg-type]
        shp = [b - a for a, b in zip(t0, t1, strict=True)]
        frac = pore[lab].reshape(shp[0], n, shp[1], n, shp[2], n).mean(axis=(1, 3, 5))
        sl = tuple(slice(a - s, b - s) for a, b, s in zip(t0, t1, start, strict=True))
        out[sl] = frac
    return out
