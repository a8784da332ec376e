"""Flow: transport simulations of a label store (tortuosity, conductivity, permeability)."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from ooc.cluster import dask_client
from ooc.simulate.report import simulate_store

from ._runtime import current_run_id, settings_from

__all__ = ["simulate_flow", "simulate_task"]


@task(name="simulate-store")
def simulate_task(
    labels: str,
    results: str,
    pore: str,
    phase_values: dict[str, float] | None,
    porous_phases: dict[str, float] | None,
    route: str,
    block_shape: int,
    settings_overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """Run :func:`ooc.simulate.report.simulate_store` on the configured Dask cluster."""
    settings = settings_from(settings_overrides)
    with dask_client(settings):
        return simulate_store(
            labels,
            results,
            pore=pore,
            phase_values=phase_values,
            porous_phases=porous_phases,
            route=route,
            block_shape=block_shape,
            storage_options=settings.storage_options(labels),
            run_id=current_run_id(),
        )


@flow(name="ooc-simulate", validate_parameters=True)
def simulate_flow(
    labels: str,
    results: str,
    pore: str = "pore",
    phase_values: dict[str, float] | None = None,
    porous_phases: dict[str, float] | None = None,
    route: str = "auto",
    block_shape: int = 64,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tortuosity factor, effective conductivity and permeability per axis of ``labels``,
    whole-volume or block by block (``route``: auto, whole, blocks), into ``results``."""
    if route not in ("auto", "whole", "blocks"):
        raise ValueError(f"route {route!r}: expected auto, whole or blocks")
    return simulate_task(
        labels, results, pore, phase_values, porous_phases, route, settings_overrides
    )
