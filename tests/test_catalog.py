"""The catalog finds stores by sample, modality, kind, voxel size (any unit), dtype and time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from ooc.catalog import register, search
from ooc.errors import StoreError
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata

SCANS = [
    ("sand-A", "MicroCT", (2.0, 2.0, 2.0), "micrometer", "grey", np.uint16),
    ("sand-A", "FIB-SEM", (30.0, 20.0, 20.0), "nanometer", "grey", np.uint8),
    ("sand-A", "TEM", (2.0, 2.0, 2.0), "nanometer", "labels", np.uint8),
    ("clay-B", "MicroCT", (0.5, 0.5, 0.5), "micrometer", "grey", np.uint16),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("catalog")
    url = f"sqlite:///{root / 'catalog.sqlite'}"
    for i, (sample, modality, voxel, unit, kind, dtype) in enumerate(SCANS):
        np.save(root / f"{i}.npy", np.full((4, 5, 6), i, dtype=dtype))
        out = str(root / f"{i}.zarr")
        ingest(
            open_reader(root / f"{i}.npy"),
            out,
            VolumeMetadata(sample, modality, voxel, unit, kind),
            progress=False,
        )
        register(out, catalog_url=url)
    return url


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [3, 2, 1, 0]),
        ({"sample": "sand-A"}, [2, 1, 0]),
        ({"sample": "*B"}, [3]),
        ({"modality": "MicroCT"}, [3, 0]),
        ({"kind": "labels"}, [2]),
        ({"dtype": "uint8"}, [2, 1]),
        ({"max_voxel": 0.03}, [2, 1]),  # micrometres: 30 nm and 2 nm
        ({"min_voxel": 25, "voxel_unit": "nanometer"}, [3, 1, 0]),
        ({"min_voxel": 1.0, "max_voxel": 2.0}, [0]),
        ({"sample": "sand-A", "modality": "TEM"}, [2]),
        ({"until": dt.datetime(2000, 1, 1)}, []),
    ],
)
def test_search_filters(catalog: str, filters: dict, expected: list[int]) -> None:
    found = search(catalog_url=catalog, **filters)
    assert [Path(e.url).stem for e in found] == [str(i) for i in expected]


def test_entries_carry_the_store_description(catalog: str) -> None:
    (entry,) = search(catalog_url=catalog, modality="FIB-SEM")
    assert entry.voxel_size == (30.0, 20.0, 20.0)
    assert entry.unit == "nanometer"
    assert entry.shape == (4, 5, 6)
    assert entry.created <= dt.datetime.now(dt.UTC)
    assert search(
        catalog_url=catalog, since=entry.created - dt.timedelta(seconds=1), modality="FIB-SEM"
    )


def test_registering_again_updates_instead_of_duplicating(catalog: str) -> None:
    url = search(catalog_url=catalog, kind="labels")[0].url
    register(url, catalog_url=catalog)
    assert len(search(catalog_url=catalog)) == len(SCANS)


def test_unfinished_or_foreign_stores_are_refused(tmp_path: Path, catalog: str) -> None:
    import zarr

    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not an ooc volume store"):
        register(str(tmp_path / "plain.zarr"), catalog_url=catalog)
