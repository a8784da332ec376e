"""Flow: ingest a raw scan into a volume store (registered in the catalog)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ._runtime import stage_task

__all__ = ["ingest_flow"]


@flow(name="ooc-ingest", validate_parameters=True)
def ingest_flow(
    source: str,
    output: str,
    metadata: dict[str, Any],
    reader_options: dict[str, Any] | None = None,
    chunks: list[int] | None = None,
    levels: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ingest ``source`` into the volume store ``output``; safe to re-run after a failure.

    ``metadata`` follows ``schemas/volume.schema.json``; ``reader_options`` are those of
    :func:`ooc.io.open_reader` (shape, dtype, byte_order, offset for raw; dataset for HDF5).
    """
    arguments = {
        "source": source,
        "output": output,
        "metadata": metadata,
        "reader_options": reader_options,
        "chunks": chunks,
        "levels": levels,
    }
    return stage_task("ingest", arguments, settings_overrides)
