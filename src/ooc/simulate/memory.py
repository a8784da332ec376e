"""Memory needed by each simulation route, known before anything runs.

The numbers are bytes per voxel of the arrays the solvers hold at their peak (operators, the
multigrid hierarchy, Krylov vectors, the float64 solution of the mixed-precision refinement),
measured with ``tracemalloc`` on the implementation and rounded up; ``tests/simulate`` checks that
the estimates bound the measured peaks.  A flow compares ``whole`` with the memory it has and falls
back to the block-wise route (:func:`ooc.simulate.property_map`) when a whole solve does not fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BYTES_PER_VOXEL", "estimate_memory"]

#: peak bytes per voxel of one direction's solve, by (problem, working dtype)
BYTES_PER_VOXEL: dict[tuple[str, str], float] = {
    ("conductivity", "float32"): 56.0,
    ("conductivity", "float64"): 100.0,
    ("permeability", "float32"): 215.0,
    ("permeability", "float64"): 420.0,
}
#: extra bytes per voxel and direction kept when fields are returned (float64 on the host)
FIELD_BYTES_PER_VOXEL: dict[str, float] = {"conductivity": 40.0, "permeability": 40.0}
#: fixed overhead of a solve (coarsest-grid dense inverse, Python objects), bytes
FIXED_OVERHEAD = 64 * 2**20

_ALIASES = {
    "conductivity": "conductivity",
    "conduction": "conductivity",
    "diffusivity": "conductivity",
    "tortuosity": "conductivity",
    "permeability": "permeability",
    "stokes": "permeability",
}


def _per_voxel(problem: str, dtype: Any) -> float:
    key = (_ALIASES[problem], "float64" if np.dtype(dtype) == np.float64 else "float32")
    return BYTES_PER_VOXEL[key]


def estimate_memory(
    shape: Sequence[int],
    *,
    dtype: Any = np.float32,
    label_dtype: Any = np.uint8,
    properties: Sequence[str] = ("conductivity", "permeability"),
    block_shape: int | Sequence[int] | None = None,
    concurrent_blocks: int = 1,
    n_directions: int = 3,
    return_fields: bool = False,
    available: int | None = None,
) -> dict[str, Any]:
    """Bytes each route needs for a volume of ``shape``, per property.

    Parameters
    ----------
    shape : (nz, ny, nx)
        Volume shape in voxels.
    dtype : numpy dtype
        Working precision of the solvers (float32 default, float64).
    label_dtype : numpy dtype
        dtype of the label volume (its in-memory copy counts towards the whole route).
    properties : sequence of {"conductivity", "diffusivity", "tortuosity", "permeability"}
        Which solves to size (conductivity, diffusivity and tortuosity share one solver).
    block_shape : int or (bz, by, bx), optional
        Block size of the block-wise route; default: the largest cube of edge ``2**k`` (at most
        256) whose permeability solve fits in ``available / concurrent_blocks``.
    concurrent_blocks : int
        Blocks solved at the same time on one machine (Dask worker threads x processes).
    n_directions : int
        Directions solved (fields are kept per direction; solves run one after another).
    return_fields : bool
        Whether fields (potential/flux or velocity) are returned.
    available : int, optional
        Bytes available; default ``psutil.virtual_memory().available``.

    Returns
    -------
    dict
        ``{"whole": {prop: bytes}, "blockwise": {"block_shape": (bz, by, bx), "n_blocks": int,
        "per_block": {prop: bytes}, "peak": {prop: bytes}}, "available": bytes,
        "fits_whole": {prop: bool}, "route": {prop: "whole" | "blockwise"}}``.  ``peak`` is what
        ``concurrent_blocks`` blocks need together.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive ints (z, y, x); got {shape}")
    probs = []
    for p in properties:
        if p not in _ALIASES:
            raise ValueError(f"unknown property {p!r}; choose from {sorted(_ALIASES)}")
        probs.append(p)
    if available is None:
        import psutil

        available = int(psutil.virtual_memory().available)
    nvox = math.prod(shape)
    lab = np.dtype(label_dtype).itemsize

    def need(p: str, voxels: int) -> int:
        per = _per_voxel(p, dtype) + lab
        if return_fields:
            per += FIELD_BYTES_PER_VOXEL[_ALIASES[p]] * n_directions
        return int(voxels * per + FIXED_OVERHEAD)

    whole = {p: need(p, nvox) for p in probs}
    conc = max(1, int(concurrent_blocks))
    if block_shape is None:
        edge = 256
        budget = available / conc
        while edge > 8 and max(need(p, edge**3) for p in probs) > budget:
            edge //= 2
        bs = tuple(min(edge, s) for s in shape)
    elif isinstance(block_shape, int | np.integer):
        bs = (int(block_shape),) * 3
    else:
        bs = tuple(int(b) for b in block_shape)
    if len(bs) != 3 or min(bs) < 1:
        raise ValueError(f"block_shape must be one or three positive ints; got {block_shape}")
    bvox = math.prod(min(b, s) for b, s in zip(bs, shape, strict=True))
    n_blocks = math.prod(math.ceil(s / b) for s, b in zip(shape, bs, strict=True))
    per_block = {p: need(p, bvox) for p in probs}
    peak = {p: per_block[p] * min(conc, n_blocks) for p in probs}
    fits = {p: whole[p] <= available for p in probs}
    return {
        "shape": shape,
        "dtype": str(np.dtype(dtype)),
        "whole": whole,
        "blockwise": {
            "block_shape": bs,
            "n_blocks": n_blocks,
            "per_block": per_block,
            "peak": peak,
        },
        "available": available,
        "fits_whole": fits,
        "route": {p: ("whole" if fits[p] else "blockwise") for p in probs},
    }
