"""Flow: redo every catalogued result the installed ooc would make differently (archive
reprocessing), parents first; or, as a dry run, only list them."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import flow, task

from ooc.cluster import dask_client
from ooc.stages.reprocess import format_stale, reprocess, stale_outputs

from ._runtime import current_run_id, settings_from

__all__ = ["reprocess_flow"]


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Table rows as plain JSON-able dicts (None where a value is unknown)."""
    plain = table.astype(object).where(table.notna(), None)
    return [
        {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
        for row in plain.to_dict("records")
    ]


@task(name="find-stale", retries=2, retry_delay_seconds=10)
def find_stale(
    sample: str | None, stage: str | None, settings_overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """The stale stores (:func:`ooc.stages.reprocess.stale_outputs`) as records and as text."""
    settings = settings_from(settings_overrides)
    table = stale_outputs(
        catalog_url=settings.resolved_catalog_url,
        sample=sample,
        stage=stage,
        storage_options=settings.storage_options("s3://"),  # the S3 endpoint, if any
    )
    return {"stale": _records(table), "text": format_stale(table)}


@task(name="reprocess", retries=0)
def redo_stale(
    sample: str | None, stage: str | None, settings_overrides: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Redo the stale stores on the configured Dask cluster; per stage run: url, stage,
    seconds and whether it was found current (skipped)."""
    settings = settings_from(settings_overrides)
    with dask_client(settings):
        outcomes = reprocess(
            catalog_url=settings.resolved_catalog_url,
            settings=settings,
            sample=sample,
            stage=stage,
            run_id=current_run_id(),
        )
    return [
        {"url": o.url, "stage": o.stage, "seconds": o.seconds, "skipped": o.skipped}
        for o in outcomes
    ]


@flow(name="ooc-reprocess", validate_parameters=True)
def reprocess_flow(
    sample: str | None = None,
    stage: str | None = None,
    dry_run: bool = False,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """List the stale stores of the catalog (``sample``: a sample id glob; ``stage``: one
    stage's outputs) and, unless ``dry_run``, redo them.

    Returns ``stale`` (the rows of :func:`ooc.stages.reprocess.stale_outputs`), ``text`` (that
    table printed by :func:`ooc.stages.reprocess.format_stale`) and ``redone`` (per stage
    run: url, stage, seconds, skipped; empty on a dry run).
    """
    found = find_stale(sample, stage, settings_overrides)
    redone = [] if dry_run or not found["stale"] else redo_stale(sample, stage, settings_overrides)
    return {**found, "redone": redone}
