"""What every flow shares: settings, the stage task, and the Prefect run id for provenance."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.runtime import deployment, flow_run

from ooc import stages
from ooc.cluster import dask_client
from ooc.config import Settings, check_store_url, load_settings

__all__ = ["current_run_id", "settings_from", "stage_task"]

STAGES = {
    "ingest": stages.run_ingest,
    "features": stages.run_features,
    "train": stages.run_train,
    "segment": stages.run_segment,
    "measure": stages.run_measure,
    "simulate": stages.run_simulate,
    "upscale": stages.run_upscale,
}


# the arguments of a stage that name a store it reads or writes (raw sources and annotation
# files may live elsewhere, e.g. in an archive)
_STORE_ARGUMENTS = {"output", "volume", "model", "labels", "finer"}


def current_run_id() -> str | None:
    """The Prefect flow run's id, or None outside a flow run."""
    run_id = flow_run.id
    return str(run_id) if run_id else None


def settings_from(overrides: dict | None) -> Settings:
    """Settings from the environment/TOML, with a flow's explicit overrides on top."""
    return load_settings(**(overrides or {}))


@task(name="stage", task_run_name="{stage}", retries=0)
def stage_task(
    stage: str, arguments: dict[str, Any], settings_overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """Run one stage (:mod:`ooc.stages`) on the configured Dask cluster; returns its outcome:
    ``url``, ``skipped``, ``seconds``, ``summary`` and the stored ``record``."""
    settings = settings_from(settings_overrides)
    if deployment.id:  # started from a deployment: only stores under the data roots
        for key in _STORE_ARGUMENTS & set(arguments):
            check_store_url(str(arguments[key]), settings)
        for url in (arguments.get("upscaled") or {}).values():  # simulate: phase -> store
            check_store_url(str(url), settings)
    run = STAGES[stage]
    extra = {} if stage == "train" else {"run_id": current_run_id()}
    with dask_client(settings):
        outcome = run(**arguments, settings=settings, **extra)
    return {
        "stage": stage,
        "url": outcome.url,
        "skipped": outcome.skipped,
        "seconds": outcome.seconds,
        "summary": outcome.summary,
        "record": outcome.record,
    }
