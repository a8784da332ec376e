"""The catalog finds volume stores by sample, modality, kind, voxel size (any unit), dtype and
time, on SQLite and on PostgreSQL; volume stores from before stages register from their metadata."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from ooc.catalog import COLUMNS, register, search
from ooc.errors import ConfigError, StoreError
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata

SCANS = [
    ("sand-A", "MicroCT", (2.0, 2.0, 2.0), "micrometer", "grey", np.uint16),
    ("sand-A", "FIB-SEM", (30.0, 20.0, 20.0), "nanometer", "grey", np.uint8),
    ("sand-A", "TEM", (2.0, 2.0, 2.0), "nanometer", "labels", np.uint8),
    ("clay-B", "MicroCT", (0.5, 0.5, 0.5), "micrometer", "grey", np.uint16),
]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four scans ingested (ooc's volume stores, without a stage record)."""
    root = tmp_path_factory.mktemp("volumes")
    for i, (sample, modality, voxel, unit, kind, dtype) in enumerate(SCANS):
        np.save(root / f"{i}.npy", np.full((4, 5, 6), i, dtype=dtype))
        ingest(
            open_reader(root / f"{i}.npy"),
            str(root / f"{i}.zarr"),
            VolumeMetadata(sample, modality, voxel, unit, kind),
            progress=False,
        )
    return root


@pytest.fixture(scope="module", params=BACKENDS)
def catalog(
    request: pytest.FixtureRequest, volumes: Path, new_catalog: Callable[[str | None], str]
) -> str:
    server = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    url = new_catalog(server)
    for i in range(len(SCANS)):
        register(str(volumes / f"{i}.zarr"), catalog_url=url)
    return url


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [3, 2, 1, 0]),
        ({"sample": "sand-A"}, [2, 1, 0]),
        ({"sample": "*B"}, [3]),
        ({"modality": "MicroCT"}, [3, 0]),
        ({"kind": "labels"}, [2]),
        ({"store_kind": "volume"}, [3, 2, 1, 0]),
        ({"store_kind": "results"}, []),
        ({"dtype": "uint8"}, [2, 1]),
        ({"max_voxel": 0.03}, [2, 1]),  # micrometres: 30 nm and 2 nm
        ({"min_voxel": 25, "voxel_unit": "nanometer"}, [3, 1, 0]),
        ({"min_voxel": 1.0, "max_voxel": 2.0}, [0]),
        ({"min_voxels": 120}, [3, 2, 1, 0]),
        ({"min_voxels": 121}, []),
        ({"url_contains": "2.zarr"}, [2]),
        ({"sample": "sand-A", "modality": "TEM"}, [2]),
        ({"until": dt.datetime(2000, 1, 1)}, []),
    ],
)
def test_search_filters(catalog: str, filters: dict, expected: list[int]) -> None:
    found = search(catalog_url=catalog, **filters)
    assert [Path(u).stem for u in found["url"]] == [str(i) for i in expected]
    assert list(found.columns) == list(COLUMNS)  # volume stores have no key numbers


def test_rows_carry_the_store_description(catalog: str) -> None:
    (row,) = search(catalog_url=catalog, modality="FIB-SEM").itertuples()
    assert (row.voxel_z, row.voxel_y, row.voxel_x) == (30.0, 20.0, 20.0)
    assert row.unit == "nanometer"
    assert (row.shape_z, row.shape_y, row.shape_x) == (4, 5, 6)
    assert (row.store_kind, row.kind, row.dtype, row.stage) == ("volume", "grey", "uint8", None)
    assert len(row.digest) == 64  # from the store's first provenance record, as stages name it
    assert row.extra == {"acquisition": {}}
    assert row.created <= dt.datetime.now(dt.UTC)
    later = search(catalog_url=catalog, since=row.created - dt.timedelta(seconds=1))
    assert "FIB-SEM" in set(later["modality"])
    newest = search(catalog_url=catalog)["created"].max()
    assert search(catalog_url=catalog, since=newest + dt.timedelta(seconds=1)).empty


def test_registering_again_updates_instead_of_duplicating(catalog: str) -> None:
    url = search(catalog_url=catalog, kind="labels")["url"].item()
    entry = register(url, catalog_url=catalog, extra={"note": "checked"})
    assert (entry.url, entry.store_kind, entry.shape, entry.extra["note"]) == (
        url,
        "volume",
        (4, 5, 6),
        "checked",
    )
    assert len(search(catalog_url=catalog)) == len(SCANS)


def test_unknown_voxel_unit_is_refused(catalog: str) -> None:
    with pytest.raises(ConfigError, match="voxel_unit 'furlong'"):
        search(catalog_url=catalog, min_voxel=1, voxel_unit="furlong")


def test_unfinished_or_foreign_stores_are_refused(tmp_path: Path, catalog: str) -> None:
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match=r"plain\.zarr: not an ooc store"):
        register(str(tmp_path / "plain.zarr"), catalog_url=catalog)
    with pytest.raises(StoreError, match=r"missing\.zarr: no Zarr group or model folder"):
        register(str(tmp_path / "missing.zarr"), catalog_url=catalog)
    unfinished = zarr.open_group(str(tmp_path / "half.zarr"), mode="w")
    unfinished.attrs.update(
        ooc=VolumeMetadata("s", "MicroCT", (1.0, 1.0, 1.0)).to_dict(),
        ooc_store={"status": "writing"},
    )
    with pytest.raises(StoreError, match=r"half\.zarr: unfinished store"):
        register(str(tmp_path / "half.zarr"), catalog_url=catalog)
    assert len(search(catalog_url=catalog)) == len(SCANS)
