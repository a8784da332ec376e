"""Permeability by NASA PuMA's finite-element Stokes solver (Q1-Q1, matrix-free MINRES).

Runs in the peers' interpreter (``benchmarks/install_peers.sh`` builds PuMA from source);
imported by ``benchmarks/simulate.py`` in a child process only.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

import numpy as np


def permeability(
    solid: np.ndarray,
    *,
    axis: int = 0,
    voxel_size: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 100_000,
) -> dict:
    """Darcy permeability (m²) of a periodic binary image with ``pumapy.compute_permeability``.

    Parameters
    ----------
    solid : array of bool, shape (n0, n1, n2)
        True where the voxel is solid; PuMA makes every face periodic and drives the flow by a
        unit body force.
    axis : int
        Flow axis (PuMA's x, y, z are the array's axes 0, 1, 2).
    voxel_size : float
        Voxel edge in metres (PuMA scales its answer by its square).
    tol : float
        MINRES tolerance (relative residual; PuMA recommends 1e-7 or lower).

    Returns
    -------
    dict
        ``k_m2``, the diagonal entry of PuMA's permeability tensor along ``axis``.
    """
    import pumapy as puma

    # PuMA writes a log per run into ./logs by default: keep the caller's folder clean
    puma.settings["log_location"] = os.path.join(tempfile.gettempdir(), "pumapy-logs")
    ws = puma.Workspace.from_array(np.asarray(solid, np.uint16))
    ws.voxel_length = voxel_size
    with contextlib.redirect_stdout(io.StringIO()):  # PuMA prints its progress
        keff, _ = puma.compute_permeability(
            ws,
            (1, 1),
            direction="xyz"[axis],
            tol=tol,
            maxiter=max_iter,
            solver_type="minres",
            display_iter=False,
            matrix_free=True,
            output_fields=False,
        )
    return {"k_m2": float(keff[axis, axis])}
