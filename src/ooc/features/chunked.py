"""The filter bank over Dask arrays: ``map_overlap``-style halos that make results chunk-free.

Every block is extended by the halo the filters need (:meth:`FeatureSpec.halo`, derived from
the scales and ``truncate``) with its neighbours' voxels, and nothing past the volume's own edge
(``boundary="none"``, as dask-image does): there the kernel's ``mode`` extends the data exactly as
it does for the whole array, so the result equals the kernel applied to the whole volume, to
float rounding, for any chunking. Chunks thinner than the halo are merged first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.array.overlap import ensure_minimum_chunksize

from ooc.features.spec import FeatureSpec
from ooc.features.stack import feature_stack
from ooc.volume import Volume, as_volume
from ooc.xp import get_array_module

__all__ = [
    "Volume",
    "as_volume",
    "compute_features",
    "feature",
    "map_blocks_with_halo",
    "regular_chunks",
    "to_device",
]


def to_device(data: da.Array, device: str) -> da.Array:
    """Move a Dask array's blocks to ``"gpu"`` (CuPy) or ``"cpu"`` (NumPy); lazily."""
    if device == "cpu":
        xp = get_array_module(data._meta)
        if xp is np:
            return data
        return data.map_blocks(lambda b: b.get(), meta=np.empty((0,) * data.ndim, data.dtype))
    if device == "gpu":
        import cupy as cp  # needs a GPU; callers check ooc.features.cupy_available()

        return data.map_blocks(cp.asarray, meta=cp.empty((0,) * data.ndim, data.dtype))
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def map_blocks_with_halo(
    func: Callable[..., Any],
    data: da.Array,
    depth: Sequence[int],
    *,
    n_out: int,
    dtype: Any,
    name: str = "halo-blocks",
    with_origin: bool = False,
    **kwargs: Any,
) -> da.Array:
    """Apply ``func`` to every block extended by ``depth`` voxels of its neighbours.

    ``func(padded, crop, **kwargs)`` gets the block with its halo (no padding past the
    volume's edge) and ``crop``, the slices of ``padded`` that are the block itself, and must
    return ``(n_out, *block.shape)``. ``kwargs`` go through Dask, so a ``dask.delayed``
    value (a model) is computed once and shared by every block instead of copied into each.
    With ``with_origin``, ``func`` also gets ``origin``: the global voxel index of
    ``padded[0, ...]``. The result has a new leading axis of length ``n_out``
    and the (possibly merged) chunks of ``data``: chunks thinner than ``depth`` are merged
    with their neighbours first, as ``map_overlap`` does.
    """
    depth = tuple(int(d) for d in depth)
    if len(depth) != data.ndim:
        raise ValueError(f"depth needs {data.ndim} values, got {depth}")
    chunks = tuple(
        (sum(c),) if d >= sum(c) else ensure_minimum_chunksize(d, c) if d and len(c) > 1 else c
        for d, c in zip(depth, data.chunks, strict=True)
    )
    if chunks != data.chunks:
        data = data.rechunk(chunks)
    # an axis held in one chunk has no neighbours to borrow from
    depth = tuple(d if len(c) > 1 else 0 for d, c in zip(depth, chunks, strict=True))
    padded = da.overlap.overlap(data, depth=dict(enumerate(depth)), boundary="none")
    nblocks = data.numblocks

    def run(block: Any, block_info: dict[Any, Any] | None = None, **kw: Any) -> Any:
        loc = block_info[0]["chunk-location"]  # type: ignore[index]
        crop = tuple(
            slice(d if i > 0 else 0, block.shape[a] - (d if i < n - 1 else 0))
            for a, (d, i, n) in enumerate(zip(depth, loc, nblocks, strict=True))
        )
        if with_origin:
            out_loc = block_info[None]["array-location"][1:]  # type: ignore[index]
            kw["origin"] = tuple(
                int(lo) - c.start for (lo, _), c in zip(out_loc, crop, strict=True)
            )
        return func(block, crop, **kw)

    xp = get_array_module(data._meta)
    meta = xp.empty((0,) * (data.ndim + 1), dtype=dtype)
    return da.map_blocks(
        run,
        padded,
        new_axis=0,
        chunks=((n_out,), *data.chunks),
        dtype=dtype,
        meta=meta,
        token=name,
        **kwargs,
    )


def regular_chunks(data: da.Array) -> da.Array:
    """``data`` rechunked, where needed, so every chunk but the last of an axis has one size
    (what Zarr stores need; halo merging can leave irregular chunks)."""
    target = {}
    for axis, c in enumerate(data.chunks):
        if len(c) > 1 and (len(set(c[:-1])) > 1 or c[-1] > c[0]):
            target[axis] = max(c)
    return data.rechunk(target) if target else data


def _stack_block(
    padded: Any, crop: tuple[slice, ...], *, spec: FeatureSpec, voxel_size: tuple[float, ...]
) -> Any:
    return feature_stack(padded, spec, voxel_size=voxel_size, crop=crop)


def compute_features(
    volume: Any,
    spec: FeatureSpec | None = None,
    *,
    voxel_size: Sequence[float] | None = None,
    chunks: int | Sequence[int] | None = None,
) -> da.Array:
    """The filter bank of a volume as a lazy Dask array.

    Parameters
    ----------
    volume
        ``xarray.DataArray`` (dims ``(z, y, x)`` or ``(y, x)``, voxel size from its attrs),
        Dask or NumPy array. Blocks may be CuPy arrays (see :func:`to_device`): the kernels
        then run on the GPU and the stack stays on it.
    spec
        The filter bank (default :class:`FeatureSpec` (), ilastik's 70 features). Scales in
        ``spec.sigma_unit``; anisotropic voxel sizes are honoured per axis.
    voxel_size
        Overrides the volume's voxel size (z, y, x) in its unit.
    chunks
        Rechunk the volume first.

    Returns
    -------
    dask.array.Array
        float32, shape ``(C, *volume.shape)``, channels named by
        ``spec.channel_names(ndim)``. Nothing is computed until asked; computing a block
        needs its halo (``spec.halo(...)`` voxels per side) and never the whole stack. The
        values equal :func:`ooc.features.stack.feature_stack` on the whole array.
    """
    spec = spec or FeatureSpec()
    vol = as_volume(volume, voxel_size=voxel_size, chunks=chunks)
    if spec.needs_value_range and spec.value_range is None:
        from ooc.features.stats import intensity_range

        spec = spec.with_value_range(intensity_range(vol.data))
    ndim = vol.data.ndim
    return map_blocks_with_halo(
        _stack_block,
        vol.data,
        spec.halo(vol.voxel_size, ndim),
        n_out=spec.n_channels(ndim),
        dtype=np.float32,
        name="ooc-features",
        spec=spec,
        voxel_size=vol.voxel_size,
    )


def feature(
    volume: Any,
    *,
    filter: str,
    sigma: float,
    spec: FeatureSpec | None = None,
    voxel_size: Sequence[float] | None = None,
) -> xr.Dataset:
    """One filter at one scale over the whole volume, lazily, as an ``xarray.Dataset``.

    Features are not stored by default (computing and predicting happen in the same block);
    this gives one chosen feature, e.g. to look at it (the features stage writes it): one
    float32 variable per channel (eigenvalue filters have one per axis), dims ``(z, y, x)``,
    coordinates in the volume's unit. Only that filter's halo is read around each block. Other
    options (``sigma_unit``, ``truncate``, ``mode``...) come from ``spec``.
    """
    base = spec or FeatureSpec(filters={filter: (sigma,)})
    one = FeatureSpec.from_dict({**base.to_dict(), "filters": {filter: [sigma]}})
    vol = as_volume(volume, voxel_size=voxel_size)
    stack = compute_features(vol, one)
    names = one.channel_names(vol.data.ndim)
    coords = {d: xr.Variable(d, vol.coords[d], {"units": vol.unit}) for d in vol.dims}
    return xr.Dataset(
        {n: (vol.dims, regular_chunks(stack[k])) for k, n in enumerate(names)},
        coords=coords,
        attrs={"feature_spec": one.to_dict(), "voxel_size": list(vol.voxel_size)},
    )
