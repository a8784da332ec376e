"""Flows: train a classifier from sparse labels, and segment a whole volume with it."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ._runtime import stage_task

__all__ = ["segment_flow", "train_flow"]


@flow(name="ooc-train", validate_parameters=True)
def train_flow(
    volume: str,
    annotations: str,
    model: str,
    filters: dict[str, list[float]] | None = None,
    class_weight: str | None = None,
    class_names: dict[str, str] | None = None,
    n_estimators: int = 100,
    n_features: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a random forest on ``volume`` from the sparse labels ``annotations`` into ``model``."""
    arguments = {
        "volume": volume,
        "annotations": annotations,
        "model": model,
        "filters": filters,
        "class_weight": class_weight,
        "class_names": class_names,
        "n_estimators": n_estimators,
        **({"n_features": n_features} if n_features is not None else {}),
    }
    return stage_task("train", arguments, settings_overrides)


@flow(name="ooc-segment", validate_parameters=True)
def segment_flow(
    volume: str,
    model: str,
    output: str,
    uncertainty: str = "entropy",
    probability_dtype: str = "float16",
    device: str = "auto",
    prior: str = "training",
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Segment ``volume`` with ``model`` into the label store ``output`` (probabilities and
    uncertainty beside it); ``prior="scan"``: class shares estimated from the volume."""
    arguments = {
        "volume": volume,
        "model": model,
        "output": output,
        "uncertainty": uncertainty,
        "probability_dtype": probability_dtype,
        "device": device,
        "prior": prior,
    }
    return stage_task("segment", arguments, settings_overrides)
