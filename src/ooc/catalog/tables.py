"""The catalog's tables as the newest migration leaves them (``migrations/versions``).

``stores``   one row per catalogued store or model folder: what it is, where it is, its scale
             (volume columns are NULL where unknown) and its stage record
``parents``  lineage: one row per (child store, parent URL, role) with the parent's digest as the
             child recorded it; parents are named by URL, so a parent need not be catalogued
``numbers``  the key numbers of each store (porosity, tau_z, ...), indexed by (name, value) so
             that conditions on them are answered in SQL
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Number", "Parent", "Store"]

URL_LENGTH = 2048


class _Base(DeclarativeBase):
    pass


class Store(_Base):
    """A catalogued store; see the module docstring."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_LENGTH), unique=True, index=True)
    store_kind: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str | None] = mapped_column(String(32), index=True)
    sample_id: Mapped[str | None] = mapped_column(String(256), index=True)
    modality: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str | None] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(16))
    voxel_z: Mapped[float | None] = mapped_column(Float)
    voxel_y: Mapped[float | None] = mapped_column(Float)
    voxel_x: Mapped[float | None] = mapped_column(Float)
    voxel_m: Mapped[float | None] = mapped_column(Float, index=True)
    shape_z: Mapped[int | None] = mapped_column(Integer)
    shape_y: Mapped[int | None] = mapped_column(Integer)
    shape_x: Mapped[int | None] = mapped_column(Integer)
    dtype: Mapped[str | None] = mapped_column(String(16))
    digest: Mapped[str | None] = mapped_column(String(64), index=True)
    code_version: Mapped[int | None] = mapped_column(Integer)
    model_digest: Mapped[str | None] = mapped_column(String(64))
    ooc_version: Mapped[str | None] = mapped_column(String(32))
    seconds: Mapped[float | None] = mapped_column(Float)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    registered: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)


class Parent(_Base):
    """One lineage edge: the store ``child_id`` was made from ``url`` in ``role``."""

    __tablename__ = "parents"

    child_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(URL_LENGTH), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str | None] = mapped_column(String(64))


class Number(_Base):
    """One key number of a store; NULL stands for NaN (SQLite cannot store NaN)."""

    __tablename__ = "numbers"
    __table_args__ = (Index("ix_numbers_name_value", "name", "value"),)

    store_id: Mapped[int] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
