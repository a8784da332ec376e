"""Block upscaling: a block property map becomes the coarse grid of one solve over the volume.

Each block of :func:`ooc.simulate.property_map` (solved alone, or with an oversampling margin)
becomes one cell of a coarse grid that carries the block's property per axis - conductivity,
``D_eff/D0``, or permeability (Darcy flow is conduction of pressure with conductance ``k / mu``).
The coarse problem is solved with :func:`ooc.simulate.conductivity` itself: faces between cells
take the harmonic mean of the two cells' values along the face's axis, the potential (pressure)
drops by one unit from the inlet face to the outlet face of the driven axis and the sides are
closed, as in the direct solve.  So the route costs one small solve on top of the block map, and
the map is the part that runs out of core, one block per task.

The block solves need no tight tolerance: each block's answer carries the error of its closed
sides (~1 % without a margin), and ``property_map(..., rtol=1e-2)`` moves the upscaled answer by
less than 0.1 %.  On a 512³ two-phase volume in 64³ blocks (``benchmarks/upscale.py`` section 3,
2 cores) the route took 0.44 (no margin) to 0.77 (margin 8) of the direct solve's time at its
default tolerance, in 1/16-1/24 of its memory; a direct solve loosened to 1e-2 took 0.55.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ooc.simulate.conduction import conductivity
from ooc.simulate.result import AXES, ConductionResult

__all__ = ["coarse_grid", "upscale_blocks"]

_QUANTITIES = ("relative_diffusivity", "conductivity", "relative_conductivity", "permeability")


def coarse_grid(block_map: Any, quantity: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The coarse grid of a block map: per-axis cell values and the cell size.

    Parameters
    ----------
    block_map : xarray.Dataset
        Output of :func:`ooc.simulate.property_map` solved along all three axes, with blocks of
        one size (the volume a multiple of ``block_shape``).
    quantity : {"relative_diffusivity", "conductivity", "relative_conductivity", "permeability"}

    Returns
    -------
    values : numpy.ndarray, shape (3, nbz, nby, nbx)
        The block values along z, y and x.
    cell_size : (float, float, float)
        Block edges in metres.
    """
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity must be one of {_QUANTITIES}; got {quantity!r}")
    if quantity not in block_map:
        raise ValueError(
            f"the block map has no {quantity!r}; compute it with property_map (it holds "
            f"{sorted(block_map.data_vars)})"
        )
    dirs = [str(d) for d in block_map.direction.values]
    if sorted(dirs) != sorted(AXES):
        raise ValueError(f"the block map must be solved along z, y and x; it has {dirs}")
    for a in AXES:
        sizes = np.asarray(block_map[f"{a}_size"].values)
        if sizes.min() != sizes.max():
            raise ValueError(
                f"blocks differ in size along {a} ({sorted(set(sizes.tolist()))} voxels): the "
                "coarse grid needs a volume that is a multiple of block_shape"
            )
    vs = block_map.attrs["voxel_size_m"]
    cell = tuple(
        float(block_map[f"{a}_size"].values[0]) * float(v) for a, v in zip(AXES, vs, strict=True)
    )
    var = block_map[quantity]
    values = np.stack([np.asarray(var.sel(direction=a).values, dtype=np.float64) for a in AXES])
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{quantity} must be finite and >= 0 in every block")
    return values, cell  # type: ignore[return-value]


def upscale_blocks(
    block_map: Any,
    quantity: str,
    *,
    direction: str | int | Sequence[str | int] = ("z", "y", "x"),
    rtol: float = 1e-8,
    max_iter: int = 1000,
) -> ConductionResult:
    """Effective property of the whole volume from its block map, by one coarse solve.

    Parameters
    ----------
    block_map : xarray.Dataset
        :func:`ooc.simulate.property_map` along z, y and x (with ``margin`` for oversampling).
    quantity : {"relative_diffusivity", "conductivity", "relative_conductivity", "permeability"}
        The block property that becomes the coarse cells' conductance.
    direction : axis names or numbers
        Driven axes of the coarse solve.
    rtol, max_iter
        Of the coarse solve (float64).

    Returns
    -------
    ConductionResult
        Its ``effective`` (equal to ``relative``) per direction is the upscaled property, in
        the units of ``quantity`` (m² for permeability); its tensor columns are the coarse
        solve's.
    """
    values, cell = coarse_grid(block_map, quantity)
    labels = np.zeros(values.shape[1:], dtype=np.uint8)
    return conductivity(
        labels,
        {0: values},
        direction=direction,
        voxel_size=cell,
        reference=1.0,
        rtol=rtol,
        max_iter=max_iter,
        dtype=np.float64,
    )
