"""Volume-wide grey statistics that blockwise filters need fixed (from a few sampled chunks)."""

from __future__ import annotations

import itertools
from typing import Any

import dask
import dask.array as da
import numpy as np

from ooc.xp import to_numpy

__all__ = ["intensity_range", "sample_chunks"]


def sample_chunks(data: da.Array, max_chunks: int = 16) -> np.ndarray:
    """Voxel values of up to ``max_chunks`` chunks spread evenly over ``data`` (1D, host).

    The chunks are chosen deterministically (evenly spaced in C order over the chunk grid),
    so the same volume always gives the same sample; the rest is never read.
    """
    grid = list(itertools.product(*(range(n) for n in data.numblocks)))
    step = max(1, len(grid) // max_chunks)
    picks = grid[step // 2 :: step][:max_chunks] or grid[:1]
    blocks = dask.compute(*(data.blocks[idx] for idx in picks))
    return np.concatenate([to_numpy(b).ravel() for b in blocks])


def intensity_range(
    data: Any, percentiles: tuple[float, float] = (0.5, 99.5), max_chunks: int = 16
) -> tuple[float, float]:
    """Robust grey range ``(low, high)`` of a volume, from percentiles of sampled chunks.

    Parameters
    ----------
    data
        Dask or NumPy array (grey values).
    percentiles
        Lower and upper percentile, in %.
    max_chunks
        Chunks sampled (see :func:`sample_chunks`).

    Returns
    -------
    tuple of float
        In the volume's grey units; ``high > low`` (widened by 1 for a constant volume).
    """
    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=-1)
    values = sample_chunks(arr, max_chunks)
    lo, hi = (float(v) for v in np.percentile(values, percentiles))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi
