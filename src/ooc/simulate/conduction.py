"""Steady conduction / diffusion on a labelled voxel image: effective conductivity, diffusivity and
tortuosity factor.

Method
------
Cell-centred finite volumes on the voxel grid.  Every voxel carries the conductivity of its phase
(any number of phases; zero is allowed).  The conductance of the face between two voxels is the
harmonic mean of their conductivities times face area over centre distance, which makes laminates
in series and in parallel exact.  The potential is fixed on the inlet and outlet *faces* of the
driven axis (half a voxel beyond the first and last cell centres - TauFactor's convention) and
the other faces carry no flux, or wrap around (``periodic=True``).

Before solving, the conducting voxels are labelled into face-connected components
(:func:`scipy.ndimage.label`; across the periodic sides too) and only components that touch both
the inlet and the outlet are kept.  Isolated clusters would make the system singular; they carry
no flux and are left out.  Dead ends stay in (they carry no net flux and cost nothing).  When no
component spans the sample the result is ``effective = 0`` (``tau = inf``) with
``percolating=False``, not an error.

The system is solved matrix-free by conjugate gradients preconditioned with one V-cycle of the
aggregation multigrid of :mod:`ooc.simulate.multigrid` per iteration (a few tens of iterations on
a 256³ image instead of thousands of relaxation sweeps).  The stopping rule is on the quantities a
user cares about: the flux entering must equal the flux leaving within ``rtol`` and the effective
property must change by less than ``rtol`` from one iteration to the next.  A
:class:`~ooc.simulate.result.ConvergenceWarning` is raised when ``max_iter`` is reached first.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ooc.simulate.multigrid import Multigrid, Stencil7, compact_conductance, pcg
from ooc.simulate.result import (
    AXES,
    ConductionDirection,
    ConductionResult,
    ConvergenceInfo,
    ConvergenceWarning,
    TortuosityDirection,
    TortuosityResult,
)
from ooc.volume import in_metres
from ooc.xp import get_array_module, ndimage_module, to_numpy

__all__ = ["conductivity", "tortuosity"]

Array = Any


def _sl(axis: int, s: slice) -> tuple[slice, ...]:
    idx = [slice(None)] * 3
    idx[axis] = s
    return tuple(idx)


def parse_directions(direction: str | int | Sequence[str | int]) -> list[int]:
    """Normalise ``"z"``, ``0``, ``("z", "x")`` ... to a list of axis numbers."""
    items = [direction] if isinstance(direction, str | int) else list(direction)
    out: list[int] = []
    for d in items:
        if isinstance(d, str) and d in AXES:
            a = AXES.index(d)
        elif isinstance(d, int | np.integer) and 0 <= int(d) < 3:
            a = int(d)
        else:
            raise ValueError(f"direction must be 'z', 'y', 'x' or 0, 1, 2; got {d!r}")
        if a not in out:
            out.append(a)
    if not out:
        raise ValueError("direction: at least one direction is needed")
    return out


def parse_voxel_size(
    voxel_size: float | Sequence[float] | None,
) -> tuple[float, float, float] | None:
    """``None``, a number or three numbers (z, y, x) in metres -> a 3-tuple or None."""
    if voxel_size is None:
        return None
    if isinstance(voxel_size, int | float | np.floating | np.integer):
        vs = (float(voxel_size),) * 3
    else:
        vs = tuple(float(v) for v in voxel_size)
        if len(vs) != 3:
            raise ValueError(f"voxel_size must be one number or three (z, y, x); got {voxel_size}")
    if not all(v > 0 and math.isfinite(v) for v in vs):
        raise ValueError(f"voxel_size must be positive and finite; got {voxel_size}")
    return vs  # type: ignore[return-value]


def _check_volume(labels: Any, name: str = "labels") -> None:
    if getattr(labels, "ndim", None) != 3:
        raise ValueError(f"{name} must be a 3D array (z, y, x); got shape {np.shape(labels)}")
    if min(labels.shape) < 1:
        raise ValueError(f"{name} is empty: shape {labels.shape}")


def phase_map(
    labels: Array, phase_values: Mapping[Any, float], dtype: Any, *, name: str = "phase_values"
) -> Array:
    """Voxel array of per-phase values; every label present must have a value.

    Parameters
    ----------
    labels : array, shape (nz, ny, nx), integer
    phase_values : mapping label -> value (finite, >= 0)
    dtype : floating dtype of the output
    name : str
        Parameter name used in error messages.
    """
    xp = get_array_module(labels)
    for lab, v in phase_values.items():
        if not (math.isfinite(float(v)) and float(v) >= 0):
            raise ValueError(f"{name}[{lab!r}] must be finite and >= 0; got {v!r}")
    if labels.dtype.kind in "ub" or (labels.dtype.kind == "i" and labels.dtype.itemsize <= 2):
        lo = int(labels.min())
        hi = int(labels.max())
        if lo < 0:
            raise ValueError("labels must be non-negative integers")
        lut = np.full(hi + 1, np.nan)
        for lab, v in phase_values.items():
            if 0 <= int(lab) <= hi:
                lut[int(lab)] = float(v)
        present = to_numpy(xp.bincount(labels.reshape(-1).astype(np.int32), minlength=hi + 1))
        missing = [int(i) for i in np.flatnonzero(present) if np.isnan(lut[i])]
        if missing:
            raise ValueError(
                f"labels {missing} occur in the volume but have no entry in {name} "
                f"(given: {sorted(phase_values)})"
            )
        lut = np.nan_to_num(lut).astype(dtype)
        return xp.asarray(lut)[labels]
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an integer array; got dtype {labels.dtype}")
    out = xp.zeros(labels.shape, dtype=dtype)
    covered = xp.zeros(labels.shape, dtype=bool)
    for lab, v in phase_values.items():
        m = labels == lab
        out[m] = v
        covered |= m
    if not bool(covered.all()):
        bad = to_numpy(labels[~covered])[:1]
        raise ValueError(
            f"label {int(bad[0])} occurs in the volume but has no entry in {name} "
            f"(given: {sorted(phase_values)})"
        )
    return out


def _value_kind(name: str, value: Any, shape: tuple[int, ...]) -> str:
    """``"scalar"``, ``"axes"`` (three numbers), ``"field"`` (per voxel) or ``"axes_field"``."""
    if isinstance(value, int | float | np.integer | np.floating):
        return "scalar"
    vshape = tuple(np.shape(value))
    if vshape == ():
        return "scalar"
    if vshape == (3,):
        return "axes"
    if vshape == tuple(shape):
        return "field"
    if vshape == (3, *shape):
        return "axes_field"
    raise ValueError(
        f"{name} must be a number, three numbers (z, y, x), an array of the volume's shape "
        f"{tuple(shape)} or of shape {(3, *shape)}; got shape {vshape}"
    )


def _check_values(name: str, v: Array) -> None:
    xp = get_array_module(v)
    if not bool(xp.all(xp.isfinite(v))) or bool(xp.any(v < 0)):
        raise ValueError(f"{name} must be finite and >= 0 everywhere")


def phase_field(
    labels: Array, phase_values: Mapping[Any, Any], dtype: Any, *, name: str = "phase_values"
) -> Array | tuple[Array, Array, Array]:
    """Per-voxel values from per-phase values that may be tensors or fields.

    Parameters
    ----------
    labels : array of int, shape (nz, ny, nx)
    phase_values : mapping label -> value
        Each value is a number, three numbers (diagonal tensor, axes z, y, x), an array of the
        volume's shape (one value per voxel, used where the voxel has this label) or an array of
        shape (3, nz, ny, nx) (per voxel and axis).  Finite and >= 0.
    dtype : floating dtype of the output
    name : str
        Parameter name used in error messages.

    Returns
    -------
    array or tuple of three arrays
        One array (nz, ny, nx) when every value is isotropic, else one array per axis.
    """
    xp = get_array_module(labels)
    shape = tuple(labels.shape)
    kinds = {lab: _value_kind(f"{name}[{lab!r}]", v, shape) for lab, v in phase_values.items()}
    if all(k == "scalar" for k in kinds.values()):
        return phase_map(
            labels, {lab: float(v) for lab, v in phase_values.items()}, dtype, name=name
        )
    per_axis = any(k in ("axes", "axes_field") for k in kinds.values())
    # labels without a scalar get 0 in the lookup table; their voxels are filled below
    base = phase_map(
        labels,
        {lab: float(v) if kinds[lab] == "scalar" else 0.0 for lab, v in phase_values.items()},
        dtype,
        name=name,
    )
    out = [base, base.copy(), base.copy()] if per_axis else [base]
    for lab, v in phase_values.items():
        kind = kinds[lab]
        if kind == "scalar":
            continue
        m = labels == lab
        if kind == "axes":
            vals = np.asarray(v, dtype=np.float64)
            _check_values(f"{name}[{lab!r}]", vals)
            for a in range(3):
                out[a][m] = vals[a]
            continue
        arr = xp.asarray(v)
        _check_values(f"{name}[{lab!r}]", arr[..., m] if kind == "axes_field" else arr[m])
        for a in range(len(out)):
            src = arr[a] if kind == "axes_field" else arr
            out[a][m] = src[m].astype(dtype)
    return (out[0], out[1], out[2]) if per_axis else out[0]


def describe_values(phase_values: Mapping[Any, Any]) -> dict[Any, Any]:
    """Phase values as recorded in a result: numbers and triples as given, fields summarised."""
    out: dict[Any, Any] = {}
    for lab, v in phase_values.items():
        shape = tuple(np.shape(v))
        if shape == ():
            out[lab] = float(v)
        elif shape == (3,):
            out[lab] = tuple(float(x) for x in np.asarray(v))
        else:
            out[lab] = f"per-voxel field {shape}"
    return out


def largest_value(phase_values: Mapping[Any, Any]) -> float:
    """Largest value among numbers, triples and fields (the default ``reference``)."""
    best = 0.0
    for v in phase_values.values():
        xp = get_array_module(v) if hasattr(v, "shape") else np
        best = max(best, float(xp.max(xp.asarray(v))))
    return best


def _face_components(
    g: tuple[Array, Array, Array], conductive: Array, periodic: Sequence[bool]
) -> tuple[Array, int]:
    """Components of the graph of faces with positive conductance (like ``ndimage.label``).

    Used when conductivities differ by axis and some are zero, where voxels that touch across a
    face may still not be joined.  Labels 1..n on ``conductive`` cells, 0 elsewhere.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    gh = [to_numpy(x) for x in g]
    shape = gh[0].shape
    size = math.prod(shape)
    idx = np.arange(size).reshape(shape)
    rows, cols = [], []
    for a in range(3):
        n = shape[a]
        if n < 2:
            continue
        lo = _sl(a, slice(0, n - 1))
        hi = _sl(a, slice(1, n))
        m = gh[a][lo] > 0
        rows.append(idx[lo][m])
        cols.append(idx[hi][m])
        if periodic[a]:
            last, first = _sl(a, slice(n - 1, n)), _sl(a, slice(0, 1))
            m = gh[a][last] > 0
            rows.append(idx[last][m])
            cols.append(idx[first][m])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(size, size))
    _, lab = connected_components(graph, directed=False)
    touched = to_numpy(conductive).reshape(-1)
    # renumber the components of conductive cells 1..n, the rest 0
    used = np.unique(lab[touched])
    remap = np.zeros(lab.max() + 1 if lab.size else 1, np.int32)
    remap[used] = np.arange(1, used.size + 1, dtype=np.int32)
    out = np.where(touched, remap[lab], 0).reshape(shape)
    xp = get_array_module(g[0])
    return xp.asarray(out), int(used.size)


def spanning_mask(
    conductive: Array,
    axis: int,
    periodic: Sequence[bool],
    components: tuple[Array, int] | None = None,
) -> Array | None:
    """Voxels of the face-connected components of ``conductive`` that touch both end faces.

    Parameters
    ----------
    conductive : bool array (nz, ny, nx)
    axis : int
        The driven axis; its first and last planes are the inlet and outlet.
    periodic : three bools
        Axes whose opposite faces are joined (components are merged across them).
    components : (labels, count), optional
        Precomputed ``scipy.ndimage.label(conductive)``.

    Returns
    -------
    bool array or None
        None when nothing spans.
    """
    xp = get_array_module(conductive)
    if components is None:
        components = ndimage_module(xp).label(conductive)
    lab, n = components
    n = int(n)
    if n == 0:
        return None
    # merge components across periodic faces
    roots = np.arange(n + 1)
    pairs = []
    for b in range(3):
        if periodic[b] and b != axis and conductive.shape[b] > 1:
            p0 = to_numpy(lab[_sl(b, slice(0, 1))]).ravel()
            p1 = to_numpy(lab[_sl(b, slice(-1, None))]).ravel()
            m = (p0 > 0) & (p1 > 0)
            if m.any():
                pairs.append(np.stack([p0[m], p1[m]]))
    if pairs:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        e = np.unique(np.concatenate(pairs, axis=1), axis=1)
        graph = coo_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n + 1, n + 1))
        _, roots = connected_components(graph, directed=False)
        roots = roots.astype(np.int64)
        roots[0] = -1
    inlet = np.unique(roots[to_numpy(lab[_sl(axis, slice(0, 1))]).ravel()])
    outlet = np.unique(roots[to_numpy(lab[_sl(axis, slice(-1, None))]).ravel()])
    both = np.intersect1d(inlet, outlet)
    both = both[both >= 0] if pairs else both[both > 0]
    if both.size == 0:
        return None
    keep = np.isin(roots, both)
    keep[0] = False
    return xp.asarray(keep)[lab]


def _harmonic_into(out: Array, k1: Array, k2: Array, fac: float) -> None:
    """``out = fac * 2 k1 k2 / (k1 + k2)`` with 0 where both are 0 (slab-sized temporaries)."""
    xp = get_array_module(out)
    s = k1 + k2
    s[s == 0] = 1  # there k1 = k2 = 0, so the numerator is 0 too
    xp.multiply(k1, k2, out=out)
    out *= 2.0 * fac
    xp.divide(out, s, out=out)


def face_conductances(
    k: Array | tuple[Array, Array, Array],
    periodic: Sequence[bool],
    spacing: tuple[float, float, float],
) -> tuple[Array, Array, Array]:
    """Face conductances (harmonic mean x area / distance) for each axis, layout of Stencil7.

    Parameters
    ----------
    k : float array (nz, ny, nx), or one per axis
        Voxel conductivities (per axis: faces normal to axis ``a`` use ``k[a]``).
    periodic : three bools
    spacing : (hz, hy, hx)
        Voxel size (any unit; 1 for voxel units).
    """
    ks = tuple(k) if isinstance(k, tuple) else (k, k, k)
    xp = get_array_module(ks[0])
    shape = ks[0].shape
    out = []
    area = (spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1])
    slab = max(1, (1 << 22) // max(1, shape[1] * shape[2]))
    for a in range(3):
        k = ks[a]
        fac = area[a] / spacing[a]
        g = xp.zeros(shape, dtype=k.dtype)
        n = shape[a]
        for s0 in range(0, shape[0], slab):
            s1 = min(shape[0], s0 + slab)
            if a == 0:
                e1 = min(s1, n - 1)
                if e1 > s0:
                    _harmonic_into(g[s0:e1], k[s0:e1], k[s0 + 1 : e1 + 1], fac)
            elif n > 1:
                lo = (slice(s0, s1), *_sl(a, slice(0, n - 1))[1:])
                hi = (slice(s0, s1), *_sl(a, slice(1, n))[1:])
                _harmonic_into(g[lo], k[lo], k[hi], fac)
        if periodic[a] and n > 1:
            last, first = _sl(a, slice(n - 1, n)), _sl(a, slice(0, 1))
            _harmonic_into(g[last], k[last], k[first], fac)
        out.append(g)
    return (out[0], out[1], out[2])


class _FluxMonitor:
    """Stopping rule on the inlet/outlet flux balance and the change of the effective value."""

    def __init__(
        self, g_in: Array, g_out: Array, axis: int, n: int, scale: float, rtol: float
    ) -> None:
        self.n = n
        self.min_iter = 1
        self.g_in = g_in
        self.g_out = g_out
        self.axis = axis
        self.scale = scale  # effective = flux * scale
        self.rtol = rtol
        self.prev = math.nan
        self.imbalance = math.inf
        self.change = math.inf
        self.flux_in = self.flux_out = 0.0

    def fluxes(self, plane: Any) -> tuple[float, float]:
        u0 = plane(self.axis, 0)
        u1 = plane(self.axis, self.n - 1)
        f_in = float((self.g_in * (1.0 - u0)).sum())
        f_out = float((self.g_out * u1).sum())
        return f_in, f_out

    def __call__(self, it: int, plane: Any, res: float) -> bool:
        self.flux_in, self.flux_out = self.fluxes(plane)
        big = max(abs(self.flux_in), abs(self.flux_out), 1e-300)
        self.imbalance = abs(self.flux_in - self.flux_out) / big
        value = 0.5 * (self.flux_in + self.flux_out) * self.scale
        if math.isfinite(self.prev):
            self.change = abs(value - self.prev) / max(abs(value), 1e-300)
        self.prev = value
        return it >= self.min_iter and self.imbalance <= self.rtol and self.change <= self.rtol


def _solve_direction(
    labels: Array,
    phase_values: Mapping[Any, Any],
    dtype: Any,
    axis: int,
    *,
    periodic: bool,
    spacing: tuple[float, float, float],
    reference: float,
    rtol: float,
    max_iter: int,
    return_fields: bool,
    smooth: int,
) -> ConductionDirection:
    t0 = time.perf_counter()
    xp = get_array_module(labels)
    shape = labels.shape
    name = AXES[axis]
    per = tuple(bool(periodic) and b != axis for b in range(3))
    L = shape[axis] * spacing[axis]
    A = math.prod(shape[b] * spacing[b] for b in range(3) if b != axis)
    # Everything voxel-sized is rebuilt per direction so that only the solve's arrays are alive
    # while it runs.
    k = phase_field(labels, phase_values, dtype)
    ks = k if isinstance(k, tuple) else (k,)
    conductive = ks[0] > 0
    for kb in ks[1:]:
        conductive |= kb > 0
    if len(ks) == 3 and any(bool(((kb == 0) & conductive).any()) for kb in ks):
        # some voxels conduct along one axis but not another: join cells through faces only
        comps = _face_components(face_conductances(k, per, spacing), conductive, per)
    else:
        comps = ndimage_module(xp).label(conductive)
    active = spanning_mask(conductive, axis, per, comps)
    del conductive, comps
    if active is None:
        info = ConvergenceInfo(0, 0.0, 0.0, 0.0, True, time.perf_counter() - t0, "not percolating")
        pot = flux = None
        if return_fields:
            pot = np.full(shape, np.nan)
            flux = np.zeros((3, *shape))
        return ConductionDirection(
            name, 0.0, 0.0, np.zeros(3), False, 0.0, 0.0, info, potential=pot, flux=flux
        )
    for kb in ks:
        kb *= active
    del kb  # the loop variable would keep a conductivity field alive through the solve
    # two-phase (and other single-valued) conductances are kept as uint8 multiples of a scale
    gl = list(face_conductances(k, per, spacing))
    g_scale = [1.0, 1.0, 1.0]
    for a in range(3):
        gl[a], g_scale[a] = compact_conductance(gl[a])
    g = (gl[0], gl[1], gl[2])
    del gl
    face_area = math.prod(spacing[b] for b in range(3) if b != axis)
    bfac = 2.0 * face_area / spacing[axis]
    n = shape[axis]
    first, last = _sl(axis, slice(0, 1)), _sl(axis, slice(n - 1, n))
    k_ax = ks[axis] if len(ks) == 3 else ks[0]
    g_in = (k_ax[first] * bfac).astype(np.float64)
    g_out = (k_ax[last] * bfac).astype(np.float64)
    d = xp.zeros(shape, dtype=k_ax.dtype)
    d[first] += k_ax[first] * bfac
    d[last] += k_ax[last] * bfac
    b = xp.zeros(shape, dtype=k_ax.dtype)
    b[first] = k_ax[first] * bfac
    vdt = k_ax.dtype
    b, b_scale = compact_conductance(b)  # non-zero on the inlet plane only
    del k, ks, k_ax
    weights = tuple(1.0 if i == axis else 0.0 for i in range(3))
    dq, d_scale = compact_conductance(d)  # non-zero on the inlet and outlet planes only
    op = Stencil7(
        g,
        d_lap=dq,
        periodic=per,  # type: ignore[arg-type]
        lap_weights=weights,  # type: ignore[arg-type]
        g_scale=(g_scale[0], g_scale[1], g_scale[2]),
        d_scale=d_scale,
        value_dtype=vdt,
    )
    del dq
    mg = Multigrid(op, smooth=smooth)
    del d
    # initial guess: linear profile (exact for a uniform medium)
    idx = xp.arange(n, dtype=vdt)
    prof = (1.0 - (idx + 0.5) / n).reshape([n if i == axis else 1 for i in range(3)])
    u = xp.broadcast_to(prof.astype(np.float64), shape).copy()
    u *= active
    scale = L / A
    mon = _FluxMonitor(g_in, g_out, axis, n, scale, rtol)
    # float64 solves in place; a lower precision solves for a correction refined against u
    refine = dtype != np.float64
    pinfo = pcg(
        op,
        b,
        xp.zeros(shape, dtype=dtype) if refine else u,
        mg,
        max_iter=max_iter,
        rtol=min(1e-3 * rtol, 1e-10),
        check=mon,
        x_high=u if refine else None,
        b_scale=b_scale,
    )
    del mg
    f_in, f_out = mon.fluxes(lambda a, j: u[_sl(a, slice(j, j + 1))])
    flux_mean = 0.5 * (f_in + f_out)
    eff = flux_mean * scale
    # volume-averaged flux per axis -> tensor column
    V = A * L
    col = np.zeros(3)
    for bx in range(3):
        if bx == axis:
            col[bx] = eff
        else:
            col[bx] = op.total_face_flux(u, bx) * spacing[bx] / V * L
    converged = pinfo.converged
    if pinfo.stop_reason == "exact solution":
        mon.change = 0.0
    imbalance = abs(f_in - f_out) / max(abs(f_in), abs(f_out), 1e-300)
    if not converged and pinfo.stop_reason.startswith("rounding floor") and imbalance <= rtol:
        # solved to rounding in fewer iterations than the change criterion can see (e.g. one)
        converged = True
    info = ConvergenceInfo(
        iterations=pinfo.iterations,
        residual=pinfo.residual,
        flux_imbalance=mon.imbalance,
        property_change=mon.change,
        converged=converged,
        time_s=time.perf_counter() - t0,
        stop_reason=pinfo.stop_reason,
    )
    if not converged:
        warnings.warn(
            f"conduction along {name} did not converge in {pinfo.iterations} iterations "
            f"(flux imbalance {mon.imbalance:.2e}, change {mon.change:.2e}, rtol {rtol:.1e}); "
            "raise max_iter or loosen rtol",
            ConvergenceWarning,
            stacklevel=3,
        )
    pot = flux = None
    if return_fields:
        pot = to_numpy(xp.where(active, u, xp.nan)).astype(np.float64)
        flux = np.zeros((3, *shape))
        for bx in range(3):
            fa = math.prod(spacing[c] for c in range(3) if c != bx)  # area of faces normal to bx
            fb = to_numpy(op.face_flux(u, bx)).astype(np.float64) / fa
            # cell-centred average of the two faces of each cell (boundary faces included)
            lower = np.zeros(shape)
            nb = shape[bx]
            lower[_sl(bx, slice(1, nb))] = fb[_sl(bx, slice(0, nb - 1))]
            if per[bx]:
                lower[_sl(bx, slice(0, 1))] = fb[_sl(bx, slice(nb - 1, nb))]
            upper = fb.copy()
            if not per[bx]:
                upper[_sl(bx, slice(nb - 1, nb))] = 0.0
            if bx == axis:
                lower[_sl(bx, slice(0, 1))] = to_numpy(g_in * (1.0 - u[first])) / fa
                upper[_sl(bx, slice(nb - 1, nb))] = to_numpy(g_out * u[last]) / fa
            flux[bx] = 0.5 * (lower + upper)
    return ConductionDirection(
        direction=name,
        effective=eff,
        relative=eff / reference if reference > 0 else math.nan,
        tensor_column=col,
        percolating=True,
        flux_in=f_in,
        flux_out=f_out,
        info=info,
        potential=pot,
        flux=flux,
    )


def conductivity(
    labels: Array,
    phase_values: Mapping[Any, Any],
    *,
    direction: str | int | Sequence[str | int] = ("z", "y", "x"),
    periodic: bool = False,
    voxel_size: float | Sequence[float] | None = None,
    reference: float | None = None,
    rtol: float = 1e-4,
    max_iter: int = 500,
    return_fields: bool = False,
    dtype: Any = np.float32,
    smooth: int = 2,
) -> ConductionResult:
    """Effective conductivity of a labelled volume by a steady finite-volume solve.

    One unit of potential is dropped from the inlet face to the outlet face of each driven axis;
    the other faces carry no flux (or wrap around with ``periodic=True``).

    Parameters
    ----------
    labels : array of int, shape (nz, ny, nx)
        Phase label per voxel (NumPy, or CuPy to solve on the GPU).
    phase_values : mapping label -> value
        Conductivity (or diffusivity) of each phase, >= 0, in any unit - S/m, W/(m K), m²/s.  Every
        label present in ``labels`` needs an entry.  A value is a number, three numbers (a
        diagonal tensor: values along z, y, x), an array of the volume's shape (a per-voxel
        field, read where the voxel has this label) or an array of shape (3, nz, ny, nx) (per
        voxel and axis).  Faces normal to an axis take the harmonic mean of that axis' values.
    direction : "z", "y", "x", 0, 1, 2 or a sequence of them
        Driven axes (numpy axes 0, 1, 2).
    periodic : bool
        Join the side faces (those parallel to the driven axis) periodically instead of
        insulating them.
    voxel_size : float or (dz, dy, dx), optional
        Voxel edge length in metres; only its ratios matter to the effective value (anisotropic
        voxels), it sets the units of the returned flux fields.
    reference : float, optional
        Value that ``relative`` is relative to; default the largest phase value (of any axis
        and voxel).
    rtol : float
        Stopping tolerance on the inlet/outlet flux imbalance and on the per-iteration change of
        the effective value.
    max_iter : int
        Iteration cap per direction; reaching it raises a ``ConvergenceWarning``.
    return_fields : bool
        Keep the potential and the cell-centred flux density of every direction (float64 copies
        on the host, 4 x 8 bytes per voxel per direction).
    dtype : numpy dtype
        Floating type of the solve (float32 halves the memory and time; float64 for tight rtol).
    smooth : int
        Jacobi sweeps before and after each coarse-grid correction of the multigrid.

    Returns
    -------
    ConductionResult
        Per direction: effective value (phase-value units), relative value, tensor column,
        convergence record, percolation flag and optional fields.
    """
    labels, voxel_size = in_metres(labels, voxel_size)
    _check_volume(labels)
    dirs = parse_directions(direction)
    vs = parse_voxel_size(voxel_size)
    spacing = vs if vs is not None else (1.0, 1.0, 1.0)
    if not phase_values:
        raise ValueError("phase_values must give a conductivity for every label")
    if reference is None:
        reference = largest_value(phase_values)
    if rtol <= 0 or max_iter < 1:
        raise ValueError("rtol must be > 0 and max_iter >= 1")
    dtype = np.dtype(dtype)
    xp = get_array_module(labels)
    labels = xp.asarray(labels)
    results = {}
    for a in dirs:
        results[AXES[a]] = _solve_direction(
            labels,
            phase_values,
            dtype,
            a,
            periodic=periodic,
            spacing=spacing,
            reference=float(reference),
            rtol=rtol,
            max_iter=max_iter,
            return_fields=return_fields,
            smooth=smooth,
        )
    return ConductionResult(
        directions=results,
        reference=float(reference),
        phase_values=describe_values(phase_values),
        shape=tuple(labels.shape),  # type: ignore[arg-type]
        voxel_size=vs,
    )


def tortuosity(
    labels: Array,
    pore_label: Any = 0,
    *,
    direction: str | int | Sequence[str | int] = ("z", "y", "x"),
    periodic: bool = False,
    voxel_size: float | Sequence[float] | None = None,
    rtol: float = 1e-4,
    max_iter: int = 500,
    return_fields: bool = False,
    dtype: Any = np.float32,
) -> TortuosityResult:
    """Tortuosity factor and relative effective diffusivity of one phase.

    Diffusion with ``D0 = 1`` in the phase and 0 elsewhere (the solver of :func:`conductivity`);
    ``tau = porosity * D0 / D_eff`` with ``porosity`` the phase's volume fraction in the whole
    image (TauFactor's definition).

    Parameters
    ----------
    labels : array, shape (nz, ny, nx)
        Integer labels, or a boolean array where True marks the diffusing phase.
    pore_label : int
        Label of the diffusing phase (ignored for a boolean array).
    direction, periodic, voxel_size, rtol, max_iter, return_fields, dtype
        As in :func:`conductivity` (only anisotropic voxels change the result).

    Returns
    -------
    TortuosityResult
        Per direction ``relative_diffusivity`` (``D_eff/D0``), ``tortuosity`` (``inf`` and
        ``percolating=False`` when the phase does not join inlet and outlet), the porosity and
        the convergence record.
    """
    labels, voxel_size = in_metres(labels, voxel_size)
    _check_volume(labels)
    xp = get_array_module(labels)
    labels = xp.asarray(labels)
    mask = labels if labels.dtype == bool else labels == pore_label
    porosity = float(mask.mean())
    res = conductivity(
        mask.view(np.uint8),
        {0: 0.0, 1: 1.0},
        direction=direction,
        periodic=periodic,
        voxel_size=voxel_size,
        reference=1.0,
        rtol=rtol,
        max_iter=max_iter,
        return_fields=return_fields,
        dtype=dtype,
    )
    out = {}
    for d, r in res.directions.items():
        D = r.effective
        tau = porosity / D if D > 0 else math.inf
        out[d] = TortuosityDirection(
            direction=d,
            relative_diffusivity=D,
            tortuosity=tau,
            porosity=porosity,
            percolating=r.percolating,
            tensor_column=r.tensor_column,
            info=r.info,
            conduction=r,
        )
    return TortuosityResult(directions=out, porosity=porosity)
