"""Schema migrations: a new catalog is created by them and matches the tables ooc queries; a
catalog from before migrations (one ``volumes`` table) upgrades in place with its rows kept;
downgrading gives the volume rows back. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, DateTime, Float, Integer, String, create_engine, inspect, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ooc.catalog import register, search
from ooc.catalog.engine import HEAD, _alembic_config, engine_for, migrate
from ooc.catalog.tables import Store
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]


class _OldBase(DeclarativeBase):
    pass


class _OldVolume(_OldBase):
    """The catalog's only table before migrations (ooc at commit 65de1d7), created with
    ``metadata.create_all``: copied here as it was."""

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


def _old_row(url: str, sample: str, modality: str, voxel_nm: float, day: int) -> _OldVolume:
    return _OldVolume(
        url=url,
        sample_id=sample,
        modality=modality,
        kind="grey",
        unit="nanometer",
        voxel_z=voxel_nm,
        voxel_y=voxel_nm,
        voxel_x=voxel_nm,
        voxel_m=voxel_nm * 1e-9,
        shape_z=4,
        shape_y=5,
        shape_x=6,
        dtype="uint16",
        created=dt.datetime(2026, 1, day, 12, tzinfo=dt.UTC),
        registered=dt.datetime(2026, 1, day, 13, tzinfo=dt.UTC),
        extra={"acquisition": {"kV": 80 + day}},
    )


@pytest.fixture(params=BACKENDS)
def old_catalog(
    request: pytest.FixtureRequest, new_catalog: Callable[[str | None], str], tmp_path: Path
) -> tuple[str, str]:
    """A catalog as ooc made it before migrations, holding three volume stores, one real;
    returns its URL and the real store's URL."""
    server = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    url = new_catalog(server)
    np.save(tmp_path / "scan.npy", np.zeros((4, 5, 6), dtype=np.uint16))
    real = str(tmp_path / "real.zarr")
    meta = VolumeMetadata("sand-A", "TEM", (2.0, 2.0, 2.0), "nanometer")
    ingest(open_reader(tmp_path / "scan.npy"), real, meta, progress=False)
    engine = create_engine(url)
    _OldBase.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                _old_row("/archive/a.zarr", "sand-A", "MicroCT", 2000.0, 1),
                _old_row(real, "sand-A", "TEM", 2.0, 2),
                _old_row("s3://scans/b.zarr", "clay-B", "FIB-SEM", 20.0, 3),
            ]
        )
    engine.dispose()
    return url, real


def test_an_old_catalog_upgrades_in_place(old_catalog: tuple[str, str]) -> None:
    url, real = old_catalog
    found = search(catalog_url=url)  # the first use migrates
    assert list(found["url"]) == ["s3://scans/b.zarr", real, "/archive/a.zarr"]
    assert set(found["store_kind"]) == {"volume"}
    assert found["stage"].isna().all()
    assert list(found["voxel_x"]) == [20.0, 2.0, 2000.0]
    assert list(found["created"].dt.day) == [3, 2, 1]
    assert list(search(catalog_url=url, max_voxel=0.5)["url"]) == ["s3://scans/b.zarr", real]
    engine = engine_for(url)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == HEAD
        extra = connection.scalar(select(Store.extra).where(Store.url == "/archive/a.zarr"))
    assert extra == {"acquisition": {"kV": 81}}
    assert not inspect(engine).has_table("volumes")
    entry = register(real, catalog_url=url)  # the old row is updated, not duplicated
    assert entry.digest is not None
    assert len(search(catalog_url=url)) == 3
    assert search(catalog_url=url, modality="TEM")["digest"].item() == entry.digest


def test_migrations_make_the_tables_ooc_queries(catalog_url: str) -> None:
    """The schema the migrations build is the one ``tables.py`` describes (no drift)."""
    engine = engine_for(catalog_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Store.metadata) == []


def test_downgrading_gives_the_volume_rows_back(
    old_catalog: tuple[str, str], make_store: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    url, real = old_catalog
    make_store(tmp_path / "r.zarr", stage="measure", store_kind="results", numbers={"k": 1.0})
    register(str(tmp_path / "r.zarr"), catalog_url=url)
    engine = engine_for(url)
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0001")
    with Session(engine) as session:
        rows = session.scalars(select(_OldVolume).order_by(_OldVolume.id)).all()
        assert [r.url for r in rows] == ["/archive/a.zarr", real, "s3://scans/b.zarr"]
        assert rows[0].extra == {"acquisition": {"kV": 81}}
    assert not inspect(engine).has_table("stores")
    assert migrate(engine) == HEAD
    assert len(search(catalog_url=url)) == 3
