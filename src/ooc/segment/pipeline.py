"""Segment a whole volume with a trained model and write labels, probabilities and uncertainty."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ooc.features import as_volume, regular_chunks
from ooc.provenance import make_record
from ooc.results import write_dataset
from ooc.segment.uncertainty import uncertain_regions, uncertainty

__all__ = ["segment"]

_PROB_DTYPES = ("float32", "float16")


def segment(
    volume: Any,
    model: Any,
    output_url: str,
    *,
    group: str = "segmentation",
    uncertainty_method: str = "entropy",
    write_probabilities: bool = True,
    probability_dtype: str = "float32",
    device: str = "auto",
    block: Sequence[int] | None = None,
    region: int | Sequence[int] = 32,
    top: int = 10,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Classify every voxel of a volume and write the results to a Zarr results store.

    Features (for a forest) and prediction happen in the same task, block by block, on the
    active Dask scheduler (a ``distributed.Client`` if one is running: see
    :func:`ooc.cluster.dask_client`); the feature stack is never stored and memory stays
    bounded by the block size, whatever the volume's size.

    Parameters
    ----------
    volume
        Grey volume: ``xarray.DataArray`` from :func:`ooc.open_volume`, Dask or NumPy array.
    model
        A :class:`~ooc.segment.TrainedForest` or :class:`~ooc.segment.TrainedUNet` (or
        anything with ``classes``, ``class_names``, ``provenance`` and
        ``predict_proba(volume, device=..., block=...) -> (K, *shape)``).
    output_url
        Results store (path or fsspec URL); group ``group`` is replaced.
    uncertainty_method
        ``"entropy"`` (normalised, in [0, 1]) or ``"margin"`` (1 - (p1 - p2)).
    write_probabilities
        Store per-class probabilities (K float values per voxel; the largest output).
    probability_dtype
        ``"float32"`` or ``"float16"`` for the stored probabilities.
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"``: where filters / the network run.
    block
        Block shape of the prediction tasks (default: from the chunks and a memory budget).
    region, top
        Grid cell edge (voxels) and count of the most uncertain regions listed.

    Returns
    -------
    dict
        ``url``, ``group``, ``variables`` (name -> ``url/group/name``), ``classes`` (label
        values), ``class_names``, ``class_fractions`` (predicted volume fraction per label),
        ``uncertain_regions`` (see :func:`~ooc.segment.uncertain_regions`), ``seconds``.
        The group holds ``labels`` (z, y, x; uint8 or uint16 label values),
        ``probabilities`` (class, z, y, x) and ``uncertainty`` (z, y, x, float32), with
        coordinates in the volume's unit and a provenance record.
    """
    if probability_dtype not in _PROB_DTYPES:
        raise ValueError(
            f"probability_dtype must be one of {_PROB_DTYPES}, got {probability_dtype!r}"
        )
    t0 = time.perf_counter()
    vol = as_volume(volume)
    proba = regular_chunks(model.predict_proba(vol, device=device, block=block))
    classes = np.asarray(model.classes)
    label_dtype = np.uint8 if classes.max() <= 255 else np.uint16
    lut = classes.astype(label_dtype)
    labels = proba.argmax(axis=0).map_blocks(lambda b: lut[b], dtype=label_dtype)
    unc = uncertainty(proba, uncertainty_method)
    dims = vol.dims
    coords: dict[str, Any] = {d: xr.Variable(d, vol.coords[d], {"units": vol.unit}) for d in dims}
    coords["class"] = xr.Variable("class", classes.astype(np.int64))
    names = {int(k): v for k, v in (model.class_names or {}).items()}
    data_vars: dict[str, Any] = {
        "labels": (dims, labels, {"description": "label value of the most likely class"}),
        "uncertainty": (
            dims,
            unc,
            {"description": f"{uncertainty_method} of the class probabilities, 0 (sure) to 1"},
        ),
    }
    if write_probabilities:
        data_vars["probabilities"] = (
            ("class", *dims),
            proba.astype(probability_dtype),
            {"description": "per-class probability"},
        )
    ds = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={
            "model_kind": getattr(model, "kind", type(model).__name__),
            "class_names": json.dumps({str(k): v for k, v in names.items()}),
            "voxel_size": list(vol.voxel_size),
            "unit": vol.unit,
        },
    )
    record = make_record(
        "segment",
        parameters={
            "group": group,
            "uncertainty": uncertainty_method,
            "probabilities": write_probabilities,
            "probability_dtype": probability_dtype,
            "device": device,
            "block": None if block is None else list(block),
            "model": getattr(model, "provenance", {}),
        },
        inputs=[{"volume": vol.attrs.get("url", "array"), "shape": list(vol.shape)}],
    )
    write_dataset(ds, output_url, group=group, provenance=record, storage_options=storage_options)

    # Second, cheap pass over what was written: region scores and class fractions.
    so = storage_options or None
    g = zarr.open_group(output_url, path=group, mode="r+", storage_options=so)
    import dask.array as da

    stored_unc = da.from_zarr(g["uncertainty"])
    origin = [float(vol.coords[d][0]) for d in dims]
    regions = uncertain_regions(
        stored_unc, region=region, top=top, voxel_size=vol.voxel_size, origin=origin
    )
    from ooc.segment.metrics import confusion_matrix

    stored_labels = da.from_zarr(g["labels"])
    counts = np.diag(confusion_matrix(stored_labels, stored_labels, classes.tolist()))
    fractions = {
        int(c): float(n) / float(np.prod(vol.shape)) for c, n in zip(classes, counts, strict=True)
    }
    g.attrs.update(
        {"uncertain_regions": json.dumps(regions), "class_fractions": json.dumps(fractions)}
    )
    base = output_url.rstrip("/")
    return {
        "url": output_url,
        "group": group,
        "variables": {v: f"{base}/{group}/{v}" for v in data_vars},
        "classes": classes.tolist(),
        "class_names": names,
        "class_fractions": fractions,
        "uncertain_regions": regions,
        "seconds": round(time.perf_counter() - t0, 3),
    }
