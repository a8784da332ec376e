"""Ingest stage: a raw scan (TIFF slices, multi-page TIFF, raw, HDF5, NumPy) -> a volume store."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ooc.config import Settings
from ooc.io import ingest, open_reader
from ooc.io.ingest import fingerprint
from ooc.metadata import VolumeMetadata
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.record import Parent, absolute_url

__all__ = ["CODE_VERSION", "run_ingest"]

CODE_VERSION = 1
"""Bumped whenever what ingest writes for the same input changes."""


def run_ingest(
    source: str,
    output: str,
    *,
    metadata: dict[str, Any],
    settings: Settings,
    reader_options: dict[str, Any] | None = None,
    chunks: tuple[int, int, int] | None = None,
    levels: int | None = None,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Stream ``source`` into the volume store ``output`` on the active Dask scheduler.

    The input and metadata are checked before anything is written. The raw input's identity
    is its path, size and modification time (the store's write plan), so a finished store is
    recognised without reading the input again; its content's SHA-256 enters the record.

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).
    """
    reader_options = dict(reader_options or {})
    meta = VolumeMetadata.from_dict(metadata, source=f"metadata for {source}")
    reader = open_reader(source, **reader_options)
    chunks = tuple(chunks or settings.chunks)
    parameters = {
        "reader_options": reader_options,
        "chunks": list(chunks),
        "levels": levels,
        "metadata": meta.to_dict(),
    }
    # the input's cheap identity stands in for its digest in the key; its SHA-256 is recorded
    source_id = Parent(absolute_url(source), _fingerprint_digest(reader), "source")

    def body(ctx: Context) -> Product:
        report = ingest(
            reader,
            ctx.url,
            meta,
            chunks=chunks,
            levels=levels,
            storage_options=ctx.storage_options,
            run_id=run_id,
            parameters={"reader_options": reader_options},
            progress=progress,
            plan_extra={"stage": "ingest", "stage_digest": ctx.digest},
        )
        summary = {
            **{k: v for k, v in report.__dict__.items() if k != "url"},
            "input_sha256": report.input_sha256,
        }
        return Product(
            store_kind=meta.kind if meta.kind == "labels" else "volume",
            summary=summary,
            sample_id=meta.sample_id,
            modality=meta.modality,
        )

    return run_stage(
        "ingest",
        code_version=CODE_VERSION,
        output=output,
        parameters=parameters,
        parents=[source_id],
        settings=settings,
        body=body,
        replace_stale=False,
        check_only=check_only,
    )


def _fingerprint_digest(reader: Any) -> str:
    return hashlib.sha256(json.dumps(fingerprint(reader)).encode()).hexdigest()
