"""Opening a volume store as a lazy, labelled ``xarray.DataArray``."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ooc.io.store import STATUS_COMPLETE, StoreError, VolumeStore

__all__ = ["open_volume"]


def open_volume(
    url: str,
    *,
    level: int = 0,
    storage_options: dict[str, Any] | None = None,
    allow_incomplete: bool = False,
) -> xr.DataArray:
    """A volume as a lazy ``DataArray`` with dims (z, y, x) and coordinates in its unit.

    A store with a channel axis (per-class probabilities) has dims (c, z, y, x), ``c`` holding
    the class label values. Nothing is read until values are needed; the Dask chunks are the
    store's chunks.
    Coordinates are voxel centres from the OME-Zarr scale and translation of ``level``.
    ``attrs`` hold the metadata (voxel size, unit, modality, sample id...), the level, the
    url and the provenance records. An unfinished store is refused unless ``allow_incomplete``.
    """
    store = VolumeStore.open(url, storage_options=storage_options)
    attrs = store.attrs
    status = attrs.get("ooc_store", {}).get("status")
    if status != STATUS_COMPLETE and not allow_incomplete:
        raise StoreError(
            f"{url}: the store is unfinished (status {status!r}); re-run the step that writes it"
        )
    datasets = attrs["ome"]["multiscales"][0]["datasets"]
    if not 0 <= level < len(datasets):
        raise StoreError(
            f"{url}: level {level} does not exist; the store has levels 0..{len(datasets) - 1}"
        )
    arr = store.array(level)
    data = da.from_zarr(arr)
    scale = [1.0, 1.0, 1.0]
    offset = [0.0, 0.0, 0.0]
    for t in datasets[level]["coordinateTransformations"]:
        if t["type"] == "scale":
            scale = t["scale"][-3:]
        elif t["type"] == "translation":
            offset = t["translation"][-3:]
    meta = attrs["ooc"]
    lead = data.ndim - 3
    coords: dict[str, Any] = {
        dim: xr.Variable(
            dim, offset[i] + scale[i] * np.arange(data.shape[lead + i]), {"units": meta["unit"]}
        )
        for i, dim in enumerate("zyx")
    }
    if lead:
        classes = sorted(int(v) for v in meta.get("labels", {})) or list(range(data.shape[0]))
        coords["c"] = xr.Variable("c", np.asarray(classes, dtype=np.int64))
    return xr.DataArray(
        data,
        dims=("c", "z", "y", "x")[1 - lead :],
        coords=coords,
        name=meta["sample_id"],
        attrs={**meta, "level": level, "url": url, "history": attrs.get("ooc_history", [])},
    )
