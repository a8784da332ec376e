"""Flow: one filter of the filter bank over a grey volume, into a results store."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ._runtime import stage_task

__all__ = ["features_flow"]


@flow(name="ooc-features", validate_parameters=True)
def features_flow(
    volume: str,
    output: str,
    filter: str,
    sigma: float,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write filter ``filter`` at scale ``sigma`` (voxels) of ``volume`` to ``output``."""
    arguments = {"volume": volume, "output": output, "filter": filter, "sigma": sigma}
    return stage_task("features", arguments, settings_overrides)
