"""Block-wise property maps: one independent solve per sub-volume, one Dask task per block.

The volume (a ``dask.array`` of labels, e.g. read lazily from Zarr) is cut into blocks of a
user-chosen shape (an REV, say).  Each block is a separate, complete problem - its own inlet and
outlet faces, insulating/free-slip sides - so blocks do not talk to each other and the map does
not depend on how the input happened to be chunked, only on ``block_shape``.  Every block becomes
one task (``map_blocks`` over the rechunked array), so the work runs on whatever Dask scheduler is
active (threads, processes, a ``distributed`` cluster) and the memory of a worker is bounded by one
block's solve (see :func:`ooc.simulate.estimate_memory`).

Oversampling (``margin > 0``): each block is solved together with ``margin`` voxels of its
neighbours on every side (fewer at the volume's edge), and its property is taken from the inner
part only - the volume-averaged flux (velocity) over the block divided by the volume-averaged
potential (pressure) gradient over it, which is the difference of the mean potential on the
block's outlet and inlet faces over its length (means over the conducting part of each face).
The closed sides and
the fixed-potential faces of the local problem then sit ``margin`` voxels away from the block, which
cuts the boundary error that a coarse solve over the map inherits (Wu, Efendiev and Hou, 2002).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ooc.simulate.conduction import (
    conductivity,
    parse_directions,
    parse_voxel_size,
    phase_field,
    tortuosity,
)
from ooc.simulate.multigrid import solver_threads
from ooc.simulate.result import AXES, ConductionDirection, ConvergenceWarning
from ooc.simulate.stokes import permeability
from ooc.volume import in_metres

__all__ = ["property_map"]

_PROPS = ("porosity", "permeability", "diffusivity", "conductivity")


def _layout(props: Sequence[str], ndir: int) -> list[tuple[str, int]]:
    """(name, width) of the packed per-block output vector."""
    out: list[tuple[str, int]] = [("porosity", 1), ("block_voxels", 1)]
    if "permeability" in props:
        out += [("permeability", ndir), ("permeability_converged", ndir)]
    if "diffusivity" in props:
        out += [
            ("relative_diffusivity", ndir),
            ("tortuosity", ndir),
            ("diffusivity_converged", ndir),
        ]
    if "conductivity" in props:
        out += [
            ("conductivity", ndir),
            ("relative_conductivity", ndir),
            ("conductivity_converged", ndir),
        ]
    return out


def _face_mean(
    potential: np.ndarray,
    axis: int,
    j: int,
    inner: tuple[slice, ...],
    k: np.ndarray | None,
) -> float:
    """Mean potential on face ``j`` (between cells ``j - 1`` and ``j`` along ``axis``) over the
    inner part's cross-section.

    Where both cells take part, the face value of the finite volumes: the two cell values
    weighted by the cells' conductivities ``k`` (equal weights without ``k``); else the value of
    the one that does.  The inlet and outlet faces of the solved region hold 1 and 0.
    """
    n = potential.shape[axis]
    if j == 0:
        return 1.0
    if j == n:
        return 0.0
    cross = tuple(inner[c] if c != axis else slice(None) for c in range(3))
    p = np.moveaxis(potential[cross], axis, 0)
    lo, hi = p[j - 1], p[j]
    if k is None:
        w_lo = w_hi = np.ones(lo.shape)
    else:
        kk = np.moveaxis(k[cross], axis, 0)
        w_lo, w_hi = kk[j - 1], kk[j]
    both = np.isfinite(lo) & np.isfinite(hi) & (w_lo + w_hi > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mixed = (w_lo * lo + w_hi * hi) / (w_lo + w_hi)
    v = np.where(both, mixed, np.where(np.isfinite(lo), lo, hi))
    return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan


def inner_effective(
    potential: np.ndarray,
    flux: np.ndarray,
    inner: tuple[slice, slice, slice],
    axis: int,
    spacing: float,
    conductivity: np.ndarray | None = None,
) -> float:
    """Effective coefficient of the ``inner`` part of a solved block: ``-<q_a> / <dP/dx_a>``.

    ``<q_a>`` is the flux density (velocity) averaged over the inner part's volume, ``<dP/dx_a>``
    the potential (pressure) gradient averaged over it - by the divergence theorem, the
    difference of the mean potential on its outlet and inlet faces over its length (means over
    the conducting part of each face).

    Parameters
    ----------
    potential : array (nz, ny, nx)
        Potential (pressure) of the solve driven along ``axis`` from 1 at its inlet face to 0 at
        its outlet face; NaN in cells that take no part.
    flux : array (nz, ny, nx)
        Cell-centred flux density (velocity) along ``axis``, 0 in cells that take no part.
    inner : three slices
        The block inside the solved (extended) region.
    axis : int
        Driven axis.
    spacing : float
        Voxel edge along ``axis``, in the length unit of the gradient.
    conductivity : array (nz, ny, nx), optional
        The cells' conductivity along ``axis`` (weights of the face values between unlike
        cells); equal weights without it (one conducting phase, or flow).

    Returns
    -------
    float
        ``-mean(flux[inner]) / gradient``; 0 when nothing flows through the inner part.
    """
    q = float(np.mean(flux[inner]))
    s = inner[axis]
    start, stop = s.indices(potential.shape[axis])[:2]
    p_in = _face_mean(potential, axis, start, inner, conductivity)
    p_out = _face_mean(potential, axis, stop, inner, conductivity)
    grad = (p_out - p_in) / ((stop - start) * spacing)
    if not math.isfinite(grad) or grad >= 0 or q <= 0:
        return 0.0
    return -q / grad


def _inner_of(
    r: ConductionDirection,
    inner: tuple[slice, slice, slice],
    axis: int,
    spacing: float,
    conductivity: np.ndarray | None = None,
) -> float:
    """:func:`inner_effective` of a conduction solve that kept its fields."""
    if not r.percolating or r.potential is None or r.flux is None:
        return 0.0
    return inner_effective(r.potential, r.flux[axis], inner, axis, spacing, conductivity)


def _block_properties(
    block: np.ndarray,
    *,
    props: tuple[str, ...],
    dirs: tuple[int, ...],
    pore_label: Any,
    voxel_size: tuple[float, float, float] | None,
    phase_values: Mapping[Any, float] | None,
    porous_phases: Mapping[Any, float] | None,
    rtol: float,
    max_iter: int,
    periodic: bool,
    threads: int,
    inner: tuple[slice, slice, slice] | None = None,
) -> np.ndarray:
    """All requested properties of one block, packed in a float64 vector (see ``_layout``).

    With ``inner``, ``block`` is the block with its oversampling margin and the properties are
    those of ``block[inner]`` (see :func:`inner_effective`).
    """
    with solver_threads(threads):
        return _block_properties_inner(
            np.asarray(block),
            inner=inner,
            props=props,
            dirs=dirs,
            pore_label=pore_label,
            voxel_size=voxel_size,
            phase_values=phase_values,
            porous_phases=porous_phases,
            rtol=rtol,
            max_iter=max_iter,
            periodic=periodic,
        )


def _block_properties_inner(
    block: np.ndarray,
    *,
    props: tuple[str, ...],
    dirs: tuple[int, ...],
    pore_label: Any,
    voxel_size: tuple[float, float, float] | None,
    phase_values: Mapping[Any, float] | None,
    porous_phases: Mapping[Any, float] | None,
    rtol: float,
    max_iter: int,
    periodic: bool,
    inner: tuple[slice, slice, slice] | None,
) -> np.ndarray:
    ndir = len(dirs)
    core = block if inner is None else block[inner]
    porosity = float((core == pore_label).mean())
    vals: dict[str, list[float]] = {"porosity": [porosity], "block_voxels": [float(core.size)]}
    fields = inner is not None
    spacing = voxel_size if voxel_size is not None else (1.0, 1.0, 1.0)
    h0 = math.prod(spacing) ** (1.0 / 3.0)
    with warnings.catch_warnings():
        # Non-convergence is recorded per block in *_converged instead of raised from workers.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if "permeability" in props:
            pr = permeability(
                block,
                pore_label=pore_label,
                voxel_size=voxel_size,
                porous_phases=porous_phases,
                direction=dirs,
                periodic=periodic,
                rtol=rtol,
                max_iter=max_iter,
                return_velocity=fields,
            )
            if inner is None:
                vals["permeability"] = [pr[AXES[a]].permeability_m2 for a in dirs]
            else:
                # velocity and pressure in units of h0 = (dz dy dx)^(1/3), viscosity 1
                vals["permeability"] = [
                    inner_effective(
                        pr[AXES[a]].pressure,
                        pr[AXES[a]].velocity[a],
                        inner,
                        a,
                        spacing[a] / h0,
                    )
                    * h0
                    * h0
                    if pr[AXES[a]].percolating
                    else 0.0
                    for a in dirs
                ]
            vals["permeability_converged"] = [float(pr[AXES[a]].info.converged) for a in dirs]
        if "diffusivity" in props:
            # D_eff/D0 depends only on the voxel's edge ratios: cubic voxels solve in voxel units
            rel_edges = tuple(v / min(spacing) for v in spacing)
            tr = tortuosity(
                block,
                pore_label,
                direction=dirs,
                periodic=periodic,
                voxel_size=rel_edges,
                rtol=rtol,
                max_iter=max_iter,
                return_fields=fields,
            )
            if inner is None:
                rel = [tr[AXES[a]].relative_diffusivity for a in dirs]
            else:
                rel = [_inner_of(tr[AXES[a]].conduction, inner, a, rel_edges[a]) for a in dirs]
            vals["relative_diffusivity"] = rel
            vals["tortuosity"] = [porosity / d if d > 0 else math.inf for d in rel]
            vals["diffusivity_converged"] = [float(tr[AXES[a]].info.converged) for a in dirs]
        if "conductivity" in props:
            assert phase_values is not None
            cr = conductivity(
                block,
                phase_values,
                direction=dirs,
                periodic=periodic,
                voxel_size=voxel_size,
                rtol=rtol,
                max_iter=max_iter,
                return_fields=fields,
            )
            if inner is None:
                eff = [cr[AXES[a]].effective for a in dirs]
            else:
                k = phase_field(block, phase_values, np.float64)
                ks = k if isinstance(k, tuple) else (k, k, k)
                eff = [_inner_of(cr[AXES[a]], inner, a, spacing[a], ks[a]) for a in dirs]
            vals["conductivity"] = eff
            vals["relative_conductivity"] = [
                e / cr.reference if cr.reference > 0 else math.nan for e in eff
            ]
            vals["conductivity_converged"] = [float(cr[AXES[a]].info.converged) for a in dirs]
    out = []
    for name, width in _layout(props, ndir):
        v = vals[name]
        assert len(v) == width
        out.extend(v)
    return np.asarray(out, dtype=np.float64).reshape(1, 1, 1, -1)


def property_map(
    volume: Any,
    *,
    block_shape: int | Sequence[int],
    voxel_size: float | Sequence[float] | None = None,
    pore_label: Any = 0,
    properties: Sequence[str] = ("porosity", "permeability", "diffusivity"),
    phase_values: Mapping[Any, float] | None = None,
    porous_phases: Mapping[Any, float] | None = None,
    direction: str | int | Sequence[str | int] = ("z", "y", "x"),
    periodic: bool = False,
    rtol: float = 1e-3,
    max_iter: int = 2000,
    threads_per_block: int = 1,
    compute: bool = True,
    margin: int | Sequence[int] = 0,
) -> Any:
    """Map of effective properties, one independent solve per block of the volume.

    Parameters
    ----------
    volume : dask.array.Array or numpy.ndarray of int, shape (nz, ny, nx)
        Phase labels (lazy is fine: blocks are read by the tasks that need them).
    block_shape : int or (bz, by, bx)
        Voxels per block along each axis (e.g. an REV).  Edge blocks are smaller where the shape
        does not divide; ``block_voxels`` in the result says how big each block is.
    voxel_size : float or (dz, dy, dx), optional
        Voxel edge in metres; sets the block-centre coordinates (metres) and the permeability
        units (m²). Taken from ``volume`` when it is what :func:`ooc.open_volume` returns.
    pore_label : int
        Label of the pore (free-fluid, diffusing) phase.
    properties : sequence of {"porosity", "permeability", "diffusivity", "conductivity"}
        What to compute ("porosity" is always included).
    phase_values : mapping label -> conductivity, optional
        Needed for "conductivity" (units of the result are those of the values); a value is a
        number or three numbers (z, y, x), as in :func:`ooc.simulate.conductivity`.
    porous_phases : mapping label -> permeability in m², optional
        Sub-resolution porous phases for the Stokes-Brinkman permeability (a number or three
        numbers per phase).
    direction : axis names or numbers
        Driven directions (the ``direction`` dimension of the result).
    periodic : bool
        Periodic side faces in every block solve.
    rtol, max_iter
        Stopping tolerance and iteration cap of every solve (see the solvers).
    threads_per_block : int
        Threads of the solver kernels inside one block task (Dask already runs blocks in
        parallel; raise it for a few large blocks on many cores).
    compute : bool
        Compute now (default) or return a Dataset backed by a lazy Dask array.
    margin : int or (mz, my, mx)
        Oversampling: voxels of the neighbouring blocks solved together with each block (clipped
        at the volume's edge); the block's properties are then those of its inner part (flux
        over the block divided by the macroscopic gradient across it).  0: every block alone.

    Returns
    -------
    xarray.Dataset
        Dimensions ``z``, ``y``, ``x`` (block index, with block-centre coordinates in metres) and
        ``direction``.  Variables: ``porosity``, ``block_voxels`` and, as requested,
        ``permeability`` (m²), ``permeability_mD``, ``relative_diffusivity`` (``D_eff/D0``),
        ``tortuosity``, ``conductivity``, ``relative_conductivity`` and ``*_converged`` flags.
    """
    import dask.array as da
    import xarray as xr

    from ooc.simulate.result import MILLIDARCY_M2

    props = tuple(dict.fromkeys(["porosity", *properties]))
    bad = [p for p in props if p not in _PROPS]
    if bad:
        raise ValueError(f"unknown properties {bad}; choose from {_PROPS}")
    if "conductivity" in props and not phase_values:
        raise ValueError("properties include 'conductivity': give phase_values")
    volume, voxel_size = in_metres(volume, voxel_size, lazy=True)
    vs = parse_voxel_size(voxel_size)
    if vs is None:
        raise ValueError(
            "voxel_size: give it in metres, or pass the DataArray ooc.open_volume returns"
        )
    dirs = tuple(parse_directions(direction))
    if not isinstance(volume, da.Array):
        volume = da.from_array(np.asarray(volume), chunks=-1)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (z, y, x); got shape {volume.shape}")
    if volume.dtype.kind not in "iub":
        raise ValueError(f"volume must hold integer labels; got dtype {volume.dtype}")
    bs = (int(block_shape),) * 3 if isinstance(block_shape, int | np.integer) else block_shape
    bs = tuple(int(b) for b in bs)
    if len(bs) != 3 or min(bs) < 1:
        raise ValueError(f"block_shape must be one or three positive ints; got {block_shape}")
    mg = (int(margin),) * 3 if isinstance(margin, int | np.integer) else margin
    mg = tuple(int(m) for m in mg)
    if len(mg) != 3 or min(mg) < 0:
        raise ValueError(f"margin must be one or three ints >= 0; got {margin}")
    vol = volume.rechunk(bs)
    layout = _layout(props, len(dirs))
    width = sum(w for _, w in layout)
    opts = {
        "props": props,
        "dirs": dirs,
        "pore_label": pore_label,
        "voxel_size": vs,
        "phase_values": dict(phase_values) if phase_values else None,
        "porous_phases": dict(porous_phases) if porous_phases else None,
        "rtol": rtol,
        "max_iter": max_iter,
        "periodic": periodic,
        "threads": int(threads_per_block),
    }
    if any(mg):
        packed = _oversampled(volume, vol.chunks, mg, width, opts)
    else:
        packed = da.map_blocks(
            _block_properties,
            vol,
            **opts,
            new_axis=3,
            chunks=(
                tuple(1 for _ in vol.chunks[0]),
                tuple(1 for _ in vol.chunks[1]),
                tuple(1 for _ in vol.chunks[2]),
                (width,),
            ),
            dtype=np.float64,
            meta=np.empty((0, 0, 0, 0), dtype=np.float64),
            name="ooc-simulate-block",
        )
    if compute:
        packed = packed.compute()
    coords: dict[str, Any] = {}
    for ax, name in enumerate(AXES):
        starts = np.cumsum((0, *vol.chunks[ax][:-1]))
        sizes = np.asarray(vol.chunks[ax])
        coords[name] = (name, (starts + sizes / 2.0) * vs[ax], {"units": "m"})
        coords[f"{name}_start"] = (name, starts.astype(np.int64))
        coords[f"{name}_size"] = (name, sizes.astype(np.int64))
    coords["direction"] = [AXES[a] for a in dirs]
    data: dict[str, Any] = {}
    col = 0
    for name, w in layout:
        arr = packed[..., col : col + w]
        col += w
        if w == 1 and name in ("porosity", "block_voxels"):
            data[name] = (("z", "y", "x"), arr[..., 0])
        else:
            if name.endswith("_converged"):
                arr = arr.astype(bool)
            data[name] = (("z", "y", "x", "direction"), arr)
    if "permeability" in data:
        data["permeability_mD"] = (
            ("z", "y", "x", "direction"),
            data["permeability"][1] / MILLIDARCY_M2,
        )
    ds = xr.Dataset(data, coords=coords)
    units = {
        "porosity": "1",
        "permeability": "m2",
        "permeability_mD": "mD",
        "relative_diffusivity": "1",
        "tortuosity": "1",
        "relative_conductivity": "1",
    }
    for k, u in units.items():
        if k in ds:
            ds[k].attrs["units"] = u
    ds.attrs.update(
        {
            "block_shape": list(bs),
            "voxel_size_m": list(vs),
            "pore_label": repr(pore_label),
            "rtol": rtol,
            "margin": list(mg),
            "method": "ooc.simulate.property_map: independent solve per block",
        }
    )
    if any(mg):
        ds.attrs["note"] = (
            f"each block is solved with a margin of {list(mg)} voxels of its neighbours; its "
            "properties are the inner part's flux over its macroscopic gradient"
        )
    else:
        ds.attrs["note"] = "each block is solved alone (own inlet/outlet faces, closed sides)"
    return ds


def _oversampled(
    volume: Any,
    chunks: tuple[tuple[int, ...], ...],
    margin: tuple[int, int, int],
    width: int,
    opts: dict[str, Any],
) -> Any:
    """One task per block over the block plus its margin (clipped at the volume's edge)."""
    import dask
    import dask.array as da

    edges = [np.cumsum((0, *c)) for c in chunks]
    solve = dask.delayed(_block_properties, pure=True)

    def one(i: int, j: int, k: int) -> Any:
        ext, inner = [], []
        for ax, idx in enumerate((i, j, k)):
            s, e = int(edges[ax][idx]), int(edges[ax][idx + 1])
            lo, hi = max(0, s - margin[ax]), min(volume.shape[ax], e + margin[ax])
            ext.append(slice(lo, hi))
            inner.append(slice(s - lo, e - lo))
        task = solve(volume[tuple(ext)], inner=tuple(inner), **opts)
        return da.from_delayed(task, shape=(1, 1, 1, width), dtype=np.float64)

    n = [len(c) for c in chunks]
    planes = []
    for i in range(n[0]):
        rows = [da.concatenate([one(i, j, k) for k in range(n[2])], axis=2) for j in range(n[1])]
        planes.append(da.concatenate(rows, axis=1))
    return da.concatenate(planes, axis=0)
