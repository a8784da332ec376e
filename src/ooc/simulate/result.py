"""Result objects of the simulations: small dataclasses, no plotting, convertible to xarray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "AXES",
    "ConductionDirection",
    "ConductionResult",
    "ConvergenceInfo",
    "ConvergenceWarning",
    "FlowDirection",
    "PermeabilityResult",
    "TortuosityDirection",
    "TortuosityResult",
]

AXES: tuple[str, str, str] = ("z", "y", "x")
MILLIDARCY_M2 = 9.869233e-16  # 1 mD in m²


class ConvergenceWarning(RuntimeWarning):
    """A solver stopped before its stopping rule was met; the result may be inaccurate."""


@dataclass(frozen=True)
class ConvergenceInfo:
    """How a solve for one direction ended.

    Attributes
    ----------
    iterations : int
        Krylov iterations (one multigrid-preconditioned step each).
    residual : float
        Final relative residual ``||b - A x|| / ||b||`` of the linear system.
    flux_imbalance : float
        ``|F_in - F_out| / max(|F_in|, |F_out|)`` between the inlet and outlet faces (for flow:
        the volume flow rates through the two faces).
    property_change : float
        Relative change of the effective property over the last iteration.
    converged : bool
        True when the stopping rule was met (``flux_imbalance <= rtol`` and
        ``property_change <= rtol``), when the residual reached its rounding floor with balanced
        fluxes, or when there was nothing to solve.
    time_s : float
        Wall time of the solve for this direction, set-up included, in seconds.
    stop_reason : str
        Why the iteration stopped.
    """

    iterations: int
    residual: float
    flux_imbalance: float
    property_change: float
    converged: bool
    time_s: float
    stop_reason: str


@dataclass
class ConductionDirection:
    """Steady conduction driven along one axis (unit potential drop from inlet to outlet).

    Attributes
    ----------
    direction : str
        ``"z"``, ``"y"`` or ``"x"`` (numpy axes 0, 1, 2).
    effective : float
        Effective conductivity along the driven axis, in the units of the phase values
        (S/m, W/(m K), m²/s ... when those are given in SI).
    relative : float
        ``effective / reference`` (dimensionless).
    tensor_column : numpy.ndarray, shape (3,)
        Column of the effective conductivity tensor for this driving direction, rows ``z, y, x``:
        ``sigma_bd = <q_b> L_d / dV`` with ``<q_b>`` the volume-averaged flux density along ``b``.
        The diagonal entry equals ``effective``.
    percolating : bool
        False when no conducting path joins the inlet to the outlet; then ``effective == 0``.
    flux_in, flux_out : float
        Total flux through the inlet and outlet faces, in phase-value units times metres (times
        the potential drop); voxel units (voxel size 1) when no voxel size was given.
    info : ConvergenceInfo
    potential : numpy.ndarray or None, shape (nz, ny, nx)
        Potential (1 at the inlet face, 0 at the outlet face); NaN in cells that take no part.
    flux : numpy.ndarray or None, shape (3, nz, ny, nx)
        Cell-centred flux density (components z, y, x), in phase-value units per metre of length
        for a unit potential drop (per voxel when no voxel size was given).
    """

    direction: str
    effective: float
    relative: float
    tensor_column: np.ndarray
    percolating: bool
    flux_in: float
    flux_out: float
    info: ConvergenceInfo
    potential: np.ndarray | None = None
    flux: np.ndarray | None = None


class _PerDirection:
    """What every per-direction result shares: lookup by axis name, one value per direction,
    and convergence of every solve."""

    directions: dict[str, Any]

    def __getitem__(self, direction: str) -> Any:
        return self.directions[direction]

    def _each(self, name: str) -> dict[str, float]:
        return {k: getattr(v, name) for k, v in self.directions.items()}

    @property
    def converged(self) -> bool:
        """Whether the solve of every direction converged."""
        return all(r.info.converged for r in self.directions.values())


@dataclass
class ConductionResult(_PerDirection):
    """Effective conductivity per driven direction (see :func:`ooc.simulate.conductivity`)."""

    directions: dict[str, ConductionDirection]
    reference: float
    phase_values: dict[Any, Any]
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float] | None

    @property
    def effective(self) -> dict[str, float]:
        """Effective conductivity per direction, in the units of the phase values."""
        return self._each("effective")

    @property
    def relative(self) -> dict[str, float]:
        """Effective conductivity per direction relative to ``reference``."""
        return self._each("relative")

    @property
    def tensor(self) -> np.ndarray:
        """3x3 effective tensor (rows/columns ``z, y, x``); NaN in columns not driven."""
        t = np.full((3, 3), np.nan)
        for d, r in self.directions.items():
            t[:, AXES.index(d)] = r.tensor_column
        return t

    def to_dataset(self) -> Any:
        """The scalars (and fields, if computed) as an ``xarray.Dataset`` with a ``direction`` dim."""
        import xarray as xr

        dirs = list(self.directions)
        rs = [self.directions[d] for d in dirs]
        data: dict[str, Any] = {
            "effective_conductivity": ("direction", [r.effective for r in rs]),
            "relative_conductivity": ("direction", [r.relative for r in rs]),
            "tensor_column": (("direction", "component"), np.stack([r.tensor_column for r in rs])),
            "percolating": ("direction", [r.percolating for r in rs]),
            **_info_vars(rs),
        }
        if all(r.potential is not None for r in rs):
            data["potential"] = (("direction", "z", "y", "x"), np.stack([r.potential for r in rs]))
        if all(r.flux is not None for r in rs):
            data["flux"] = (
                ("direction", "component", "z", "y", "x"),
                np.stack([r.flux for r in rs]),
            )
        ds = xr.Dataset(data, coords={"direction": dirs, "component": list(AXES)})
        ds.attrs["reference"] = self.reference
        ds.attrs["phase_values"] = repr(self.phase_values)
        return ds


@dataclass
class TortuosityDirection:
    """Diffusion through one phase along one axis.

    Attributes
    ----------
    direction : str
    relative_diffusivity : float
        ``D_eff / D0`` (dimensionless); 0 when the phase does not percolate.
    tortuosity : float
        Tortuosity factor ``tau = porosity * D0 / D_eff``; ``inf`` when it does not percolate.
    porosity : float
        Volume fraction of the phase in the whole image.
    percolating : bool
    tensor_column : numpy.ndarray, shape (3,)
        ``D_eff/D0`` tensor column for this driving direction (rows ``z, y, x``).
    info : ConvergenceInfo
    conduction : ConductionDirection
        The underlying solve (fields included when they were asked for).
    """

    direction: str
    relative_diffusivity: float
    tortuosity: float
    porosity: float
    percolating: bool
    tensor_column: np.ndarray
    info: ConvergenceInfo
    conduction: ConductionDirection


@dataclass
class TortuosityResult(_PerDirection):
    """Tortuosity factor and relative diffusivity per direction (see :func:`tortuosity`)."""

    directions: dict[str, TortuosityDirection]
    porosity: float

    @property
    def tau(self) -> dict[str, float]:
        """Tortuosity factor per direction (``inf`` where the phase does not percolate)."""
        return self._each("tortuosity")

    @property
    def relative_diffusivity(self) -> dict[str, float]:
        """``D_eff / D0`` per direction."""
        return self._each("relative_diffusivity")

    def to_dataset(self) -> Any:
        """Scalars per direction as an ``xarray.Dataset``."""
        import xarray as xr

        dirs = list(self.directions)
        rs = [self.directions[d] for d in dirs]
        ds = xr.Dataset(
            {
                "relative_diffusivity": ("direction", [r.relative_diffusivity for r in rs]),
                "tortuosity": ("direction", [r.tortuosity for r in rs]),
                "percolating": ("direction", [r.percolating for r in rs]),
                "tensor_column": (
                    ("direction", "component"),
                    np.stack([r.tensor_column for r in rs]),
                ),
                **_info_vars([r.conduction for r in rs]),
            },
            coords={"direction": dirs, "component": list(AXES)},
        )
        ds.attrs["porosity"] = self.porosity
        return ds


@dataclass
class FlowDirection:
    """Stokes-Brinkman flow driven along one axis.

    Attributes
    ----------
    direction : str
    permeability_m2 : float
        Absolute permeability ``k = mu <u> L / dP`` in m² (in voxel² when no voxel size given).
    permeability_mD : float
        The same in millidarcy (``1 mD = 9.869233e-16 m²``); NaN without a voxel size.
    permeability_voxel2 : float
        Permeability in units of the voxel size squared (resolution-independent form).
    porosity : float
        Fraction of free-fluid voxels in the whole image.
    percolating : bool
        False when no fluid (or porous-phase) path joins inlet and outlet; then ``k = 0``.
    flow_rate_in, flow_rate_out : float
        Volume flow rate through the inlet and outlet faces, in voxel units.
    info : ConvergenceInfo
    velocity : numpy.ndarray or None, shape (3, nz, ny, nx)
        Cell-centred velocity (components z, y, x) for a unit pressure gradient and unit
        viscosity in voxel units; multiply by ``(dP/L) * h**2 / mu`` for physical units.
    pressure : numpy.ndarray or None, shape (nz, ny, nx)
        Pressure (inlet face 1, outlet face 0 for a pressure drop); NaN in solid.
    """

    direction: str
    permeability_m2: float
    permeability_mD: float  # noqa: N815 (unit symbol)
    permeability_voxel2: float
    porosity: float
    percolating: bool
    flow_rate_in: float
    flow_rate_out: float
    info: ConvergenceInfo
    velocity: np.ndarray | None = None
    pressure: np.ndarray | None = None


@dataclass
class PermeabilityResult(_PerDirection):
    """Absolute permeability per direction (see :func:`ooc.simulate.permeability`)."""

    directions: dict[str, FlowDirection]
    porosity: float
    voxel_size: tuple[float, float, float] | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def k_m2(self) -> dict[str, float]:
        """Permeability per direction in m² (voxel² without a voxel size)."""
        return self._each("permeability_m2")

    @property
    def k_mD(self) -> dict[str, float]:  # noqa: N802 (unit symbol)
        """Permeability per direction in millidarcy."""
        return self._each("permeability_mD")

    def to_dataset(self) -> Any:
        """Scalars (and velocity, if computed) as an ``xarray.Dataset``."""
        import xarray as xr

        dirs = list(self.directions)
        rs = [self.directions[d] for d in dirs]
        data: dict[str, Any] = {
            "permeability": ("direction", [r.permeability_m2 for r in rs], {"units": "m2"}),
            "permeability_mD": ("direction", [r.permeability_mD for r in rs], {"units": "mD"}),
            "percolating": ("direction", [r.percolating for r in rs]),
            **_info_vars(rs),
        }
        if all(r.velocity is not None for r in rs):
            data["velocity"] = (
                ("direction", "component", "z", "y", "x"),
                np.stack([r.velocity for r in rs]),
            )
        ds = xr.Dataset(data, coords={"direction": dirs, "component": list(AXES)})
        ds.attrs["porosity"] = self.porosity
        return ds


def _info_vars(rs: list[Any]) -> dict[str, Any]:
    return {
        "iterations": ("direction", [r.info.iterations for r in rs]),
        "residual": ("direction", [r.info.residual for r in rs]),
        "flux_imbalance": ("direction", [r.info.flux_imbalance for r in rs]),
        "converged": ("direction", [r.info.converged for r in rs]),
        "solve_time_s": ("direction", [r.info.time_s for r in rs]),
    }
