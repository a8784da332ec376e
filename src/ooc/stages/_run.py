"""One way to run any stage: key, skip, resume or replace, write, record, register."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ooc.config import Settings
from ooc.metadata import validate
from ooc.stages.record import (
    COMPLETE,
    Parent,
    absolute_url,
    complete_record,
    prepare_output,
    stage_digest,
    write_record,
)

__all__ = ["Context", "Outcome", "Product", "run_stage"]


@dataclass(frozen=True)
class Context:
    """What a stage's body gets: where to write, the run's digest, and whether to resume."""

    url: str
    digest: str
    resume: bool
    settings: Settings

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options for the output."""
        return self.settings.storage_options(self.url)


@dataclass(frozen=True)
class Product:
    """What a stage's body wrote, for its record and the catalog.

    ``companions`` maps other stores written beside the output (a segmentation's probabilities
    and uncertainty) to their store kind; they get the same record and digest.
    """

    store_kind: str
    summary: dict[str, Any]
    numbers: Mapping[str, float] = field(default_factory=dict)
    sample_id: str | None = None
    modality: str | None = None
    model_digest: str | None = None
    companions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """A stage's result: its output, the record stored there, and whether it was skipped."""

    stage: str
    url: str
    record: dict[str, Any]
    skipped: bool

    @property
    def summary(self) -> dict[str, Any]:
        """The stage's key results (the same whether it ran now or was skipped)."""
        return self.record.get("summary", {})

    @property
    def seconds(self) -> float:
        """How long the stage's work took when it ran."""
        return float(self.record.get("seconds") or 0.0)


def run_stage(
    stage: str,
    *,
    code_version: int,
    output: str,
    parameters: Mapping[str, Any],
    parents: Sequence[Parent],
    settings: Settings,
    body: Callable[[Context], Product],
    replace_stale: bool = True,
    check_only: bool = False,
) -> Outcome | None:
    """Run ``body`` unless ``output`` already holds this run's complete result.

    ``parameters`` are checked against ``schemas/stages.schema.json`` (definition ``stage``)
    first. The output's digest is :func:`~ooc.stages.record.stage_digest` of the stage, its
    code version, the parameters and the parents' digests. A complete output with that digest
    is returned as it is; a partial one is resumed (``Context.resume``); a stale one (other
    digest) is replaced, or refused when ``replace_stale`` is False (ingest: a store of another
    input is never overwritten). The record is written last, then the output (and its
    companions) are registered in the catalog with their lineage. With ``check_only``,
    everything is checked (parameters, and that the output may be written) and nothing is
    written: None is returned.
    """
    validate(dict(parameters), "stages", source=f"{stage} parameters", definition=stage)
    output = absolute_url(output)
    digest = stage_digest(stage, code_version, parameters, parents)
    options = settings.storage_options(output)
    done = complete_record(output, digest, storage_options=options)
    if done is not None:
        return None if check_only else Outcome(stage, output, done, skipped=True)
    resume = prepare_output(
        output,
        stage,
        digest,
        storage_options=options,
        replace_stale=replace_stale,
        dry=check_only,
    )
    if check_only:
        return None
    started = time.perf_counter()
    product = body(Context(output, digest, resume, settings))
    seconds = round(time.perf_counter() - started, 3)
    common = {
        "stage": stage,
        "code_version": code_version,
        "digest": digest,
        "parameters": parameters,
        "parents": parents,
        "status": COMPLETE,
        "sample_id": product.sample_id,
        "modality": product.modality,
        "model_digest": product.model_digest,
        "seconds": seconds,
    }
    for url, kind in product.companions.items():
        write_record(url, store_kind=kind, storage_options=settings.storage_options(url), **common)
    record = write_record(
        output,
        store_kind=product.store_kind,
        numbers=product.numbers,
        extra={"summary": product.summary, "companions": sorted(product.companions)},
        storage_options=options,
        **common,
    )
    from ooc import catalog  # pandas, SQLAlchemy and Alembic: not before the work starts

    for url in [*product.companions, output]:
        catalog.register(
            url,
            catalog_url=settings.resolved_catalog_url,
            storage_options=settings.storage_options(url),
        )
    return Outcome(stage, output, record, skipped=False)
