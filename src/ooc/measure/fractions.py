"""Phase fractions and porosity, for the whole volume and as a map over a grid of blocks.

Counting voxels is additive, so each block is counted on its own (``numpy.bincount`` of phase
codes) and the counts are summed: exact whatever the chunking. The block map uses its own grid
(``block_shape``), independent of the input's chunks: the input is rechunked to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from ooc.measure._util import (
    Phases,
    block_offsets,
    centres,
    codes_block,
    map_blocks_reduce,
    resolve_phases,
    with_geometry,
)

__all__ = ["phase_fractions"]


def _count_block(block: np.ndarray, index: tuple[int, ...], values: np.ndarray) -> np.ndarray:
    """Voxels of each phase (and of anything else, last) in one block."""
    codes = codes_block(np.asarray(block), values)
    return np.bincount(codes.ravel(), minlength=len(values) + 1).astype(np.int64)


def phase_fractions(
    labels: da.Array | xr.DataArray,
    *,
    voxel_size: Sequence[float] | float | None = None,
    unit: str | None = None,
    phases: Phases = None,
    block_shape: Sequence[int] | int | None = 64,
    pore: str | None = None,
) -> xr.Dataset:
    """Volume fraction of each phase, globally and per block.

    Parameters
    ----------
    labels : dask.array.Array of int, shape (nz, ny, nx)
        Phase labels, any chunking.
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x) in ``unit``.
    unit : str, keyword-only
        Length unit (e.g. ``"µm"``).
    phases : dict {name: value} or list of values, optional
        Phases to report; default every value present (computes ``unique`` once).
    block_shape : int or (int, int, int) or None
        Size in voxels of the blocks of the local-fraction map (the last block along an axis
        may be smaller). ``None``: no map.
    pore : str, optional
        Name of the pore phase; adds ``porosity``. Default: the phase named ``"pore"`` if any.

    Returns
    -------
    xarray.Dataset
        * ``fraction (phase)``: volume fraction (0..1) of the whole volume;
        * ``volume (phase)``: phase volume in ``unit``³;
        * ``voxels (phase)``: voxel counts;
        * ``local_fraction (phase, bz, by, bx)``: fraction in each block; coordinates ``bz,
          by, bx`` are block centres in ``unit`` (voxel ``i`` is at ``i * voxel_size``), with
          ``block_voxels (bz, by, bx)``;
        * ``porosity``: scalar, when a pore phase is known; ``local_porosity (bz, by, bx)``.
    """
    labels, vs, unit = with_geometry(labels, voxel_size, unit)
    names, values = resolve_phases(labels, phases)
    if block_shape is None:
        grid_labels = labels
    else:
        bs = (int(block_shape),) * 3 if np.isscalar(block_shape) else tuple(map(int, block_shape))
        if len(bs) != 3 or min(bs) < 1:
            raise ValueError(f"block_shape: expected three positive integers, got {block_shape}")
        grid_labels = labels.rechunk(
            tuple(min(b, n) for b, n in zip(bs, labels.shape, strict=True))
        )
    parts = map_blocks_reduce(_count_block, grid_labels, values)
    nb = grid_labels.numblocks
    counts = np.stack(parts).reshape(*nb, len(values) + 1)
    total = counts.sum(axis=(0, 1, 2))
    nvox = int(np.prod(labels.shape))
    frac = total[:-1] / nvox
    vvox = float(np.prod(vs))
    data = {
        "fraction": (("phase",), frac, {"units": "1"}),
        "volume": (("phase",), total[:-1] * vvox, {"units": f"{unit}^3"}),
        "voxels": (("phase",), total[:-1]),
    }
    coords: dict = {"phase": names, "label_value": ("phase", values)}
    if block_shape is not None:
        per_block = counts.sum(axis=3)
        local = np.moveaxis(counts[..., :-1] / per_block[..., None], 3, 0)
        data["local_fraction"] = (("phase", "bz", "by", "bx"), local, {"units": "1"})
        data["block_voxels"] = (("bz", "by", "bx"), per_block)
        offs = block_offsets(grid_labels.chunks)
        for a, dim in enumerate(("bz", "by", "bx")):
            cs = grid_labels.chunks[a]
            coords[dim] = (
                (dim,),
                np.array(
                    [centres(int(o), int(o) + c, vs[a]) for o, c in zip(offs[a], cs, strict=True)]
                ),
                {"units": unit, "long_name": f"block centre along {dim[1]}"},
            )
    pore_name = pore if pore is not None else ("pore" if "pore" in names else None)
    if pore_name is not None:
        if pore_name not in names:
            raise ValueError(f"pore: no phase named {pore_name!r} among {names}")
        k = names.index(pore_name)
        data["porosity"] = ((), float(frac[k]), {"units": "1", "phase": pore_name})
        if block_shape is not None:
            data["local_porosity"] = (("bz", "by", "bx"), local[k], {"units": "1"})
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "unit": unit,
            "voxel_size": list(vs),
            "shape": list(labels.shape),
            "block_shape": list(grid_labels.chunksize) if block_shape is not None else [],
            "other_fraction": float(total[-1] / nvox),
        },
    )
