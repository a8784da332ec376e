"""Matrix-free 7-point operators on a voxel grid, a geometric multigrid preconditioner, and PCG.

Every linear system in :mod:`ooc.simulate` (conduction/diffusion, each velocity component of
Stokes-Brinkman flow, the pressure Schur-complement approximation) is a symmetric, positive
(semi-)definite *7-point* operator on a regular grid::

    (A u)_i = sum_{faces f of i} g_f (u_i - u_j(f)) + d_i u_i

with a non-negative conductance ``g_f`` on every face and a non-negative extra diagonal ``d_i``
(Dirichlet boundaries, walls, Darcy drag).  Cells whose row is zero (no conductance, no ``d``) are
"inactive": they take no part in the solve and the preconditioner keeps them at zero.

Storage: ``g[a]`` has the grid's shape; ``g[a][..., j, ...]`` (index ``j`` along axis ``a``) is the
face between cells ``j`` and ``j + 1``; the last slot (``j = n - 1``) is the periodic *wrap* face
between the last and the first cell and must be zero unless axis ``a`` is periodic.

The multigrid preconditioner (:class:`Multigrid`) is a cell-centred aggregation multigrid on the
voxel grid: 2x2x2 cells form a coarse cell (1 along axes of length 1, odd lengths leave one cell
alone), restriction sums, prolongation injects (piecewise constant), and the coarse operator is the
Galerkin product ``P^T A P`` - again a 7-point operator, whose face conductances are the sums of
the fine faces between the two aggregates, so zero and high-contrast conductances coarsen exactly
and no connection is invented across an insulating wall.  Piecewise-constant Galerkin coarsening
overestimates a rediscretised Laplacian by the coarsening factor normal to each face (2), so the
Laplacian part is scaled by ``coarse_scale``: ``COARSE_SCALE = 0.45`` for V-cycles (a little
under 1/2; measured best on porous images, about 35 % fewer CG iterations than 1/2) and
``W_COARSE_SCALE = 0.55`` for W-cycles, whose repeated coarse corrections must not over-correct
by a factor 2 or more to stay positive definite.  Damped Jacobi smoothing (``omega = 0.9``, pre and
post, same count) makes the cycle a symmetric positive definite preconditioner for conjugate
gradients and MINRES; ``gamma=2`` below the finest level gives the W-cycle (used for the Stokes
velocity blocks).  The coarsest grid (at most ``coarse_size`` cells) is solved with a dense
pseudo-inverse.

The kernels work slab by slab along axis 0 (slabs of ``SLAB_ELEMENTS`` cells stay in the CPU
cache while the dozen NumPy passes of one operator application run over them) and spread the
slabs over a small thread pool (NumPy releases the GIL); :func:`solver_threads` or
``OOC_SIMULATE_THREADS`` set the thread count.

Every kernel is written against an array module ``xp`` (NumPy or CuPy): only elementwise ufuncs
with ``out=``, slicing and reductions are used, so CuPy arrays run on the GPU unchanged.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from types import ModuleType
from typing import Any

import numpy as np

from ooc.xp import get_array_module, to_numpy

Array = Any  # numpy.ndarray or cupy.ndarray

__all__ = [
    "Multigrid",
    "PCGInfo",
    "Stencil7",
    "compact_conductance",
    "dot",
    "num_threads",
    "pcg",
    "solver_threads",
]

#: elements per slab of axis-0 planes in the blocked kernels (about 1 MiB of float32)
SLAB_ELEMENTS = 1 << 18
#: grids smaller than this run their kernels on one thread
PARALLEL_MIN_ELEMENTS = 1 << 20

_threads: ContextVar[int | None] = ContextVar("ooc_simulate_threads", default=None)
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


@lru_cache(maxsize=1)
def _default_threads() -> int:
    env = os.environ.get("OOC_SIMULATE_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def num_threads() -> int:
    """Threads the NumPy kernels use: :func:`solver_threads`, else ``OOC_SIMULATE_THREADS``
    (read once), else the CPU count up to 4."""
    n = _threads.get()
    return n if n is not None else _default_threads()


@contextmanager
def solver_threads(n: int) -> Iterator[None]:
    """Use ``n`` threads for the kernels inside this block (in this thread/context only)."""
    token = _threads.set(max(1, int(n)))
    try:
        yield
    finally:
        _threads.reset(token)


def _pool(n: int) -> ThreadPoolExecutor:
    # keyed by process id: a forked child must not reuse its parent's (threadless) pool
    key = (os.getpid(), n)
    with _pool_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(n, thread_name_prefix="ooc-simulate")
        return pool


def parallel_planes(a: Array, fn: Callable[[int, int], Any]) -> list[Any]:
    """Run ``fn(start, stop)`` over ranges of axis-0 planes of ``a``, on threads when it pays."""
    n0 = a.shape[0] if a.ndim else 1
    nt = min(num_threads(), n0)
    if nt <= 1 or a.size < PARALLEL_MIN_ELEMENTS or get_array_module(a) is not np:
        return [fn(0, n0)]
    bounds = [round(i * n0 / nt) for i in range(nt + 1)]
    pool = _pool(nt)
    futs = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(nt)]
    return [f.result() for f in futs]


COARSE_SCALE = 0.45
#: the same for W-cycles, which need it above 1/2 to stay positive definite
W_COARSE_SCALE = 0.55


def _sl(axis: int, s: slice) -> tuple[slice, ...]:
    idx = [slice(None)] * 3
    idx[axis] = s
    return tuple(idx)


def _dot_serial(af: Array, bf: Array) -> float:
    xp = get_array_module(af)
    n = af.size
    step = 1 << 18
    if n <= step or af.dtype == np.float64:
        return float(xp.dot(af, bf))
    total = 0.0
    for s in range(0, n, step):
        total += float(xp.dot(af[s : s + step], bf[s : s + step]))
    return total


def dot(a: Array, b: Array) -> float:
    """Inner product accumulated in float64, chunk by chunk (no full-size temporary)."""
    if a.ndim == 3:
        return sum(
            parallel_planes(a, lambda s, e: _dot_serial(a[s:e].reshape(-1), b[s:e].reshape(-1)))
        )
    return _dot_serial(a.reshape(-1), b.reshape(-1))


def compact_conductance(g: Array) -> tuple[Array, float]:
    """``(q, scale)`` with ``g == q * scale`` exactly and ``q`` uint8, when every value of ``g``
    is a multiple ``0 .. 255`` of the smallest positive one, or of its half or quarter
    (two-phase images, Stokes walls and half faces, Dirichlet boundary rows); else ``(g, 1.0)``.

    Checked slab by slab (no full-size temporary besides ``q``).
    """
    xp = get_array_module(g)
    step = max(1, SLAB_ELEMENTS // max(1, math.prod(g.shape[1:])))
    slabs = [slice(a, a + step) for a in range(0, g.shape[0], step)]
    inf = g.dtype.type(np.inf)
    lo = min((float(xp.where(g[sl] > 0, g[sl], inf).min()) for sl in slabs), default=math.inf)
    if not math.isfinite(lo):
        return xp.zeros(g.shape, dtype=np.uint8), 1.0
    # zeros: slabs left at 0 are never written, so their pages stay unmapped (boundary rows)
    q = xp.zeros(g.shape, dtype=np.uint8)
    for k in (1, 2, 4):  # walls: 1, 1.5, 2 ... are multiples of a half
        s = g.dtype.type(lo / k)
        for sl in slabs:
            gs = g[sl]
            qs = xp.rint(gs / s)
            # exact in float64 too (q * scale is how the float64 residual sees the value): in
            # the array's own precision 10 x 0.1f rounds to 1.0f, an error refinement cannot undo
            exact = qs.astype(np.float64) * float(s) == gs.astype(np.float64)
            if not bool((exact & (qs <= 255)).all()):
                break
            if bool(qs.any()):
                q[sl] = qs
        else:
            return q, float(s)
    return g, 1.0


@dataclass
class Stencil7:
    """A symmetric 7-point operator ``A u = sum_f g_f (u_i - u_j) + d u`` on a 3D grid.

    Applied in *flux form*: every face flux ``g_f (u_i - u_j)`` is computed once and added to one
    cell and subtracted from the other, so the operator conserves exactly (the sum of ``A u`` over
    all cells is ``sum d u`` to rounding of small numbers), which a diagonal stored in float32
    would not do.

    Parameters
    ----------
    g : tuple of three arrays, each of the grid's shape ``(nz, ny, nx)``
        Face conductances per axis; slot ``n - 1`` along the axis is the periodic wrap face.
    d_lap : array or None
        Extra diagonal that scales like a conductance (Dirichlet boundaries, no-slip walls).
    d_mass : array or None
        Extra diagonal that scales like a volume (Darcy drag ``mu / k`` times the cell volume).
    periodic : tuple of three bool
        Axes that wrap around.
    lap_weights : tuple of three float
        Share of ``d_lap`` that belongs to faces normal to each axis (used only to scale ``d_lap``
        when the grid is coarsened along some axes but not others).
    g_scale : tuple of three float
        ``g[a]`` holds the conductances divided by ``g_scale[a]``: small integers stored as uint8
        (see :func:`compact_conductance`, a quarter of the memory of float32) or the values.
    d_scale : float
        The same for ``d_lap``.
    value_dtype : numpy dtype, optional
        dtype of the operator's values and vectors (default: that of ``g[0]``).
    """

    g: tuple[Array, Array, Array]
    d_lap: Array | None = None
    d_mass: Array | None = None
    periodic: tuple[bool, bool, bool] = (False, False, False)
    lap_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    g_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    d_scale: float = 1.0
    value_dtype: Any = None
    d: Array | None = field(init=False)

    def __post_init__(self) -> None:
        self.value_dtype = np.dtype(
            self.g[0].dtype if self.value_dtype is None else self.value_dtype
        )
        self.g_scale = tuple(float(v) for v in self.g_scale)  # type: ignore[assignment]
        self._d_scale = 1.0  # d as stored times this is the extra diagonal
        if self.d_lap is not None and self.d_mass is not None:
            self.d = self.lap_values() + self.d_mass
        elif self.d_lap is not None:
            self.d, self._d_scale = self.d_lap, float(self.d_scale)
        else:
            self.d = self.d_mass

    def lap_values(self) -> Array | None:
        """``d_lap`` in the value dtype (a new array when it is stored compact)."""
        dl, sc = self.d_lap, float(self.d_scale)
        if dl is None:
            return None
        if dl.dtype != self.value_dtype:
            dl = dl.astype(self.value_dtype)
            if sc != 1.0:
                dl *= sc
            return dl
        return dl * sc if sc != 1.0 else dl

    def g_values(self, a: int, idx: Any = ...) -> Array:
        """Conductances ``g[a][idx]`` in the value dtype (a new array when ``g[a]`` is compact)."""
        ga = self.g[a][idx]
        sc = self.g_scale[a]
        if ga.dtype != self.value_dtype:
            ga = ga.astype(self.value_dtype)
            if sc != 1.0:
                ga *= sc
            return ga
        return ga * sc if sc != 1.0 else ga

    def drop_coarsening_data(self) -> None:
        """Forget ``d_lap``/``d_mass`` (only coarsening needs them apart; ``d`` stays)."""
        self.d_lap = None
        self.d_mass = None

    def diagonal(self) -> Array:
        """The diagonal of the operator (a new array)."""
        xp = self.xp
        diag = xp.zeros(self.shape, dtype=self.dtype)
        for a in range(3):
            n = self.shape[a]
            ga = self.g_values(a)
            if n > 1:
                lo, hi = _sl(a, slice(0, n - 1)), _sl(a, slice(1, n))
                diag[lo] += ga[lo]
                diag[hi] += ga[lo]
                if self.periodic[a]:
                    last, first = _sl(a, slice(n - 1, n)), _sl(a, slice(0, 1))
                    diag[last] += ga[last]
                    diag[first] += ga[last]
        if self.d is not None:
            if self._d_scale != 1.0 or self.d.dtype != diag.dtype:
                diag += self.d.astype(diag.dtype) * diag.dtype.type(self._d_scale)
            else:
                diag += self.d
        return diag

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.g[0].shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.value_dtype  # type: ignore[no-any-return]

    @property
    def xp(self) -> ModuleType:
        return get_array_module(self.g[0])

    def slabs(self) -> list[tuple[int, int]]:
        """Ranges of axis-0 planes processed together (sized to stay in the CPU cache)."""
        n0 = self.shape[0]
        if self.xp is not np:
            return [(0, n0)]
        plane = max(1, self.shape[1] * self.shape[2])
        step = max(1, SLAB_ELEMENTS // plane)
        return [(s, min(n0, s + step)) for s in range(0, n0, step)]

    @property
    def work_size(self) -> int:
        """Elements of the scratch buffer that the slab kernels need."""
        n1, n2 = self.shape[1], self.shape[2]
        return max((min(e + 1, self.shape[0]) - max(s - 1, 0)) * n1 * n2 for s, e in self.slabs())

    def _apply_slab(self, u: Array, o: Array, s: int, e: int, work: Array) -> None:
        """``o = (A u)[s:e]`` for planes ``s:e`` along axis 0 (``o`` has the slab's shape)."""
        xp = self.xp
        n0, n1, n2 = self.shape
        g0, g1, g2 = self.g
        sc0, sc1, sc2 = self.g_scale
        if self.d is not None:
            xp.multiply(self.d[s:e], u[s:e], out=o)
            if self._d_scale != 1.0:
                xp.multiply(o, self._d_scale, out=o)
        else:
            o[...] = 0
        # axis 0: faces j0..j1-1 touch the slab's rows; face j joins rows j and j + 1
        j0, j1 = max(s - 1, 0), min(e, n0 - 1)
        if j1 > j0:
            f = work[: (j1 - j0) * n1 * n2].reshape(j1 - j0, n1, n2)
            xp.subtract(u[j0:j1], u[j0 + 1 : j1 + 1], out=f)
            xp.multiply(f, g0[j0:j1], out=f)
            if sc0 != 1.0:
                xp.multiply(f, sc0, out=f)
            a0 = max(j0, s)  # rows j in [a0, j1) receive +f[j - j0]
            if j1 > a0:
                ov = o[a0 - s : j1 - s]
                xp.add(ov, f[a0 - j0 :], out=ov)
            r0, r1 = max(s, j0 + 1), min(j1 + 1, e)  # rows j + 1 in [r0, r1) receive -f[j - j0]
            if r1 > r0:
                ov = o[r0 - s : r1 - s]
                xp.subtract(ov, f[r0 - 1 - j0 : r1 - 1 - j0], out=ov)
        if self.periodic[0] and n0 > 1 and (s == 0 or e == n0):
            fw = self.g_values(0, n0 - 1) * (u[n0 - 1] - u[0])
            if e == n0:
                o[n0 - 1 - s] += fw
            if s == 0:
                o[0] -= fw
        m = e - s
        if n1 > 1:
            f = work[: m * (n1 - 1) * n2].reshape(m, n1 - 1, n2)
            xp.subtract(u[s:e, : n1 - 1], u[s:e, 1:], out=f)
            xp.multiply(f, g1[s:e, : n1 - 1], out=f)
            if sc1 != 1.0:
                xp.multiply(f, sc1, out=f)
            ov = o[:, : n1 - 1]
            xp.add(ov, f, out=ov)
            ov = o[:, 1:]
            xp.subtract(ov, f, out=ov)
            if self.periodic[1]:
                fw = self.g_values(1, (slice(s, e), n1 - 1)) * (u[s:e, n1 - 1] - u[s:e, 0])
                o[:, n1 - 1] += fw
                o[:, 0] -= fw
        if n2 > 1:
            f = work[: m * n1 * (n2 - 1)].reshape(m, n1, n2 - 1)
            xp.subtract(u[s:e, :, : n2 - 1], u[s:e, :, 1:], out=f)
            xp.multiply(f, g2[s:e, :, : n2 - 1], out=f)
            if sc2 != 1.0:
                xp.multiply(f, sc2, out=f)
            ov = o[:, :, : n2 - 1]
            xp.add(ov, f, out=ov)
            ov = o[:, :, 1:]
            xp.subtract(ov, f, out=ov)
            if self.periodic[2]:
                fw = self.g_values(2, (slice(s, e), slice(None), n2 - 1)) * (
                    u[s:e, :, n2 - 1] - u[s:e, :, 0]
                )
                o[:, :, n2 - 1] += fw
                o[:, :, 0] -= fw

    def _groups(self) -> list[list[tuple[int, int]]]:
        """The slabs split into contiguous groups, one per worker thread."""
        slabs = self.slabs()
        nt = min(num_threads(), len(slabs))
        if nt <= 1 or math.prod(self.shape) < PARALLEL_MIN_ELEMENTS or self.xp is not np:
            return [slabs]
        k, m = divmod(len(slabs), nt)
        out, i = [], 0
        for t in range(nt):
            j = i + k + (1 if t < m else 0)
            out.append(slabs[i:j])
            i = j
        return out

    def _run(self, fn: Callable[[list[tuple[int, int]], Array], Any], work: Array) -> list[Any]:
        """Run ``fn(group, work_part)`` for every group (threads when there are several)."""
        groups = self._groups()
        if len(groups) == 1:
            return [fn(groups[0], work)]
        ws = work.size // len(groups)
        pool = _pool(len(groups))
        futs = [pool.submit(fn, g, work[i * ws : (i + 1) * ws]) for i, g in enumerate(groups)]
        return [f.result() for f in futs]

    def work_buffer(self, dtype: Any, factor: int = 1) -> Array:
        """A scratch buffer large enough for the slab kernels on every thread."""
        groups = max(1, len(self._groups()))
        return self.xp.empty(self.work_size * factor * groups, dtype=dtype)

    def matvec(self, u: Array, out: Array, work: Array, *, beta: float = 0.0) -> Array:
        """``out = A u + beta out``; ``work`` comes from :meth:`work_buffer` (``factor=2`` when
        ``beta`` is not 0: each slab of ``A u`` is formed there before it is added)."""
        xp = self.xp

        def run(group: list[tuple[int, int]], w: Array) -> None:
            if beta == 0.0:
                for s, e in group:
                    self._apply_slab(u, out[s:e], s, e, w)
                return
            ws = w.size // 2
            for s, e in group:
                os_ = out[s:e]
                t = w[ws : ws + os_.size].reshape(os_.shape)
                self._apply_slab(u, t, s, e, w[:ws])
                xp.multiply(os_, beta, out=os_)
                xp.add(os_, t, out=os_)

        self._run(run, work)
        return out

    def residual(self, b: Array, x: Array, r: Array, work: Array, *, b_scale: float = 1.0) -> Array:
        """``r = b b_scale - A x`` (fused slab by slab; ``b`` may be compact uint8).

        When ``x`` is float64 and ``r`` float32, the residual is formed in float64 (``work`` must
        then be a float64 :meth:`work_buffer` with ``factor=2``) and rounded once when stored.
        """
        xp = self.xp
        mixed = x.dtype != r.dtype

        def b_of(s: int, e: int, dt: np.dtype) -> Array:
            return b[s:e] if b_scale == 1.0 else b[s:e] * dt.type(b_scale)

        def run(group: list[tuple[int, int]], w: Array) -> None:
            ws = w.size // 2
            for s, e in group:
                rs = r[s:e]
                if mixed:
                    o = w[ws : ws + rs.size].reshape(rs.shape)
                    self._apply_slab(x, o, s, e, w[:ws])
                    xp.subtract(b_of(s, e, o.dtype), o, out=o)
                    rs[...] = o
                else:
                    self._apply_slab(x, rs, s, e, w)
                    xp.subtract(b_of(s, e, rs.dtype), rs, out=rs)

        self._run(run, work)
        return r

    def jacobi(self, b: Array, x: Array, r: Array, winv: Array, work: Array) -> None:
        """One damped-Jacobi sweep ``x += winv (b - A x)`` (``r`` is scratch).

        Slab ``i`` of ``x`` is updated after the residual of slab ``i + 1`` is formed, so every
        residual sees the old ``x`` (a true Jacobi sweep, hence a symmetric smoother).  With
        threads, the first and last slab of every group wait until all groups are done.
        """
        xp = self.xp

        def update(sl: tuple[int, int]) -> None:
            xs = x[sl[0] : sl[1]]
            xp.add(xs, r[sl[0] : sl[1]], out=xs)

        def run(group: list[tuple[int, int]], w: Array) -> list[tuple[int, int]]:
            deferred = [group[0]]
            prev: tuple[int, int] | None = None
            for s, e in group:
                rs = r[s:e]
                self._apply_slab(x, rs, s, e, w)
                xp.subtract(b[s:e], rs, out=rs)
                xp.multiply(rs, winv[s:e], out=rs)
                if prev is not None and prev != group[0]:
                    update(prev)
                prev = (s, e)
            if prev is not None and prev != group[0]:
                deferred.append(prev)
            return deferred

        for deferred in self._run(run, work):
            for sl in deferred:
                update(sl)

    def face_flux(self, u: Array, axis: int) -> Array:
        """Flux ``g (u_j - u_{j+1})`` through every face normal to ``axis`` (same layout as g)."""
        xp = self.xp
        n = self.shape[axis]
        f = xp.zeros(self.shape, dtype=u.dtype)
        if n > 1:
            lo, hi = _sl(axis, slice(0, n - 1)), _sl(axis, slice(1, n))
            f[lo] = self.g_values(axis, lo) * (u[lo] - u[hi])
        if self.periodic[axis]:
            last, first = _sl(axis, slice(n - 1, n)), _sl(axis, slice(0, 1))
            f[last] = self.g_values(axis, last) * (u[last] - u[first])
        return f

    def total_face_flux(self, u: Array, axis: int) -> float:
        """Sum over all faces normal to ``axis`` of the flux in the +axis direction (float64)."""
        n = self.shape[axis]
        total = 0.0
        # plane by plane keeps the temporaries small
        for j in range(n):
            if j == n - 1 and not (self.periodic[axis] and n > 1):
                break
            jn = (j + 1) % n
            gj = self.g_values(axis, _sl(axis, slice(j, j + 1)))
            du = u[_sl(axis, slice(j, j + 1))] - u[_sl(axis, slice(jn, jn + 1))]
            total += float((gj.astype(np.float64) * du).sum())
        return total


def _pairsum(x: Array, axis: int) -> Array:
    """Sum neighbouring pairs along ``axis`` (an odd last cell stays alone)."""
    x.shape[axis]
    even = x[_sl(axis, slice(0, None, 2))].copy()
    odd = x[_sl(axis, slice(1, None, 2))]
    even[_sl(axis, slice(0, odd.shape[axis]))] += odd
    return even


def coarsen(op: Stencil7, scale: float = COARSE_SCALE) -> tuple[Stencil7, tuple[int, int, int]]:
    """Galerkin aggregation coarsening (2 per axis where the axis is longer than 1).

    The Laplacian part of the coarse operator is multiplied by ``scale`` along coarsened axes.
    """
    xp = op.xp
    shape = op.shape
    c = tuple(2 if n > 1 else 1 for n in shape)
    gc = []
    for a in range(3):
        g = op.g_values(a)
        n = shape[a]
        if c[a] == 2:
            sel = g[_sl(a, slice(1, None, 2))]
            if n % 2 == 1:
                sel = xp.concatenate([sel, g[_sl(a, slice(n - 1, n))]], axis=a)
        else:
            sel = g
        for b in range(3):
            if b != a and c[b] == 2:
                sel = _pairsum(sel, b)
        if sel is g:
            sel = sel.copy()
        if c[a] == 2:
            sel *= scale
        gc.append(xp.ascontiguousarray(sel))
    d_lap = d_mass = None
    if op.d_lap is not None:
        d_lap = op.lap_values()
        for b in range(3):
            if c[b] == 2:
                d_lap = _pairsum(d_lap, b)
        scale = sum(w / cb for w, cb in zip(op.lap_weights, c, strict=True))
        d_lap = d_lap * scale
    if op.d_mass is not None:
        d_mass = op.d_mass
        for b in range(3):
            if c[b] == 2:
                d_mass = _pairsum(d_mass, b)
    coarse = Stencil7(
        g=(gc[0], gc[1], gc[2]),
        d_lap=d_lap,
        d_mass=d_mass,
        periodic=op.periodic,
        lap_weights=op.lap_weights,
    )
    return coarse, c  # type: ignore[return-value]


def _dense_matrix(op: Stencil7) -> np.ndarray:
    """Dense matrix of a (small) operator, on the host."""
    shape = op.shape
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    A = np.zeros((n, n))
    diag = to_numpy(op.diagonal()).astype(np.float64).reshape(-1)
    A[np.arange(n), np.arange(n)] = diag
    for a in range(3):
        g = to_numpy(op.g_values(a)).astype(np.float64)
        m = shape[a]
        if m > 1:
            lo, hi = _sl(a, slice(0, m - 1)), _sl(a, slice(1, m))
            i, j, v = idx[lo].ravel(), idx[hi].ravel(), g[lo].ravel()
            np.subtract.at(A, (i, j), v)
            np.subtract.at(A, (j, i), v)
        if op.periodic[a] and m > 1:
            last, first = _sl(a, slice(m - 1, m)), _sl(a, slice(0, 1))
            i, j, v = idx[last].ravel(), idx[first].ravel(), g[last].ravel()
            np.subtract.at(A, (i, j), v)
            np.subtract.at(A, (j, i), v)
    return A


@dataclass
class _Level:
    op: Stencil7
    winv: Array
    x: Array
    r: Array
    b: Array
    work: Array
    factors: tuple[int, int, int] = (1, 1, 1)


class Multigrid:
    """Symmetric V-cycle preconditioner for a :class:`Stencil7` operator.

    Parameters
    ----------
    op : Stencil7
        The finest operator (kept by reference, not copied).
    smooth : int
        Damped-Jacobi sweeps before and after each coarse correction.
    omega : float
        Jacobi damping (``< 1`` keeps the preconditioner positive definite).
    coarse_size : int
        Stop coarsening when a grid has at most this many cells; that grid is solved exactly.
    """

    def __init__(
        self,
        op: Stencil7,
        *,
        smooth: int = 2,
        omega: float = 0.9,
        coarse_size: int = 64,
        gamma: int = 1,
        coarse_scale: float | None = None,
    ) -> None:
        self.xp = op.xp
        self.gamma = gamma
        if coarse_scale is None:
            # A V-cycle stays positive definite for any scale; repeated coarse corrections
            # (W-cycle) need the coarse correction not to over-correct by 2x or more.
            coarse_scale = COARSE_SCALE if gamma == 1 else W_COARSE_SCALE
        self.coarse_scale = coarse_scale
        self.smooth = smooth
        self.omega = omega
        self.levels: list[_Level] = []
        cur = op
        while True:
            self.levels.append(self._make_level(cur, fine=not self.levels))
            n = math.prod(cur.shape)
            if n <= coarse_size or all(s == 1 for s in cur.shape):
                break
            cur, c = coarsen(cur, self.coarse_scale)
            self.levels[-1].factors = c
            # the build-time diagonals are not needed any more on the finer level
        last = self.levels[-1].op
        A = _dense_matrix(last)
        active = np.abs(np.diag(A)) > 0
        self._coarse_active = np.flatnonzero(active)
        Aa = A[np.ix_(active, active)]
        if Aa.size:
            w, v = np.linalg.eigh(Aa)
            tol = max(float(np.abs(w).max()), 1e-300) * 1e-10
            winv = np.where(np.abs(w) > tol, 1.0 / np.where(w == 0, 1, w), 0.0)
            pinv = (v * winv) @ v.T
        else:
            pinv = np.zeros((0, 0))
        self._coarse_pinv = self.xp.asarray(pinv.astype(last.dtype))
        self._coarse_idx = self.xp.asarray(self._coarse_active)
        for lev in self.levels:
            lev.op.drop_coarsening_data()

    def _make_level(self, op: Stencil7, *, fine: bool) -> _Level:
        # the finest level's residual buffer is allocated lazily (callers may lend one)
        xp = op.xp
        diag = op.diagonal()
        winv = xp.zeros_like(diag)
        pos = diag > 0
        winv[pos] = self.omega / diag[pos]
        math.prod(op.shape)
        dt = op.dtype
        return _Level(
            op=op,
            winv=winv,
            x=xp.zeros(op.shape, dtype=dt) if not fine else xp.zeros((0, 0, 0), dtype=dt),
            r=xp.zeros(op.shape, dtype=dt) if not fine else None,
            b=xp.zeros(op.shape, dtype=dt) if not fine else xp.zeros((0, 0, 0), dtype=dt),
            work=op.work_buffer(dt),
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the hierarchy (operators, diagonals and buffers), finest operator excluded."""
        total = 0
        for i, lev in enumerate(self.levels):
            arrays = [lev.winv, lev.x, lev.r, lev.b, lev.work]
            if i > 0:
                arrays += [*lev.op.g] + ([lev.op.d] if lev.op.d is not None else [])
            total += sum(int(a.nbytes) for a in arrays)
        return total

    def _smooth(self, lev: _Level, b: Array, x: Array) -> None:
        lev.op.jacobi(b, x, lev.r, lev.winv, lev.work)

    @staticmethod
    def _restrict(xp: ModuleType, r: Array, out: Array, c: tuple[int, int, int]) -> None:
        nf = r.shape[0]

        def run(S: int, E: int) -> None:
            first = True
            for o in product(*(range(ci) for ci in c)):
                v = r[c[0] * S + o[0] : min(c[0] * E, nf) : c[0], o[1] :: c[1], o[2] :: c[2]]
                if first:
                    out[S:E] = v
                    first = False
                else:
                    tgt = out[S : S + v.shape[0], : v.shape[1], : v.shape[2]]
                    xp.add(tgt, v, out=tgt)

        if out.size * 8 >= PARALLEL_MIN_ELEMENTS:
            parallel_planes(out, run)
        else:
            run(0, out.shape[0])

    @staticmethod
    def _prolong_add(xp: ModuleType, xc: Array, x: Array, c: tuple[int, int, int]) -> None:
        nf = x.shape[0]

        def run(S: int, E: int) -> None:
            for o in product(*(range(ci) for ci in c)):
                tgt = x[c[0] * S + o[0] : min(c[0] * E, nf) : c[0], o[1] :: c[1], o[2] :: c[2]]
                xp.add(tgt, xc[S : S + tgt.shape[0], : tgt.shape[1], : tgt.shape[2]], out=tgt)

        if xc.size * 8 >= PARALLEL_MIN_ELEMENTS:
            parallel_planes(xc, run)
        else:
            run(0, xc.shape[0])

    def _vcycle(self, i: int, b: Array, x: Array) -> Array:
        xp = self.xp
        lev = self.levels[i]
        if i == len(self.levels) - 1:
            x[...] = 0
            if self._coarse_idx.size:
                xf = x.reshape(-1)
                xf[self._coarse_idx] = self._coarse_pinv @ b.reshape(-1)[self._coarse_idx]
            return x
        xp.multiply(b, lev.winv, out=x)
        for _ in range(self.smooth - 1):
            self._smooth(lev, b, x)
        nxt = self.levels[i + 1]
        # one coarse correction on the finest level, `gamma` below it (gamma=2: W-cycle)
        for k in range(1 if i == 0 else self.gamma):
            lev.op.residual(b, x, lev.r, lev.work)
            self._restrict(xp, lev.r, nxt.b, lev.factors)
            xc = self._vcycle(i + 1, nxt.b, nxt.x)
            self._prolong_add(xp, xc, x, lev.factors)
            del k
        for _ in range(self.smooth):
            self._smooth(lev, b, x)
        return x

    def __call__(self, b: Array, out: Array | None = None, scratch: Array | None = None) -> Array:
        """Apply one V-cycle to ``b`` (zero initial guess); result in ``out`` (or a new array).

        ``scratch`` (an array like ``b``, overwritten) saves the finest level's residual buffer.
        """
        if out is None:
            out = self.xp.empty_like(b)
        lev = self.levels[0]
        if lev.r is None and scratch is None:
            lev.r = self.xp.zeros(b.shape, dtype=b.dtype)
        if scratch is not None:
            keep, lev.r = lev.r, scratch
            try:
                return self._vcycle(0, b, out)
            finally:
                lev.r = keep
        return self._vcycle(0, b, out)


@dataclass
class PCGInfo:
    """What a conjugate-gradient run did."""

    iterations: int
    residual: float  # ||r|| / ||b||
    converged: bool
    stop_reason: str


def pcg(
    op: Stencil7,
    b: Array,
    x: Array,
    precond: Callable[..., Array],
    *,
    max_iter: int,
    rtol: float,
    check: Callable[[int, Callable[[int, int], Array], float], bool] | None = None,
    x_high: Array | None = None,
    reliable: float = 0.1,
    max_restarts: int = 3,
    b_scale: float = 1.0,
) -> PCGInfo:
    """Preconditioned conjugate gradients, in place.

    Parameters
    ----------
    op : Stencil7
        The symmetric positive (semi-)definite operator.
    b : array
        Right-hand side, same shape as ``x``.
    x : array
        Initial guess, overwritten with the solution; when ``x_high`` is given, a scratch array of
        the working precision that holds the correction since the last reliable update.
    precond : callable ``(r, out, scratch) -> out``
        Symmetric positive definite preconditioner (``scratch``: a free array like ``r``).
    max_iter : int
        Largest number of iterations.
    rtol : float
        Stop when ``||r|| <= rtol ||b||``.  With ``check`` given this is a safety net: the true
        residual is recomputed and CG restarted (at most ``max_restarts`` times) when the
        recursive residual gets there before ``check`` is satisfied.
    check : callable ``(iteration, plane, relative_residual) -> bool``, optional
        Called after every iteration; ``plane(axis, j)`` returns plane ``j`` along ``axis`` of the
        current solution in float64.  Returning True stops (converged).
    x_high : array, optional
        Mixed precision: the solution is kept in this (float64) array and the iteration runs in the
        working precision of ``op``; whenever the residual has dropped by ``reliable`` the
        correction is added to ``x_high`` and the residual recomputed from it in float64
        ("reliable updates"), so rounding in the working precision does not limit the accuracy.
    b_scale : float
        The right-hand side is ``b * b_scale`` (``b`` compact uint8, see
        :func:`compact_conductance`).
    """
    xp = op.xp
    dt = x.dtype
    work = op.work_buffer(dt)
    work_hi = op.work_buffer(np.float64, 2) if x_high is not None else None
    r = xp.empty_like(x)
    q = xp.empty_like(x)
    z = xp.empty_like(x)
    if x_high is not None:
        x[...] = 0

    def true_residual() -> None:
        if x_high is None:
            op.residual(b, x, r, work, b_scale=b_scale)
        else:
            op.residual(b, x_high, r, work_hi, b_scale=b_scale)

    def plane(axis: int, j: int) -> Array:
        sl = _sl(axis, slice(j, j + 1))
        p_ = x[sl].astype(np.float64)
        if x_high is not None:
            p_ += x_high[sl]
        return p_

    true_residual()
    if b.dtype.kind == "f" and b_scale == 1.0:
        bnorm = math.sqrt(dot(b, b))
    else:  # compact right-hand side: square in float64, plane by plane
        bnorm = abs(b_scale) * math.sqrt(
            sum(float(xp.square(b[i], dtype=np.float64).sum()) for i in range(b.shape[0]))
        )
    if bnorm == 0.0:
        x[...] = 0
        if x_high is not None:
            x_high[...] = 0
        return PCGInfo(0, 0.0, True, "zero right-hand side")
    res = math.sqrt(dot(r, r)) / bnorm
    if check is not None and check(0, plane, res):
        return PCGInfo(0, res, True, "criteria met")
    if res == 0.0:
        return PCGInfo(0, res, True, "exact solution")
    res_update = res
    precond(r, z, q)
    p = z.copy()
    rz = dot(r, z)
    restarts = 0
    info: PCGInfo | None = None
    it = 0
    for it in range(1, max_iter + 1):
        op.matvec(p, q, work)
        pq = dot(p, q)
        if pq <= 0 or not math.isfinite(pq):
            info = PCGInfo(it - 1, res, False, "breakdown (p.Ap <= 0)")
            break
        alpha = rz / pq

        def update(s: int, e: int, alpha: float = alpha) -> float:
            # r -= alpha q; x += alpha p; returns the slab's r.r
            qs, rs = q[s:e], r[s:e]
            xp.multiply(qs, alpha, out=qs)
            xp.subtract(rs, qs, out=rs)
            xp.multiply(p[s:e], alpha, out=qs)
            xs = x[s:e]
            xp.add(xs, qs, out=xs)
            return _dot_serial(rs.reshape(-1), rs.reshape(-1))

        res = math.sqrt(max(sum(parallel_planes(q, update)), 0.0)) / bnorm
        if x_high is not None and res <= reliable * res_update:
            xp.add(x_high, x, out=x_high)
            x[...] = 0
            true_residual()
            res = res_update = math.sqrt(dot(r, r)) / bnorm
        if check is not None and check(it, plane, res):
            info = PCGInfo(it, res, True, "criteria met")
            break
        if res <= rtol:
            if check is None:
                info = PCGInfo(it, res, True, "residual below rtol")
                break
            # The recursive residual may have drifted from the true one: recompute and restart.
            if x_high is not None:
                xp.add(x_high, x, out=x_high)
                x[...] = 0
            true_residual()
            res = res_update = math.sqrt(dot(r, r)) / bnorm
            restarts += 1
            if res <= rtol or restarts > max_restarts:
                info = PCGInfo(it, res, False, "rounding floor reached before the criteria")
                break
            precond(r, z, q)
            xp.copyto(p, z)
            rz = dot(r, z)
            continue
        precond(r, z, q)
        rz_new = dot(r, z)
        beta = rz_new / rz
        rz = rz_new

        def direction(s: int, e: int, beta: float = beta) -> None:
            ps = p[s:e]
            xp.multiply(ps, beta, out=ps)
            xp.add(ps, z[s:e], out=ps)

        parallel_planes(p, direction)
    if info is None:
        info = PCGInfo(max_iter, res, False, "max_iter reached")
    if x_high is not None:
        xp.add(x_high, x, out=x_high)
        x[...] = 0
    return info
