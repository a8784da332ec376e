"""The catalog: every store ooc writes, searchable by sample, modality, voxel size, shape, time.

SQLite by default (a file in the data folder); any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@db/ooc`` where many users share one catalog. Registering the same
store again updates its row, so re-running a flow never duplicates entries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import JSON, DateTime, Float, Integer, String, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ooc.io.store import STATUS_COMPLETE, VolumeStore
from ooc.units import metres_per_unit

__all__ = ["Entry", "register", "search"]


class _Base(DeclarativeBase):
    pass


class _Volume(_Base):
    __tablename__ = "volumes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True, index=True)
    sample_id: Mapped[str] = mapped_column(String(256), index=True)
    modality: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(16))
    voxel_z: Mapped[float] = mapped_column(Float)
    voxel_y: Mapped[float] = mapped_column(Float)
    voxel_x: Mapped[float] = mapped_column(Float)
    voxel_m: Mapped[float] = mapped_column(Float, index=True)  # largest edge, metres
    shape_z: Mapped[int] = mapped_column(Integer)
    shape_y: Mapped[int] = mapped_column(Integer)
    shape_x: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    registered: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)


@dataclass(frozen=True)
class Entry:
    """One catalogued store. ``voxel_size`` is (z, y, x) in ``unit``; times are UTC."""

    url: str
    sample_id: str
    modality: str
    kind: str
    voxel_size: tuple[float, float, float]
    unit: str
    shape: tuple[int, int, int]
    dtype: str
    created: dt.datetime
    extra: dict[str, Any]

    @classmethod
    def _from_row(cls, row: _Volume) -> Entry:
        return cls(
            url=row.url,
            sample_id=row.sample_id,
            modality=row.modality,
            kind=row.kind,
            voxel_size=(row.voxel_z, row.voxel_y, row.voxel_x),
            unit=row.unit,
            shape=(row.shape_z, row.shape_y, row.shape_x),
            dtype=row.dtype,
            created=_utc(row.created),
            extra=row.extra,
        )


def _utc(when: dt.datetime) -> dt.datetime:
    """Aware UTC time; a naive time is taken as UTC (as stored)."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


@cache
def _engine(catalog_url: str) -> Engine:
    if catalog_url.startswith("sqlite:///"):
        Path(catalog_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(catalog_url)
    _Base.metadata.create_all(engine)
    return engine


@contextmanager
def _session(catalog_url: str) -> Iterator[Session]:
    with Session(_engine(catalog_url)) as session, session.begin():
        yield session


def register(
    url: str,
    *,
    catalog_url: str,
    storage_options: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Entry:
    """Add (or update) the complete volume store at ``url`` in the catalog.

    Its sample, modality, kind, voxel size, shape, dtype and creation time come from the store.
    """
    store = VolumeStore.open(url, storage_options=storage_options)
    attrs = store.attrs
    if attrs.get("ooc_store", {}).get("status") != STATUS_COMPLETE:
        raise ValueError(f"{url}: the store is unfinished; only complete stores are catalogued")
    meta = store.metadata
    arr = store.array(0)
    history = attrs.get("ooc_history", [])
    created = (
        _utc(dt.datetime.fromisoformat(history[0]["time"])) if history else dt.datetime.now(dt.UTC)
    )
    now = dt.datetime.now(dt.UTC)
    values = {
        "sample_id": meta.sample_id,
        "modality": meta.modality,
        "kind": meta.kind,
        "unit": meta.unit,
        "voxel_z": meta.voxel_size[0],
        "voxel_y": meta.voxel_size[1],
        "voxel_x": meta.voxel_size[2],
        "voxel_m": max(meta.voxel_size) * metres_per_unit(meta.unit),
        "shape_z": arr.shape[0],
        "shape_y": arr.shape[1],
        "shape_x": arr.shape[2],
        "dtype": np.dtype(arr.dtype).name,
        "created": created,
        "registered": now,
        "extra": {"acquisition": meta.acquisition, **(extra or {})},
    }
    with _session(catalog_url) as session:
        row = session.scalars(select(_Volume).where(_Volume.url == url)).one_or_none()
        if row is None:
            row = _Volume(url=url, **values)
            session.add(row)
        else:
            for key, value in values.items():
                setattr(row, key, value)
        session.flush()
        return Entry._from_row(row)


def search(
    *,
    catalog_url: str,
    sample: str | None = None,
    modality: str | None = None,
    kind: str | None = None,
    min_voxel: float | None = None,
    max_voxel: float | None = None,
    voxel_unit: str = "micrometer",
    dtype: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    min_voxels: int | None = None,
    url_contains: str | None = None,
) -> list[Entry]:
    """Catalogued stores matching every filter given, newest first.

    ``sample`` accepts SQL ``%`` / shell ``*`` wildcards; voxel-size bounds compare the largest
    voxel edge, in ``voxel_unit``, whatever unit each store uses; ``min_voxels`` bounds the
    voxel count; ``since``/``until`` bound the creation time.
    """
    scale = metres_per_unit(voxel_unit)
    if scale is None:
        raise ValueError(
            f"voxel_unit {voxel_unit!r}: not a known length unit (e.g. 'micrometer', 'nm')"
        )
    query = select(_Volume)
    if sample:
        query = query.where(_Volume.sample_id.like(sample.replace("*", "%")))
    if modality:
        query = query.where(_Volume.modality == modality)
    if kind:
        query = query.where(_Volume.kind == kind)
    # a relative tolerance so that 2.0 µm entered by a user matches 2e-6 m stored
    if min_voxel is not None:
        query = query.where(_Volume.voxel_m >= min_voxel * scale * (1 - 1e-9))
    if max_voxel is not None:
        query = query.where(_Volume.voxel_m <= max_voxel * scale * (1 + 1e-9))
    if dtype:
        query = query.where(_Volume.dtype == np.dtype(dtype).name)
    if since:
        query = query.where(_Volume.created >= _utc(since))
    if until:
        query = query.where(_Volume.created <= _utc(until))
    if min_voxels:
        query = query.where(_Volume.shape_z * _Volume.shape_y * _Volume.shape_x >= min_voxels)
    if url_contains:
        query = query.where(_Volume.url.contains(url_contains))
    with _session(catalog_url) as session:
        rows = session.scalars(query.order_by(_Volume.created.desc(), _Volume.id.desc())).all()
        return [Entry._from_row(r) for r in rows]
