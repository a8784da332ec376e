"""A whole volume's segmentation with a trained model, lazily: labels, probabilities, uncertainty."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ooc.features.chunked import regular_chunks
from ooc.segment.priors import shift_prior, training_prior
from ooc.segment.uncertainty import uncertainty
from ooc.volume import as_volume

__all__ = ["segmentation"]


def segmentation(
    volume: Any,
    model: Any,
    *,
    uncertainty_method: str = "entropy",
    device: str = "auto",
    block: Sequence[int] | None = None,
    prior: Sequence[float] | None = None,
) -> xr.Dataset:
    """Classify every voxel of a volume, lazily (nothing is computed until asked).

    Features (for a forest) and prediction happen in the same task, block by block, on the
    active Dask scheduler; the feature stack is never stored and memory stays bounded by the
    block size, whatever the volume's size.

    Parameters
    ----------
    volume
        Grey volume: ``xarray.DataArray`` from :func:`ooc.open_volume`, Dask or NumPy array.
    model
        A :class:`~ooc.segment.TrainedForest` or :class:`~ooc.segment.TrainedUNet` (or
        anything with ``classes``, ``class_names`` and
        ``predict_proba(volume, device=..., block=...) -> (K, *shape)``).
    uncertainty_method
        ``"entropy"`` (normalised, in [0, 1]) or ``"margin"`` (1 - (p1 - p2)).
    device
        ``"auto"``, ``"cpu"`` or ``"gpu"``: where filters / the network run.
    block
        Block shape of the prediction tasks (default: from the chunks and a memory budget).
    prior
        Class shares of this volume (``model.classes`` order, e.g. from
        :func:`~ooc.segment.scan_prior`): the probabilities are re-weighted from the shares of
        the training labels to these (:func:`~ooc.segment.shift_prior`). None keeps the
        training labels' shares.

    Returns
    -------
    xarray.Dataset
        ``labels`` (z, y, x; uint8 or uint16 label values of the most likely class),
        ``probabilities`` (class, z, y, x; float32) and ``uncertainty`` (z, y, x; float32, 0
        sure to 1), Dask-backed, with coordinates in the volume's unit; ``attrs`` hold the
        class names (JSON), voxel size and unit.
    """
    vol = as_volume(volume)
    proba = regular_chunks(model.predict_proba(vol, device=device, block=block))
    if prior is not None:
        proba = shift_prior(proba, training_prior(model), prior)
    classes = np.asarray(model.classes)
    label_dtype = np.uint8 if classes.max() <= 255 else np.uint16
    lut = classes.astype(label_dtype)
    labels = proba.argmax(axis=0).map_blocks(lambda b: lut[b], dtype=label_dtype)
    dims = vol.dims
    coords: dict[str, Any] = {d: xr.Variable(d, vol.coords[d], {"units": vol.unit}) for d in dims}
    coords["class"] = xr.Variable("class", classes.astype(np.int64))
    names = {str(int(k)): v for k, v in (model.class_names or {}).items()}
    return xr.Dataset(
        {
            "labels": (dims, labels, {"description": "label value of the most likely class"}),
            "probabilities": (("class", *dims), proba, {"description": "per-class probability"}),
            "uncertainty": (
                dims,
                uncertainty(proba, uncertainty_method),
                {"description": f"{uncertainty_method} of the class probabilities, 0 to 1"},
            ),
        },
        coords=coords,
        attrs={
            "model_kind": getattr(model, "kind", type(model).__name__),
            "class_names": json.dumps(names),
            "voxel_size": list(vol.voxel_size),
            "unit": vol.unit,
        },
    )
