"""Registering a store: its row, its lineage and its key numbers, replaced as one transaction."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ooc.catalog.engine import writing
from ooc.catalog.records import describe, json_safe, utc
from ooc.catalog.tables import Number, Parent, Store

__all__ = ["Entry", "register"]


@dataclass(frozen=True)
class Entry:
    """One catalogued store or model folder, as :func:`register` stored it.

    ``voxel_size`` is (z, y, x) in ``unit`` and ``shape`` (z, y, x) in voxels where known (None
    otherwise); ``kind`` is grey/labels for volume-like stores, forest/unet for models;
    ``store_kind`` is volume, labels, probabilities, uncertainty, model or results; ``parents``
    are ``{"url", "digest", "role"}``; ``numbers`` the key numbers (NaN where not a number);
    ``record`` the store's full ``ooc_stage`` record (None for volume stores from before stages;
    a non-finite float in it or in ``extra`` is kept as the string "inf", "-inf" or "nan").
    Times are UTC.
    """

    url: str
    sample_id: str | None
    modality: str | None
    kind: str | None
    voxel_size: tuple[float, float, float] | None
    unit: str | None
    shape: tuple[int, int, int] | None
    dtype: str | None
    created: dt.datetime
    extra: dict[str, Any]
    store_kind: str
    stage: str | None
    digest: str | None
    parents: tuple[dict[str, str | None], ...]
    numbers: dict[str, float]
    record: dict[str, Any] | None


def _entry(row: Store, parents: list[dict[str, str | None]], numbers: dict[str, float]) -> Entry:
    voxel = (row.voxel_z, row.voxel_y, row.voxel_x)
    shape = (row.shape_z, row.shape_y, row.shape_x)
    return Entry(
        url=row.url,
        sample_id=row.sample_id,
        modality=row.modality,
        kind=row.kind,
        voxel_size=None if None in voxel else voxel,  # type: ignore[arg-type]
        unit=row.unit,
        shape=None if None in shape else shape,  # type: ignore[arg-type]
        dtype=row.dtype,
        created=utc(row.created),
        extra=row.extra,
        store_kind=row.store_kind,
        stage=row.stage,
        digest=row.digest,
        parents=tuple(parents),
        numbers=numbers,
        record=row.record,
    )


def register(
    url: str,
    *,
    catalog_url: str,
    storage_options: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Entry:
    """Add (or update) the complete store or model folder at ``url`` in the catalog.

    Everything is read from the store: its ``ooc_stage`` record (stage, digest, parents, key
    numbers, sample, modality, store kind) and, for volume-like stores, voxel size, shape and
    dtype; a volume store without a record registers from its ``ooc`` metadata. A local ``url``
    is stored as an absolute path. Registering a store again replaces its row, lineage and numbers.

    Parameters
    ----------
    url
        The store (local path or fsspec URL) or model folder.
    catalog_url
        SQLAlchemy URL of the catalog (``sqlite:///...``, ``postgresql+psycopg://...``).
    storage_options
        fsspec options to read ``url`` (e.g. an S3 endpoint).
    extra
        JSON-able fields kept with the entry (``Entry.extra``).

    Raises
    ------
    StoreError
        If ``url`` holds no ooc store or model folder, or one that is unfinished.
    MetadataError
        If its record is malformed.
    """
    found = describe(url, storage_options=storage_options)
    now = dt.datetime.now(dt.UTC)
    columns = {
        **found.columns,
        "created": found.columns["created"] or now,
        "registered": now,
        "extra": json_safe({**found.columns["extra"], **(extra or {})}),
    }
    parents = list({(p["url"], p["role"]): p for p in found.parents}.values())

    def store(session: Session) -> Entry:
        row = session.scalars(select(Store).where(Store.url == found.url)).one_or_none()
        if row is None:
            row = Store(url=found.url, **columns)
            session.add(row)
            session.flush()
        else:
            for key, value in columns.items():
                setattr(row, key, value)
            session.execute(delete(Parent).where(Parent.child_id == row.id))
            session.execute(delete(Number).where(Number.store_id == row.id))
        session.add_all(
            Parent(child_id=row.id, url=p["url"], role=p["role"], digest=p["digest"])
            for p in parents
        )
        session.add_all(
            Number(store_id=row.id, name=name, value=None if math.isnan(value) else value)
            for name, value in found.numbers.items()
        )
        session.flush()
        return _entry(row, parents, found.numbers)

    return writing(catalog_url, store)
