"""Flow: the standard measurements of a label store, written as a results store with pictures."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from ooc.cluster import dask_client
from ooc.io import VolumeStore
from ooc.measure.report import measure_store

from ._runtime import current_run_id, settings_from

__all__ = ["measure_flow", "measure_task"]


@task(name="measure-store")
def measure_task(
    labels: str,
    results: str,
    pore: str | None,
    objects: str | None,
    connectivity: int,
    settings_overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """Run :func:`ooc.measure.report.measure_store` on the configured Dask cluster."""
    settings = settings_from(settings_overrides)
    with dask_client(settings):
        return measure_store(
            labels,
            results,
            pore=pore,
            objects=objects,
            connectivity=connectivity,
            storage_options=settings.storage_options(labels),
            run_id=current_run_id(),
        )


@flow(name="ooc-measure", validate_parameters=True)
def measure_flow(
    labels: str,
    results: str,
    pore: str | None = None,
    objects: str | None = None,
    connectivity: int = 6,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fractions, connectivity, surface area, pore sizes, objects and correlation functions of
    the label store ``labels``, written to the results store ``results``."""
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity {connectivity}: expected 6, 18 or 26")
    settings = settings_from(settings_overrides)
    VolumeStore.open(labels, storage_options=settings.storage_options(labels))  # fail early
    return measure_task(labels, results, pore, objects, connectivity, settings_overrides)
