"""Permeability by lattice Boltzmann with lbmpy (D3Q19, TRT, Guo body force, bounce-back walls).

Runs in the peers' interpreter (``benchmarks/install_peers.sh``); imported by
``benchmarks/simulate.py`` in a child process only.
"""

from __future__ import annotations

import time

import numpy as np

MAGIC = 3 / 16  # TRT magic parameter: halfway bounce-back walls sit exactly midway for Poiseuille


def permeability(
    solid: np.ndarray,
    *,
    axis: int = 0,
    tol: float = 1e-4,
    check_every: int = 100,
    max_steps: int = 200_000,
    omega: float = 1.0,
    force: float = 1e-6,
) -> dict:
    """Darcy permeability (voxel²) of a periodic binary image by steady lattice-Boltzmann flow.

    Parameters
    ----------
    solid : array of bool, shape (nz, ny, nx)
        True where the voxel is solid (half-way bounce-back); every face is periodic.
    axis : int
        Axis of the uniform body force (the flow direction).
    tol : float
        Stop when the mean velocity changes by less than ``tol`` (relative) over
        ``check_every`` steps.
    omega : float
        Even (viscous) TRT relaxation rate; the odd rate follows from the magic parameter 3/16,
        which makes the steady answer independent of viscosity.
    force : float
        Body force per cell in lattice units (small: the flow stays Stokesian).

    Returns
    -------
    dict
        ``k_voxel2`` (permeability in voxel², multiply by the voxel edge² for m²), ``steps``,
        ``converged``, ``mlups`` (million lattice updates per second).
    """
    from lbmpy import LBMConfig, LBStencil, Method, Stencil
    from lbmpy.boundaries import NoSlip
    from lbmpy.enums import ForceModel
    from lbmpy.lbstep import LatticeBoltzmannStep
    from lbmpy.relaxationrates import relaxation_rate_from_magic_number

    solid = np.asarray(solid, bool)
    f = [0.0, 0.0, 0.0]
    f[axis] = force
    config = LBMConfig(
        stencil=LBStencil(Stencil.D3Q19),
        method=Method.TRT,
        relaxation_rates=[omega, relaxation_rate_from_magic_number(omega, MAGIC)],
        force_model=ForceModel.GUO,
        force=tuple(f),
    )
    step = LatticeBoltzmannStep(domain_size=solid.shape, periodicity=True, lbm_config=config)
    step.boundary_handling.set_boundary(
        NoSlip(), mask_callback=lambda x, y, z: _mask(solid, x, y, z)
    )
    fluid = ~solid
    nu = (1 / omega - 0.5) / 3
    last, k, steps, converged = None, float("nan"), 0, False
    t0 = time.perf_counter()
    while steps < max_steps:
        step.run(check_every)
        steps += check_every
        u = step.data_handling.gather_array(step.velocity_data_name)[..., axis]
        # lbmpy 2.0's velocity output carries the body force once over (u + F): on plane
        # Poiseuille flow the profile is exact after subtracting F, for every force model and
        # relaxation rate (the TRT magic parameter then puts the walls exactly half-way)
        mean = float(np.where(fluid, u - force, 0.0).mean())
        k = mean * nu / force
        if not np.isfinite(k):
            break
        if last is not None and abs(k - last) <= tol * abs(k):
            converged = True
            break
        last = k
    seconds = time.perf_counter() - t0
    return {
        "k_voxel2": k,
        "steps": steps,
        "converged": converged,
        "mlups": solid.size * steps / seconds / 1e6,
    }


def _mask(solid: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Solid cells at the cell midpoints ``x, y, z`` (ghost layers wrap around: periodic)."""
    i, j, k = (np.floor(v).astype(np.int64) for v in (x, y, z))
    n = solid.shape
    return solid[i % n[0], j % n[1], k % n[2]]
