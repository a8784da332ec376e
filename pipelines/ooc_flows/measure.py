"""Flow: the standard measurements of a label store, into a results store with pictures."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ._runtime import stage_task

__all__ = ["measure_flow"]


@flow(name="ooc-measure", validate_parameters=True)
def measure_flow(
    labels: str,
    output: str,
    pore: str | None = None,
    objects: str | None = None,
    connectivity: int = 6,
    block_shape: int = 64,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fractions, connectivity, surface area, pore sizes, objects and correlation functions of
    the label store ``labels``, written to the results store ``output``."""
    arguments = {
        "labels": labels,
        "output": output,
        "pore": pore,
        "objects": objects,
        "connectivity": connectivity,
        "block_shape": block_shape,
    }
    return stage_task("measure", arguments, settings_overrides)
