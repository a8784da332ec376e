"""Running one stage on the configured Dask cluster, with or without Prefect around it.

This module imports no Prefect, so a verb that runs its stage directly (no Prefect server
configured) starts its work without paying for Prefect's import or its temporary API.
"""

from __future__ import annotations

import contextlib
import importlib
from concurrent.futures import Future
from typing import Any

from ooc.cluster import dask_client
from ooc.config import Settings, check_store_url, load_settings

__all__ = ["STAGES", "execute_stage", "runs_on_threads", "settings_from", "stage_function"]

STAGES = ("ingest", "features", "train", "segment", "measure", "simulate", "upscale")

# the arguments of a stage that name a store it reads or writes (raw sources and annotation
# files may live elsewhere, e.g. in an archive)
_STORE_ARGUMENTS = {"output", "volume", "model", "labels", "finer", "grey"}


def settings_from(overrides: dict | None) -> Settings:
    """Settings from the environment/TOML, with a flow's explicit overrides on top."""
    return load_settings(**(overrides or {}))


def stage_function(stage: str) -> Any:
    """``ooc.stages.run_<stage>``, importing that stage's module only."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return getattr(importlib.import_module(f"ooc.stages.{stage}"), f"run_{stage}")


def runs_on_threads(stage: str, settings: Settings) -> bool:
    """Whether ``stage`` runs on a thread pool of its own rather than a Dask cluster: ingest
    does when no scheduler is configured (it streams regions; on one machine that is 3x faster
    than a LocalCluster of processes, benchmarks/ingest.py)."""
    return stage == "ingest" and not settings.scheduler


def execute_stage(
    stage: str,
    arguments: dict[str, Any],
    settings_overrides: dict[str, Any] | None,
    *,
    run_id: str | None = None,
    deployed: bool = False,
    cluster: Future | None = None,
) -> dict[str, Any]:
    """Run one stage (:mod:`ooc.stages`) on the configured Dask cluster; returns its outcome:
    ``stage``, ``url``, ``skipped``, ``seconds``, ``summary`` and the stored ``record``.

    ``run_id`` (a Prefect flow run's id) goes into the provenance; ``deployed`` runs (started
    from a Prefect deployment) may only touch stores under the configured data roots;
    ``cluster``: a local cluster already starting (:func:`ooc.cluster.start_local_cluster`).
    """
    settings = settings_from(settings_overrides)
    if deployed:
        for key in _STORE_ARGUMENTS & set(arguments):
            check_store_url(str(arguments[key]), settings)
        for url in (arguments.get("upscaled") or {}).values():  # simulate: phase -> store
            check_store_url(str(url), settings)
    extra = {} if stage == "train" else {"run_id": run_id}
    on_threads = runs_on_threads(stage, settings)
    with contextlib.nullcontext() if on_threads else dask_client(settings, cluster=cluster):
        outcome = stage_function(stage)(**arguments, settings=settings, **extra)
    return {
        "stage": stage,
        "url": outcome.url,
        "skipped": outcome.skipped,
        "seconds": outcome.seconds,
        "summary": outcome.summary,
        "record": outcome.record,
    }
