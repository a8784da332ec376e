"""What every flow shares: the stage task and the Prefect run id for provenance."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.runtime import deployment, flow_run

from ._execute import execute_stage, settings_from

__all__ = ["current_run_id", "settings_from", "stage_task"]


def current_run_id() -> str | None:
    """The Prefect flow run's id, or None outside a flow run."""
    run_id = flow_run.id
    return str(run_id) if run_id else None


@task(name="stage", task_run_name="{stage}", retries=0)
def stage_task(
    stage: str, arguments: dict[str, Any], settings_overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """Run one stage as a Prefect task (:func:`~ooc_flows._execute.execute_stage`); started
    from a deployment, it only touches stores under the data roots."""
    return execute_stage(
        stage,
        arguments,
        settings_overrides,
        run_id=current_run_id(),
        deployed=bool(deployment.id),
    )
