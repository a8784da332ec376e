"""Image-based simulations on labelled voxel volumes.

- :func:`conductivity` - effective conductivity (electrical, thermal, any diffusive transport)
  of a multi-phase volume, per direction with the tensor column; a phase's value may be a
  diagonal tensor or a per-voxel field (per axis too).
- :func:`tortuosity` - relative effective diffusivity ``D_eff/D0`` and tortuosity factor
  ``tau = porosity D0 / D_eff`` of one phase.
- :func:`permeability` - absolute permeability (m², mD) by Stokes-Brinkman flow, with
  sub-resolution porous phases (constant, per axis or per voxel) and anisotropic voxels.
- :func:`property_map` - the same, block by block over a Dask array, as an ``xarray.Dataset``
  (optionally oversampled: each block solved with a margin of its neighbours).
- :func:`estimate_memory` - bytes each route needs, before running.

Every solver takes a label array (NumPy, or CuPy for the GPU) with ``voxel_size`` in metres, or the
``xarray.DataArray`` :func:`ooc.open_volume` returns (its voxel size converted from its unit).
Solvers are matrix-free finite volumes on the voxel grid with a geometric (aggregation) multigrid
preconditioner; kernels run on NumPy or CuPy arrays alike.
"""

from ooc.simulate.blockwise import property_map
from ooc.simulate.conduction import conductivity, tortuosity
from ooc.simulate.memory import estimate_memory
from ooc.simulate.result import (
    ConductionDirection,
    ConductionResult,
    ConvergenceInfo,
    ConvergenceWarning,
    FlowDirection,
    PermeabilityResult,
    TortuosityDirection,
    TortuosityResult,
)
from ooc.simulate.stokes import permeability

__all__ = [
    "ConductionDirection",
    "ConductionResult",
    "ConvergenceInfo",
    "ConvergenceWarning",
    "FlowDirection",
    "PermeabilityResult",
    "TortuosityDirection",
    "TortuosityResult",
    "conductivity",
    "estimate_memory",
    "permeability",
    "property_map",
    "tortuosity",
]
