"""Flow: transport simulations of a label store (tortuosity, conductivity, permeability)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ._runtime import stage_task

__all__ = ["simulate_flow"]


@flow(name="ooc-simulate", validate_parameters=True)
def simulate_flow(
    labels: str,
    output: str,
    pore: str = "pore",
    phase_values: dict[str, float] | None = None,
    porous_phases: dict[str, float] | None = None,
    route: str = "auto",
    block_shape: int = 64,
    properties: list[str] | None = None,
    upscaled: dict[str, str] | None = None,
    per_voxel: bool = False,
    grey: str | None = None,
    solid: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Tortuosity factor, effective conductivity and permeability per axis of ``labels``,
    whole-volume or block by block (``route``: auto, whole, blocks), into ``output``; phases in
    ``upscaled`` take their values from upscale stores (``ooc upscale``), per voxel with
    ``per_voxel`` (from the ``grey`` scan, default the segmented one, with ``solid`` the dense
    solid phase)."""
    arguments = {
        "labels": labels,
        "output": output,
        "pore": pore,
        "phase_values": phase_values,
        "porous_phases": porous_phases,
        "route": route,
        "block_shape": block_shape,
        **({"properties": properties} if properties else {}),
        **({"upscaled": upscaled} if upscaled else {}),
        **({"per_voxel": True} if per_voxel else {}),
        **({"grey": grey} if grey else {}),
        **({"solid": solid} if solid else {}),
    }
    return stage_task("simulate", arguments, settings_overrides)
