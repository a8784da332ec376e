"""Flows: train a classifier from sparse labels, and segment a whole volume with it."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

import ooc
from ooc.cluster import dask_client
from ooc.features import FeatureSpec
from ooc.segment import load_annotations, load_model, save_model, segment, train_forest

from ._runtime import settings_from

__all__ = ["segment_flow", "segment_task", "train_flow", "train_task"]


@task(name="train-forest")
def train_task(
    volume: str,
    annotations: Any,
    model: str,
    filters: dict[str, list[float]] | None,
    class_weight: str | None,
    settings_overrides: dict[str, Any] | None,
) -> str:
    """Train a random forest on the labelled voxels of ``volume``; features only around them.

    ``annotations`` is a path (JSON shapes, label TIFF or store) or an ``Annotations`` object.
    """
    settings = settings_from(settings_overrides)
    with dask_client(settings):
        vol = ooc.open_volume(volume, storage_options=settings.storage_options(volume))
        ann = (
            load_annotations(annotations, like=vol) if isinstance(annotations, str) else annotations
        )
        spec = FeatureSpec(filters=filters) if filters else FeatureSpec()
        trained = train_forest(vol, ann, spec, class_weight=class_weight)
    return str(save_model(trained, model))


@task(name="segment-volume")
def segment_task(
    volume: str, model: str, output: str, settings_overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """Labels, class probabilities and uncertainty of the whole ``volume`` into ``output``."""
    settings = settings_from(settings_overrides)
    with dask_client(settings):
        vol = ooc.open_volume(volume, storage_options=settings.storage_options(volume))
        return segment(
            vol, load_model(model), output, storage_options=settings.storage_options(output)
        )


@flow(name="ooc-train", validate_parameters=True)
def train_flow(
    volume: str,
    annotations: str,
    model: str,
    filters: dict[str, list[float]] | None = None,
    class_weight: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> str:
    """Train a random forest from the sparse labels ``annotations`` and save it to ``model``."""
    return train_task(volume, annotations, model, filters, class_weight, settings_overrides)


@flow(name="ooc-segment", validate_parameters=True)
def segment_flow(
    volume: str, model: str, output: str, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Segment ``volume`` with the saved ``model`` into the results store ``output``."""
    load_model(model)  # a bad model fails here, before any work
    return segment_task(volume, model, output, settings_overrides)
