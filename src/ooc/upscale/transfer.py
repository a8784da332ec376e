"""Per-phase transfer: a finer scan's effective properties become one phase of the coarser scan.

The finer scan (a FIB-SEM or TEM volume of the sub-resolution phase) is solved - whole, or block by
block with :func:`ooc.simulate.property_map` - and its effective properties stand for that phase in
the coarser scan: porosity, ``D_eff/D0`` and conductivity per axis (a diagonal tensor, with the
full tensor where the solver has its columns) and permeability per axis.  The finer scan's axes
are taken to be the coarser scan's axes (z, y, x).

The values feed the coarse solvers directly: ``PhaseProperties.value("relative_diffusivity")``
is a (z, y, x) triple that :func:`ooc.simulate.conductivity` accepts as a phase value, and
``value("permeability")`` one that :func:`ooc.simulate.permeability` accepts in
``porous_phases``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ooc.simulate.result import (
    AXES,
    ConductionResult,
    PermeabilityResult,
    TortuosityResult,
)

__all__ = ["QUANTITIES", "PhaseProperties", "from_block_map", "from_results", "rev_curve"]

QUANTITIES = ("relative_diffusivity", "conductivity", "permeability")
"""Transferred quantities (their names in :func:`ooc.simulate.property_map` too)."""

_STATISTICS = ("mean", "geometric", "harmonic", "median")
_UNITS = {"relative_diffusivity": "1", "conductivity": "phase-value units", "permeability": "m2"}


def _triple(values: Mapping[str, float]) -> tuple[float, float, float]:
    return tuple(float(values.get(a, math.nan)) for a in AXES)  # type: ignore[return-value]


@dataclass(frozen=True)
class PhaseProperties:
    """Effective properties of a finer scan, to stand for one phase of a coarser scan.

    Attributes
    ----------
    porosity : float
        Pore fraction of the finer scan (NaN when no solve reported it).
    relative_diffusivity : (z, y, x) or None
        ``D_eff / D0`` of the pore space per axis (NaN for an axis not solved).
    conductivity : (z, y, x) or None
        Effective conductivity per axis, in the units of the finer scan's phase values.
    permeability : (z, y, x) or None
        Permeability per axis, m².
    diffusivity_tensor, conductivity_tensor : (3, 3) arrays or None
        Full effective tensors (columns of the driven axes; NaN elsewhere) from whole solves.
    spread : dict
        Per quantity, the standard deviation across blocks per axis (block-map route only).
    n_blocks : int
        Blocks the statistics were taken over (0 for a whole solve).
    source : str
        Where the values came from, in words.
    """

    porosity: float
    relative_diffusivity: tuple[float, float, float] | None = None
    conductivity: tuple[float, float, float] | None = None
    permeability: tuple[float, float, float] | None = None
    diffusivity_tensor: np.ndarray | None = None
    conductivity_tensor: np.ndarray | None = None
    spread: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    n_blocks: int = 0
    source: str = ""

    @property
    def tortuosity(self) -> tuple[float, float, float] | None:
        """Tortuosity factor ``porosity / (D_eff/D0)`` per axis (inf where D is 0)."""
        if self.relative_diffusivity is None:
            return None
        return tuple(  # type: ignore[return-value]
            self.porosity / d if d > 0 else (math.inf if d == 0 else math.nan)
            for d in self.relative_diffusivity
        )

    def value(self, quantity: str, *, isotropic: bool = False) -> Any:
        """The value of ``quantity`` for a coarse solver's phase table.

        Parameters
        ----------
        quantity : {"relative_diffusivity", "conductivity", "permeability"}
        isotropic : bool
            Return one number, the geometric mean of the solved axes, instead of a (z, y, x)
            triple (use it when only some axes were solved).

        Returns
        -------
        float or (float, float, float)
        """
        if quantity not in QUANTITIES:
            raise ValueError(f"quantity must be one of {QUANTITIES}; got {quantity!r}")
        vals = getattr(self, quantity)
        if vals is None:
            raise ValueError(f"{quantity} was not transferred (source: {self.source})")
        finite = [v for v in vals if math.isfinite(v)]
        if isotropic:
            if not finite:
                raise ValueError(f"{quantity} has no solved axis")
            if min(finite) <= 0:
                return 0.0
            return float(math.exp(sum(math.log(v) for v in finite) / len(finite)))
        missing = [a for a, v in zip(AXES, vals, strict=True) if not math.isfinite(v)]
        if missing:
            raise ValueError(
                f"{quantity} was not solved along {missing}; solve all three axes or pass "
                "isotropic=True"
            )
        return tuple(float(v) for v in vals)

    def to_dataset(self) -> Any:
        """The values as an ``xarray.Dataset`` with a ``direction`` dimension (z, y, x)."""
        import xarray as xr

        data: dict[str, Any] = {}
        for q in QUANTITIES:
            vals = getattr(self, q)
            if vals is not None:
                data[q] = ("direction", list(vals), {"units": _UNITS[q]})
                if q in self.spread:
                    data[f"{q}_spread"] = ("direction", list(self.spread[q]), {"units": _UNITS[q]})
        tau = self.tortuosity
        if tau is not None:
            data["tortuosity"] = ("direction", list(tau), {"units": "1"})
        for name in ("diffusivity_tensor", "conductivity_tensor"):
            t = getattr(self, name)
            if t is not None:
                data[name] = (("direction", "component"), np.asarray(t))
        ds = xr.Dataset(data, coords={"direction": list(AXES), "component": list(AXES)})
        ds.attrs.update(
            {"porosity": self.porosity, "n_blocks": self.n_blocks, "source": self.source}
        )
        return ds


def from_results(
    *,
    diffusion: TortuosityResult | None = None,
    conduction: ConductionResult | None = None,
    flow: PermeabilityResult | None = None,
    porosity: float | None = None,
) -> PhaseProperties:
    """Phase properties from whole-volume solves of the finer scan.

    Parameters
    ----------
    diffusion : TortuosityResult, optional
        :func:`ooc.simulate.tortuosity` of the finer scan's pore space.
    conduction : ConductionResult, optional
        :func:`ooc.simulate.conductivity` of the finer scan (its ``effective`` values, in the
        units of its phase values, become the phase's conductivity).
    flow : PermeabilityResult, optional
        :func:`ooc.simulate.permeability` of the finer scan (m²; needs its voxel size).
    porosity : float, optional
        The finer scan's pore fraction; default the one the diffusion or flow solve reports.

    Returns
    -------
    PhaseProperties
        Axes not solved hold NaN; tensors hold the solved columns.
    """
    if diffusion is None and conduction is None and flow is None:
        raise ValueError("give at least one of diffusion, conduction, flow")
    if porosity is None:
        porosity = (
            diffusion.porosity
            if diffusion is not None
            else flow.porosity
            if flow is not None
            else math.nan
        )
    if flow is not None and flow.voxel_size is None:
        raise ValueError("flow: the permeability solve needs a voxel_size to give m²")
    dtensor = ctensor = None
    rel = cond = perm = None
    if diffusion is not None:
        rel = _triple(diffusion.relative_diffusivity)
        dtensor = np.full((3, 3), np.nan)
        for d, r in diffusion.directions.items():
            dtensor[:, AXES.index(d)] = r.tensor_column
    if conduction is not None:
        cond = _triple(conduction.effective)
        ctensor = conduction.tensor
    if flow is not None:
        perm = _triple(flow.k_m2)
    parts = [
        n for n, r in (("diffusion", diffusion), ("conduction", conduction), ("flow", flow)) if r
    ]
    return PhaseProperties(
        porosity=float(porosity),
        relative_diffusivity=rel,
        conductivity=cond,
        permeability=perm,
        diffusivity_tensor=dtensor,
        conductivity_tensor=ctensor,
        source="whole solve (" + ", ".join(parts) + ")",
    )


def _combine(v: np.ndarray, statistic: str) -> float:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan
    if statistic == "mean":
        return float(v.mean())
    if statistic == "median":
        return float(np.median(v))
    if statistic == "geometric":
        return 0.0 if (v <= 0).any() else float(np.exp(np.log(v).mean()))
    return 0.0 if (v <= 0).any() else float(1.0 / np.mean(1.0 / v))  # harmonic


def from_block_map(
    block_map: Any, *, statistic: str = "mean", complete_only: bool = True
) -> PhaseProperties:
    """Phase properties from the statistics of a block map of the finer scan.

    Parameters
    ----------
    block_map : xarray.Dataset
        Output of :func:`ooc.simulate.property_map` (blocks ``z, y, x``, ``direction``).
    statistic : {"mean", "geometric", "harmonic", "median"}
        How block values combine into the phase's value (per axis).  For a coarse solve over
        the blocks instead, see :func:`ooc.upscale.upscale_blocks`.
    complete_only : bool
        Leave out the smaller blocks at the volume's far edges.

    Returns
    -------
    PhaseProperties
        Values per axis, their standard deviation across blocks in ``spread``, the mean block
        porosity as ``porosity``.
    """
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {_STATISTICS}; got {statistic!r}")
    ds = block_map
    keep = _complete(ds) if complete_only else np.ones(ds.porosity.shape, bool)
    n = int(keep.sum())
    if n == 0:
        raise ValueError("the block map has no complete block; pass complete_only=False")
    dirs = [str(d) for d in ds.direction.values]
    out: dict[str, Any] = {}
    spread: dict[str, tuple[float, float, float]] = {}
    for q in QUANTITIES:
        if q not in ds:
            continue
        vals, sd = {}, {}
        for d in dirs:
            v = np.asarray(ds[q].sel(direction=d).values)[keep]
            vals[d] = _combine(v, statistic)
            sd[d] = float(np.std(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan
        out[q] = _triple(vals)
        spread[q] = _triple(sd)
    bs = ds.attrs.get("block_shape")
    return PhaseProperties(
        porosity=float(np.asarray(ds.porosity.values)[keep].mean()),
        relative_diffusivity=out.get("relative_diffusivity"),
        conductivity=out.get("conductivity"),
        permeability=out.get("permeability"),
        spread=spread,
        n_blocks=n,
        source=f"block map: {statistic} of {n} blocks of {bs} voxels",
    )


def _complete(ds: Any) -> np.ndarray:
    """Blocks of the full block shape (the largest along each axis)."""
    sizes = [np.asarray(ds[f"{a}_size"].values) for a in AXES]
    masks = [s == s.max() for s in sizes]
    return masks[0][:, None, None] & masks[1][None, :, None] & masks[2][None, None, :]


def rev_curve(
    volume: Any,
    block_sizes: Sequence[int],
    *,
    voxel_size: float | Sequence[float],
    properties: Sequence[str] = ("diffusivity",),
    **options: Any,
) -> Any:
    """The REV check: how block properties change with block size.

    Runs :func:`ooc.simulate.property_map` at every size (complete blocks only) and reports,
    per size and axis, the mean, standard deviation and coefficient of variation of each
    property.  A representative volume is reached where the mean stops changing and the spread
    is small: ``relative_change`` is the change of the mean from the next smaller size.

    Parameters
    ----------
    volume : array of int, shape (nz, ny, nx)
        Labels (NumPy or Dask).
    block_sizes : sequence of int
        Cubic block edges in voxels, increasing.
    voxel_size : float or (dz, dy, dx)
        Metres.
    properties : sequence of {"permeability", "diffusivity", "conductivity"}
        As in :func:`ooc.simulate.property_map`.
    **options
        Passed on to :func:`ooc.simulate.property_map` (``pore_label``, ``phase_values``,
        ``direction``, ``margin``, ``rtol`` ...).

    Returns
    -------
    xarray.Dataset
        Dimensions ``block_size`` and ``direction``; for each transferred quantity ``q``:
        ``q_mean``, ``q_std``, ``q_cv``, ``q_relative_change``; ``porosity_mean`` and
        ``porosity_std`` per size and ``n_blocks``.
    """
    import xarray as xr

    from ooc.simulate import property_map

    sizes = [int(b) for b in block_sizes]
    if not sizes or sizes != sorted(sizes) or min(sizes) < 2:
        raise ValueError(f"block_sizes must be increasing ints >= 2; got {list(block_sizes)}")
    if any(b > min(volume.shape) for b in sizes):
        raise ValueError(
            f"block_sizes {sizes} must not exceed the volume's smallest edge {min(volume.shape)}"
        )
    rows = []
    for b in sizes:
        ds = property_map(
            volume, block_shape=b, voxel_size=voxel_size, properties=properties, **options
        )
        keep = _complete(ds)
        row: dict[str, Any] = {
            "n_blocks": int(keep.sum()),
            "porosity_mean": float(np.asarray(ds.porosity.values)[keep].mean()),
            "porosity_std": float(np.asarray(ds.porosity.values)[keep].std()),
            "direction": [str(d) for d in ds.direction.values],
        }
        for q in QUANTITIES:
            if q in ds:
                v = np.moveaxis(np.asarray(ds[q].values), 3, 0)[:, keep]
                mean = np.array([np.nanmean(x) for x in v])
                std = np.array([np.nanstd(x) for x in v])
                row[q] = (mean, std)
        rows.append(row)
    dirs = rows[0]["direction"]
    data: dict[str, Any] = {
        "n_blocks": ("block_size", [r["n_blocks"] for r in rows]),
        "porosity_mean": ("block_size", [r["porosity_mean"] for r in rows]),
        "porosity_std": ("block_size", [r["porosity_std"] for r in rows]),
    }
    for q in QUANTITIES:
        if q not in rows[0]:
            continue
        mean = np.stack([r[q][0] for r in rows])
        std = np.stack([r[q][1] for r in rows])
        with np.errstate(divide="ignore", invalid="ignore"):
            cv = np.where(mean != 0, std / np.abs(mean), np.nan)
            change = np.full_like(mean, np.nan)
            change[1:] = np.abs(mean[1:] - mean[:-1]) / np.abs(mean[1:])
        dims = ("block_size", "direction")
        data[f"{q}_mean"] = (dims, mean)
        data[f"{q}_std"] = (dims, std)
        data[f"{q}_cv"] = (dims, cv)
        data[f"{q}_relative_change"] = (dims, change)
    out = xr.Dataset(data, coords={"block_size": sizes, "direction": dirs})
    out.attrs["method"] = "ooc.upscale.rev_curve: property_map at each block size, complete blocks"
    return out
