"""Flow: ingest a raw scan into a volume store and register it in the catalog."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from ooc.catalog import register
from ooc.cluster import dask_client
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata, validate

from ._runtime import current_run_id, settings_from

__all__ = ["ingest_flow"]


@task(name="validate-input")
def validate_input(
    source: str, reader_options: dict[str, Any], metadata: dict[str, Any]
) -> dict[str, Any]:
    """Open and check the input and the metadata before any work; returns the input's layout."""
    validate(metadata, "volume", source=f"metadata for {source}")
    reader = open_reader(source, **reader_options)
    return {"shape": list(reader.shape), "dtype": str(reader.dtype), "files": len(reader.files())}


@task(name="write-store")
def write_store(
    source: str,
    output: str,
    reader_options: dict[str, Any],
    metadata: dict[str, Any],
    chunks: list[int] | None,
    levels: int | None,
    settings_overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """Stream the input into the store on the configured Dask cluster (resumes if unfinished)."""
    settings = settings_from(settings_overrides)
    reader = open_reader(source, **reader_options)
    meta = VolumeMetadata.from_dict(metadata, source=f"metadata for {source}")
    with dask_client(settings):
        report = ingest(
            reader,
            output,
            meta,
            chunks=tuple(chunks or settings.chunks),
            levels=levels,
            storage_options=settings.storage_options(output),
            run_id=current_run_id(),
            parameters={"reader_options": reader_options},
        )
    return report.__dict__


@task(name="register-store", retries=3, retry_delay_seconds=2)
def register_store(output: str, settings_overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Add the store to the catalog (retried: a shared catalog database may be busy)."""
    settings = settings_from(settings_overrides)
    entry = register(
        output,
        catalog_url=settings.resolved_catalog_url,
        storage_options=settings.storage_options(output),
    )
    return {"url": entry.url, "sample_id": entry.sample_id, "modality": entry.modality}


@flow(name="ooc-ingest", validate_parameters=True)
def ingest_flow(
    source: str,
    output: str,
    metadata: dict[str, Any],
    reader_options: dict[str, Any] | None = None,
    chunks: list[int] | None = None,
    levels: int | None = None,
    catalog: bool = True,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ingest ``source`` into the volume store ``output``; safe to re-run after a failure.

    ``metadata`` follows ``schemas/volume.schema.json``; ``reader_options`` are those of
    :func:`ooc.io.open_reader` (shape, dtype, byte_order, offset for raw; dataset for HDF5).
    """
    reader_options = reader_options or {}
    layout = validate_input(source, reader_options, metadata)
    report = write_store(
        source, output, reader_options, metadata, chunks, levels, settings_overrides
    )
    if catalog:
        register_store(output, settings_overrides)
    return {**report, "input": layout}
