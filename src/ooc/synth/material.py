"""The material as a pure function of position: fine phase labels at voxel centres or points.

Each :class:`~ooc.synth.spec.SphereProcess` puts a Poisson number of spheres in every cubic cell
of space; a cell's spheres are a hash of (seed, process, cell index), so any region needs only
the cells that overlap it plus a margin of ``r_max``. A voxel belongs to a union if its centre
lies in one of the spheres, tested with one float expression shared by all code paths, so the
result does not depend on the block, tile or path that computes it.

A :class:`VariedMaterial` adds a smooth field of the micro-pore fraction: its micro-pore spheres
are drawn at the field's highest fraction and each is kept with a probability set by the field at
its centre (independent thinning of a Poisson process), also a pure function of position.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from ooc.synth._hash import GAMMA, hash_coords, mix, stream_key, uniform
from ooc.synth.spec import Material, SphereProcess

_PAIR_BATCH = 1 << 21  # (sphere, voxel) pairs per vectorised batch
_POINT_BATCH = 1 << 15

# Fine labels (see spec.FINE_PHASES). Before level 3 is evaluated, the whole micro-porous
# region is marked SOLID, which every scale's phase map sends to the right label.
MACRO, GRAIN, MICRO, NANO, SOLID = range(5)


@dataclass(frozen=True)
class FractionField:
    """A smooth random field of a sphere process's local volume fraction, between two bounds.

    The field is value noise: uniform values on a cubic lattice of spacing ``length`` (nm),
    hashed from the seed, interpolated with smoothstep weights (C1, arithmetic only, so it is
    the same bits on every path).  Its value ``v`` in [0, 1] sets the local intensity of the
    process to ``low_intensity + v (high_intensity - low_intensity)``: the local fraction is
    ``low`` where ``v = 0`` and ``high`` where ``v = 1`` (most points lie between, near the
    middle), provided ``length`` is large against the spheres' radii.

    Parameters
    ----------
    low, high
        Bounds of the local volume fraction, ``0 <= low <= high < 1``.
    length
        Lattice spacing of the field, nm (its correlation length).
    """

    low: float
    high: float
    length: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high < 1.0:
            raise ValueError(
                f"FractionField needs 0 <= low <= high < 1, got low={self.low}, high={self.high}"
            )
        if not self.length > 0:
            raise ValueError(f"FractionField.length must be > 0 nm, got {self.length}")

    def level(self, seed: int, points: np.ndarray) -> np.ndarray:
        """The field's value ``v`` in [0, 1] at ``points`` (n, 3) nm, float64 (n,)."""
        key = stream_key(seed, 4, 0)
        t = np.asarray(points, dtype=np.float64) / self.length
        k = np.floor(t).astype(np.int64)
        f = t - k
        w = f * f * (3.0 - 2.0 * f)
        out = np.zeros(len(t))
        for dz in (0, 1):
            wz = w[:, 0] if dz else 1.0 - w[:, 0]
            for dy in (0, 1):
                wy = w[:, 1] if dy else 1.0 - w[:, 1]
                for dx in (0, 1):
                    wx = w[:, 2] if dx else 1.0 - w[:, 2]
                    u = uniform(hash_coords(key, k[:, 0] + dz, k[:, 1] + dy, k[:, 2] + dx))
                    out += wz * wy * wx * u
        return out

    def keep(self, seed: int, points: np.ndarray) -> np.ndarray:
        """Probability of keeping a sphere centred at ``points`` (n, 3) nm when the process is
        drawn at ``high``: the local intensity over the highest, float64 (n,)."""
        if self.high == 0.0:
            return np.ones(len(points))
        t_low = math.log1p(-self.low) / math.log1p(-self.high)
        return t_low + (1.0 - t_low) * self.level(seed, points)

    def fraction(self, seed: int, points: np.ndarray) -> np.ndarray:
        """The expected local volume fraction at ``points`` (n, 3) nm, float64 (n,)."""
        return -np.expm1(self.keep(seed, points) * math.log1p(-self.high))


@dataclass(frozen=True)
class VariedMaterial(Material):
    """A :class:`~ooc.synth.spec.Material` whose micro-pore fraction varies smoothly in space.

    ``micropore_field`` replaces ``micropores.fraction`` (the radii stay): the micro-porous
    regions' sub-resolution porosity then varies across the sample between the field's bounds,
    the same at every voxel size.  ``None`` is the plain material, sphere for sphere.
    """

    micropore_field: FractionField | None = None


@dataclass(frozen=True, eq=False)
class CellProcess:
    """A :class:`~ooc.synth.spec.SphereProcess` bound to its random stream, in cells.

    With ``field``, each sphere is kept with the probability ``field.keep`` at its centre (a
    uniform of the stream ``thin_key``); the process is then drawn at ``field.high``.
    """

    key: int
    cell: float
    r_min: float
    r_max: float
    cdf: np.ndarray  # Poisson CDF of the count per cell, truncated where 1 - F < 1e-12
    field: FractionField | None = None
    seed: int = 0
    thin_key: int = 0


@functools.lru_cache(maxsize=64)
def _process(proc: SphereProcess, key: int) -> CellProcess:
    m = proc.mean_per_cell
    cdf, term, k = [], math.exp(-m), 0
    total = term
    while True:
        cdf.append(total)
        if 1.0 - total < 1e-12 or m == 0.0:
            break
        k += 1
        term *= m / k
        total += term
    return CellProcess(key, proc.cell, proc.r_min, proc.r_max, np.asarray(cdf))


@functools.lru_cache(maxsize=64)
def processes(
    material: Material, seed: int
) -> tuple[CellProcess, CellProcess, CellProcess, CellProcess]:
    """The four processes of ``material`` (grains, micro-porous, micro-pores, nano-pores)."""
    field = getattr(material, "micropore_field", None)
    if field is None:
        micropores = _process(material.micropores, stream_key(seed, 1, 2))
    else:
        drawn = dataclasses.replace(material.micropores, fraction=field.high)
        micropores = dataclasses.replace(
            _process(drawn, stream_key(seed, 1, 2)),
            field=field,
            seed=seed,
            thin_key=stream_key(seed, 4, 1),
        )
    return (
        _process(material.grains, stream_key(seed, 1, 0)),
        _process(material.microporous, stream_key(seed, 1, 1)),
        micropores,
        _process(material.nanopores, stream_key(seed, 1, 3)),
    )


def spheres(p: CellProcess, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spheres of ``cells`` (n, 3) int64: (owner cell row (k,), centres (k, 3) nm, radii (k,) nm)."""
    h = hash_coords(p.key, cells[:, 0], cells[:, 1], cells[:, 2])
    counts = np.searchsorted(p.cdf, uniform(h), side="right")
    owner = np.repeat(np.arange(len(cells)), counts)
    j = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    base = h[owner]
    u = np.empty((len(owner), 4))
    for f in range(4):
        g = (j * 4 + f + 1).astype(np.uint64) * np.uint64(GAMMA)
        g += base
        u[:, f] = uniform(mix(g))
    centres = (cells[owner] + u[:, :3]) * p.cell
    radii = p.r_min + u[:, 3] * (p.r_max - p.r_min)
    if p.field is not None:
        c = cells[owner]
        drawn = uniform(hash_coords(p.thin_key, c[:, 0], c[:, 1], c[:, 2], j))
        kept = drawn < p.field.keep(p.seed, centres)
        owner, centres, radii = owner[kept], centres[kept], radii[kept]
    return owner, centres, radii


@dataclass(frozen=True)
class Box:
    """Voxel centres ``origin + (i + 0.5) * voxel`` for ``start <= i < stop`` (z, y, x), nm."""

    origin: tuple[float, float, float]
    voxel: tuple[float, float, float]
    start: tuple[int, int, int]
    stop: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        (z0, y0, x0), (z1, y1, x1) = self.start, self.stop
        return (z1 - z0, y1 - y0, x1 - x0)

    def coords(self, axis: int) -> np.ndarray:
        i = np.arange(self.start[axis], self.stop[axis], dtype=np.float64)
        return self.origin[axis] + (i + 0.5) * self.voxel[axis]

    def sub(self, sl: tuple[slice, ...]) -> Box:
        (z, y, x), (sz, sy, sx) = self.start, sl
        start = (z + sz.start, y + sy.start, x + sx.start)
        stop = (z + sz.stop, y + sy.stop, x + sx.stop)
        return Box(self.origin, self.voxel, start, stop)


def _inside(dz: np.ndarray, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    # The one membership test of every path: same operands, same order, same bits.
    return dz * dz + dy * dy + dx * dx <= r * r


def cells_around(p: CellProcess, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """All cells whose spheres can reach the axis-aligned box [lo, hi] (nm), as (n, 3) int64."""
    a = np.floor((lo - p.r_max) / p.cell).astype(np.int64)
    b = np.floor((hi + p.r_max) / p.cell).astype(np.int64)
    grids = np.meshgrid(*(np.arange(a[i], b[i] + 1) for i in range(3)), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def _paint(p: CellProcess, box: Box) -> np.ndarray:
    """Union of ``p``'s spheres at the voxel centres of ``box``: bool array of ``box.shape``."""
    axes = [box.coords(a) for a in range(3)]
    lo = np.array([c[0] for c in axes])
    hi = np.array([c[-1] for c in axes])
    _, centres, radii = spheres(p, cells_around(p, lo, hi))
    origin, voxel = np.asarray(box.origin), np.asarray(box.voxel)
    start, stop = np.asarray(box.start), np.asarray(box.stop)
    # Index range of the centres within r of each sphere (a little wide; _inside decides).
    first = np.ceil((centres - radii[:, None] - origin) / voxel - 0.5 - 1e-6).astype(np.int64)
    last = np.floor((centres + radii[:, None] - origin) / voxel - 0.5 + 1e-6).astype(np.int64)
    first = np.maximum(first, start) - start
    end = np.minimum(last + 1, stop) - start
    keep = np.all(end > first, axis=1)
    centres, radii, first, end = centres[keep], radii[keep], first[keep], end[keep]
    hit = np.zeros(box.shape, dtype=bool)
    mean_diameter = (p.r_min + p.r_max) / min(box.voxel)
    if mean_diameter >= 4.0:
        _paint_loop(hit, axes, centres, radii, first, end)
    else:
        _paint_pairs(hit, axes, centres, radii, first, end)
    return hit


def _paint_loop(
    hit: np.ndarray,
    axes: list[np.ndarray],
    centres: np.ndarray,
    radii: np.ndarray,
    first: np.ndarray,
    end: np.ndarray,
) -> None:
    """One broadcast test per sphere over its bounding box: best for spheres of many voxels."""
    cz, cy, cx = axes
    for c, r, (z0, y0, x0), (z1, y1, x1) in zip(centres, radii, first, end, strict=True):
        dz = (cz[z0:z1] - c[0])[:, None, None]
        dy = (cy[y0:y1] - c[1])[None, :, None]
        dx = (cx[x0:x1] - c[2])[None, None, :]
        hit[z0:z1, y0:y1, x0:x1] |= _inside(dz, dy, dx, r)


def _paint_pairs(
    hit: np.ndarray,
    axes: list[np.ndarray],
    centres: np.ndarray,
    radii: np.ndarray,
    first: np.ndarray,
    end: np.ndarray,
) -> None:
    """All (sphere, voxel-in-bounding-box) pairs at once: best for many spheres of few voxels."""
    ext = end - first
    vol = np.prod(ext, axis=1)
    bounds = np.searchsorted(np.cumsum(vol), np.arange(_PAIR_BATCH, vol.sum(), _PAIR_BATCH))
    for objs in np.split(np.arange(len(vol)), bounds):
        if len(objs) == 0:
            continue
        n = vol[objs]
        k = np.repeat(objs, n)
        off = np.arange(len(k)) - np.repeat(np.cumsum(n) - n, n)
        off, ix = np.divmod(off, ext[k, 2])
        iz, iy = np.divmod(off, ext[k, 1])
        iz += first[k, 0]
        iy += first[k, 1]
        ix += first[k, 2]
        c = centres[k]
        ok = _inside(axes[0][iz] - c[:, 0], axes[1][iy] - c[:, 1], axes[2][ix] - c[:, 2], radii[k])
        hit[iz[ok], iy[ok], ix[ok]] = True


def _hits(p: CellProcess, points: np.ndarray) -> np.ndarray:
    """Union of ``p``'s spheres at ``points`` (n, 3) nm: bool (n,). Cost per point, not per cell."""
    out = np.zeros(len(points), dtype=bool)
    offsets = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij")).reshape(3, 8).T
    for s in range(0, len(points), _POINT_BATCH):
        pts = points[s : s + _POINT_BATCH]
        # cell = 2 r_max, so the spheres that can hold a point sit in 2 cells per axis.
        base = np.floor((pts - p.r_max) / p.cell).astype(np.int64)
        cells = (base[:, None, :] + offsets[None]).reshape(-1, 3)
        owner, centres, radii = spheres(p, cells)
        q = pts[owner // 8]
        ok = _inside(
            q[:, 0] - centres[:, 0], q[:, 1] - centres[:, 1], q[:, 2] - centres[:, 2], radii
        )
        out[s + owner[ok] // 8] = True
    return out


def _bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    sl = []
    for axis in range(3):
        nz = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if len(nz) == 0:
            return None
        sl.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return tuple(sl)


def _union(p: CellProcess, box: Box, active: np.ndarray | None = None) -> np.ndarray:
    """Union of ``p``'s spheres on ``box``, restricted to ``active`` voxels (bool, box shape)."""
    out = np.zeros(box.shape, dtype=bool)
    if active is None:
        active = np.ones(box.shape, dtype=bool)
    sl = _bbox(active)
    if sl is None or p.cdf[0] == 1.0:
        return out
    if max(box.voxel) > p.cell:
        # Spheres smaller than voxels: cheaper to look up each active voxel's cells.
        idx = np.nonzero(active)
        pts = np.stack([box.coords(a)[idx[a]] for a in range(3)], axis=1)
        out[idx] = _hits(p, pts)
        return out
    out[sl] = _paint(p, box.sub(sl))
    out &= active
    return out


def fine_labels(material: Material, seed: int, box: Box, depth: int = 3) -> np.ndarray:
    """Fine phase labels (uint8, ``box.shape``) at the voxel centres of ``box``.

    ``depth`` is the deepest level evaluated (1: grains and micro-porous regions, 2: micro-pores,
    3: nano-pores); regions not refined are labelled SOLID.
    """
    grains, microporous, micropores, nanopores = processes(material, seed)
    grain = _union(grains, box)
    micro = _union(microporous, box, ~grain)
    lab = np.full(box.shape, MACRO, dtype=np.uint8)
    lab[grain] = GRAIN
    lab[micro] = SOLID
    if depth >= 2:
        pore2 = _union(micropores, box, micro)
        lab[pore2] = MICRO
        if depth >= 3:
            lab[_union(nanopores, box, micro & ~pore2)] = NANO
    return lab


def fine_points(material: Material, seed: int, points: np.ndarray, depth: int = 3) -> np.ndarray:
    """Fine phase labels (uint8, (n,)) at ``points`` (n, 3), nm; as :func:`fine_labels`."""
    grains, microporous, micropores, nanopores = processes(material, seed)
    lab = np.full(len(points), MACRO, dtype=np.uint8)
    hit = _hits(grains, points)
    lab[hit] = GRAIN
    idx = np.flatnonzero(~hit)
    idx = idx[_hits(microporous, points[idx])]
    lab[idx] = SOLID
    if depth >= 2:
        hit = _hits(micropores, points[idx])
        lab[idx[hit]] = MICRO
        if depth >= 3:
            idx = idx[~hit]
            lab[idx[_hits(nanopores, points[idx])]] = NANO
    return lab
