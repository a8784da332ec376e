"""Flow: a finer scan's transport results become one phase's properties at a coarser scan."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ._runtime import stage_task

__all__ = ["upscale_flow"]


@flow(name="ooc-upscale", validate_parameters=True)
def upscale_flow(
    finer: str,
    output: str,
    phase: str,
    target: str,
    statistic: str = "mean",
    rev_block_sizes: list[int] | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """D_eff/D0, conductivity and permeability per axis (and porosity) of the finer scan whose
    simulate results store is ``finer``, written to ``output`` as the properties of ``phase``
    of the coarser scan ``target`` (its simulate takes them with ``upscaled``)."""
    arguments = {
        "finer": finer,
        "output": output,
        "phase": phase,
        "target": target,
        "statistic": statistic,
        "rev_block_sizes": rev_block_sizes,
    }
    return stage_task("upscale", arguments, settings_overrides)
