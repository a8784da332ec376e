"""Every stage output registers with its record, lineage and key numbers, at an absolute URL,
on SQLite and on PostgreSQL; lineage and descendants follow a volume -> labels -> results chain."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zarr

import ooc
from ooc.catalog import LINEAGE_COLUMNS, descendants, lineage, register, search
from ooc.errors import MetadataError, StoreError
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata

KINDS = [
    # store kind, stage, shape of level 0 (None: no volume), kind column
    ("volume", "ingest", (4, 5, 6), "grey"),
    ("labels", "segment", (4, 5, 6), "labels"),
    ("probabilities", "segment", (3, 4, 5, 6), "grey"),
    ("uncertainty", "segment", (4, 5, 6), "grey"),
    ("model", "train", None, "forest"),
    ("results", "measure", None, None),
]


@pytest.mark.parametrize(("store_kind", "stage", "shape", "kind"), KINDS)
def test_every_store_kind_registers(
    tmp_path: Path,
    catalog_url: str,
    make_store: Callable[..., dict[str, Any]],
    store_kind: str,
    stage: str,
    shape: tuple[int, ...] | None,
    kind: str | None,
) -> None:
    path = tmp_path / f"{store_kind}.out"
    numbers = {"porosity": 0.25, "fraction_pore": 0.25, "tau_z": 2.5}
    record = make_store(
        path,
        stage=stage,
        store_kind=store_kind,
        numbers=numbers,
        shape=shape or (1, 1, 1),
        voxel_size=(0.5, 0.5, 1.0),
        model_digest="a" * 64 if stage == "segment" else None,
    )
    entry = register(str(path), catalog_url=catalog_url)
    assert (entry.store_kind, entry.stage, entry.kind) == (store_kind, stage, kind)
    assert (entry.sample_id, entry.modality, entry.digest) == (
        "rock-1",
        "MicroCT",
        record["digest"],
    )
    assert entry.numbers == numbers
    assert entry.record == record
    (row,) = search(catalog_url=catalog_url).itertuples()
    assert (row.url, row.store_kind, row.stage) == (str(path), store_kind, stage)
    assert (row.porosity, row.fraction_pore, row.tau_z) == (0.25, 0.25, 2.5)
    assert (row.code_version, row.ooc_version, row.seconds) == (1, "0.1.0", 1.5)
    assert row.model_digest == record["model_digest"]
    assert row.created == pd.Timestamp("2026-11-30T21:00:00+00:00")
    if shape is not None:
        assert (row.shape_z, row.shape_y, row.shape_x) == shape[-3:]
        assert row.dtype == ("uint8" if kind == "labels" else "float32")
    else:
        assert pd.isna(row.shape_z)
        assert row.dtype is None
    if store_kind == "results":  # its record names no scale
        assert math.isnan(row.voxel_x)
        assert row.unit is None
    else:  # a model keeps the scale it was trained at
        assert (row.voxel_z, row.voxel_x, row.unit) == (0.5, 1.0, "micrometer")


def test_a_record_may_name_the_scale_of_a_results_store(
    tmp_path: Path, catalog_url: str, make_store: Callable[..., dict[str, Any]]
) -> None:
    for name in ("plain", "fine"):
        make_store(tmp_path / f"{name}.zarr", stage="measure", store_kind="results")
    fine = zarr.open_group(str(tmp_path / "fine.zarr"), mode="r+")
    fine.attrs["ooc_stage"] = {
        **fine.attrs["ooc_stage"],
        "voxel_size": [20.0, 20.0, 20.0],
        "unit": "nanometer",
    }
    entry = register(str(tmp_path / "fine.zarr"), catalog_url=catalog_url)
    assert (entry.voxel_size, entry.unit, entry.shape) == ((20.0, 20.0, 20.0), "nanometer", None)
    register(str(tmp_path / "plain.zarr"), catalog_url=catalog_url)
    found = search(catalog_url=catalog_url, max_voxel=0.02)
    assert [Path(u).name for u in found["url"]] == ["fine.zarr"]


def test_urls_are_absolute_and_open_from_anywhere(
    tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    np.save("scan.npy", np.arange(120, dtype=np.uint16).reshape(4, 5, 6))
    meta = VolumeMetadata("rock-1", "MicroCT", (1.0, 1.0, 1.0))
    ingest(open_reader("scan.npy"), "grey.zarr", meta, progress=False)
    entry = register("grey.zarr", catalog_url=catalog_url)
    register("./grey.zarr/", catalog_url=catalog_url)  # the same store, named otherwise
    assert entry.url == str((tmp_path / "data" / "grey.zarr").resolve())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    (url,) = search(catalog_url=catalog_url)["url"]
    assert os.path.isabs(url)
    np.testing.assert_array_equal(
        ooc.open_volume(url).values, np.load(tmp_path / "data" / "scan.npy")
    )


@pytest.fixture
def chain(
    tmp_path: Path,
    catalog_url: str,
    make_store: Callable[..., dict[str, Any]],
    parent_of: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """grey (ingest) and a model (train, from grey) -> labels (segment, from grey and model) ->
    results (measure, from labels and grey); a second sample's grey stands apart."""
    paths = {name: tmp_path / f"{name}.zarr" for name in ("grey", "labels", "results", "other")}
    paths["model"] = tmp_path / "model"
    grey = make_store(paths["grey"], stage="ingest", store_kind="volume")
    model = make_store(
        paths["model"],
        stage="train",
        store_kind="model",
        parents=[parent_of(paths["grey"], grey, "scribbles")],
    )
    labels = make_store(
        paths["labels"],
        stage="segment",
        store_kind="labels",
        parents=[
            parent_of(paths["grey"], grey, "volume"),
            parent_of(paths["model"], model, "model"),
        ],
        numbers={"mean_iou": 0.93},
    )
    results = make_store(
        paths["results"],
        stage="measure",
        store_kind="results",
        parents=[
            parent_of(paths["labels"], labels, "labels"),
            parent_of(paths["grey"], grey, "volume"),
        ],
        numbers={"porosity": 0.29, "tau_z": 2.5},
    )
    make_store(paths["other"], stage="ingest", store_kind="volume", sample_id="rock-2")
    for path in paths.values():
        register(str(path), catalog_url=catalog_url)
    records = {"grey": grey, "model": model, "labels": labels, "results": results}
    return {"paths": {k: str(v) for k, v in paths.items()}, "records": records, "url": catalog_url}


def _edges(frame: pd.DataFrame, names: dict[str, str]) -> set[tuple[str, int, str, str, str, str]]:
    short = {v: k for k, v in names.items()}
    return {
        (r.relation, r.depth, short[r.url], short[r.parent], short[r.child], r.role)
        for r in frame.itertuples()
    }


def test_lineage_goes_up_to_every_ancestor(chain: dict[str, Any]) -> None:
    found = lineage(chain["paths"]["results"], catalog_url=chain["url"])
    assert list(found.columns) == list(LINEAGE_COLUMNS)
    assert _edges(found, chain["paths"]) == {
        ("ancestor", 1, "labels", "labels", "results", "labels"),
        ("ancestor", 1, "grey", "grey", "results", "volume"),
        ("ancestor", 2, "grey", "grey", "labels", "volume"),
        ("ancestor", 2, "model", "model", "labels", "model"),
        ("ancestor", 3, "grey", "grey", "model", "scribbles"),
    }
    assert list(found["depth"]) == sorted(found["depth"])
    digests = {k: r["digest"] for k, r in chain["records"].items()}
    short = {v: k for k, v in chain["paths"].items()}
    for row in found.itertuples():
        assert row.digest == row.recorded_digest == digests[short[row.url]]
        assert row.stage == chain["records"][short[row.url]]["stage"]
    assert not found["parent_changed"].any()


def test_lineage_goes_down_to_every_descendant(chain: dict[str, Any]) -> None:
    found = lineage(chain["paths"]["grey"], catalog_url=chain["url"])
    assert _edges(found, chain["paths"]) == {
        ("descendant", 1, "model", "grey", "model", "scribbles"),
        ("descendant", 1, "labels", "grey", "labels", "volume"),
        ("descendant", 1, "results", "grey", "results", "volume"),
        ("descendant", 2, "labels", "model", "labels", "model"),
        ("descendant", 2, "results", "labels", "results", "labels"),
    }
    middle = lineage(chain["paths"]["labels"], catalog_url=chain["url"])
    assert set(middle["relation"]) == {"ancestor", "descendant"}
    assert list(middle["relation"]) == sorted(middle["relation"])  # ancestors first
    assert lineage(chain["paths"]["other"], catalog_url=chain["url"]).empty


def test_descendants_in_an_order_to_redo_them(chain: dict[str, Any]) -> None:
    paths = chain["paths"]
    found = descendants(paths["grey"], catalog_url=chain["url"])
    # longest chains: grey -> model -> labels -> results
    assert [(Path(u).stem, d) for u, d in zip(found["url"], found["depth"], strict=True)] == [
        ("model", 1),
        ("labels", 2),
        ("results", 3),
    ]
    assert list(found["stage"]) == ["train", "segment", "measure"]
    assert found.set_index("url").loc[paths["results"], "porosity"] == 0.29
    assert list(descendants(paths["labels"], catalog_url=chain["url"])["url"]) == [paths["results"]]
    assert descendants(paths["results"], catalog_url=chain["url"]).empty
    assert descendants(paths["other"], catalog_url=chain["url"]).empty


def test_a_changed_parent_shows_in_lineage(
    chain: dict[str, Any], make_store: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    """Re-segmenting with other parameters changes the labels' digest: the results made from
    the old labels now name a parent that changed."""
    paths = chain["paths"]
    old = chain["records"]["labels"]
    Path(paths["labels"], "zarr.json").unlink()
    make_store(
        Path(paths["labels"]),
        stage="segment",
        store_kind="labels",
        parents=old["parents"],
        parameters={"sigma": 2.0},
        numbers={"mean_iou": 0.95},
    )
    entry = register(paths["labels"], catalog_url=chain["url"])
    assert entry.digest != old["digest"]
    found = lineage(paths["results"], catalog_url=chain["url"])
    changed = found[found["parent_changed"]]
    assert list(zip(changed["parent"], changed["child"], strict=True)) == [
        (paths["labels"], paths["results"])
    ]
    assert changed["recorded_digest"].item() == old["digest"]
    assert changed["digest"].item() == entry.digest
    assert search(catalog_url=chain["url"], where="mean_iou > 0.94")["url"].tolist() == [
        paths["labels"]
    ]


def test_an_uncatalogued_parent_is_still_lineage(
    tmp_path: Path,
    catalog_url: str,
    make_store: Callable[..., dict[str, Any]],
) -> None:
    scribbles = {"url": str(tmp_path / "scribbles.tif"), "digest": "b" * 64, "role": "scribbles"}
    make_store(tmp_path / "m", stage="train", store_kind="model", parents=[scribbles])
    register(str(tmp_path / "m"), catalog_url=catalog_url)
    (row,) = lineage(str(tmp_path / "m"), catalog_url=catalog_url).itertuples()
    assert (row.url, row.digest, row.recorded_digest) == (scribbles["url"], None, "b" * 64)
    assert pd.isna(row.parent_changed)
    assert descendants(scribbles["url"], catalog_url=catalog_url)["url"].tolist() == [
        str(tmp_path / "m")
    ]
    with pytest.raises(StoreError, match=r"nowhere\.zarr: not in the catalog"):
        lineage(str(tmp_path / "nowhere.zarr"), catalog_url=catalog_url)


def test_registering_again_replaces_lineage_and_numbers(
    tmp_path: Path, catalog_url: str, make_store: Callable[..., dict[str, Any]]
) -> None:
    a = {"url": "/data/a.zarr", "digest": "a" * 64, "role": "volume"}
    b = {"url": "/data/b.zarr", "digest": "b" * 64, "role": "volume"}
    out = tmp_path / "r.zarr"
    make_store(out, stage="measure", store_kind="results", parents=[a], numbers={"porosity": 0.1})
    register(str(out), catalog_url=catalog_url)
    make_store(out, stage="measure", store_kind="results", parents=[b, b], numbers={"tau_z": 3.0})
    entry = register(str(out), catalog_url=catalog_url)
    assert entry.parents == (b,)
    found = search(catalog_url=catalog_url)
    assert len(found) == 1
    assert "porosity" not in found.columns
    assert found["tau_z"].tolist() == [3.0]
    assert lineage(str(out), catalog_url=catalog_url)["url"].tolist() == ["/data/b.zarr"]
    with pytest.raises(StoreError):
        lineage("/data/a.zarr", catalog_url=catalog_url)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"status": "writing"}, StoreError, "unfinished store .*'ooc_stage/status' is 'writing'"),
        (
            {"store_kind": "table"},
            MetadataError,
            "'ooc_stage/store_kind' is 'table'; expected one of",
        ),
        ({"digest": "abc"}, MetadataError, "'ooc_stage/digest' is 'abc'; expected 64"),
        (
            {"code_version": "1"},
            MetadataError,
            "'ooc_stage/code_version' is '1'; expected an integer",
        ),
        ({"numbers": {"k-z": 1.0}}, MetadataError, "'ooc_stage/numbers/k-z'"),
        (
            {"numbers": {"k": "high"}},
            MetadataError,
            "'ooc_stage/numbers/k' is 'high'; expected a number",
        ),
        ({"parents": [{"url": "/a"}]}, MetadataError, "'ooc_stage/parents/0/role' is None"),
        ({"finished": "yesterday"}, MetadataError, "'ooc_stage/finished' is 'yesterday'"),
    ],
)
def test_malformed_or_unfinished_records_are_refused(
    tmp_path: Path,
    catalog_url: str,
    make_store: Callable[..., dict[str, Any]],
    change: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    make_store(tmp_path / "bad.zarr", **{"stage": "measure", "store_kind": "results", **change})
    with pytest.raises(error, match=rf"bad\.zarr: .*{match}"):
        register(str(tmp_path / "bad.zarr"), catalog_url=catalog_url)
    assert search(catalog_url=catalog_url).empty


def test_a_model_folder_without_a_record_is_refused(tmp_path: Path, catalog_url: str) -> None:
    (tmp_path / "old-model").mkdir()
    (tmp_path / "old-model" / "model.json").write_text('{"format": "ooc-model"}')
    with pytest.raises(StoreError, match="model folder without an 'ooc_stage' record"):
        register(str(tmp_path / "old-model"), catalog_url=catalog_url)


def test_numbers_that_are_not_finite(
    tmp_path: Path, catalog_url: str, make_store: Callable[..., dict[str, Any]]
) -> None:
    """A non-percolating sample has tau = inf; a number that could not be computed is NaN
    (None in JSON). Neither matches a condition except inf on an open upper side."""
    make_store(
        tmp_path / "closed.zarr",
        stage="simulate",
        store_kind="results",
        numbers={"tau_z": math.inf, "porosity": None},
    )
    make_store(
        tmp_path / "open.zarr",
        stage="simulate",
        store_kind="results",
        numbers={"tau_z": 2.0, "porosity": 0.3},
    )
    for name in ("closed", "open"):
        register(str(tmp_path / f"{name}.zarr"), catalog_url=catalog_url)
    found = search(catalog_url=catalog_url).set_index("url")
    closed = str(tmp_path / "closed.zarr")
    assert found.loc[closed, "tau_z"] == math.inf
    assert math.isnan(found.loc[closed, "porosity"])

    def names(where: str) -> list[str]:
        return sorted(Path(u).stem for u in search(catalog_url=catalog_url, where=where)["url"])

    assert names("tau_z > 100") == ["closed"]
    assert names("tau_z < 100") == ["open"]
    assert names("porosity >= 0") == ["open"]
    assert names("porosity != 0.5") == ["open"]


def test_sample_patterns_match_only_their_wildcards(
    tmp_path: Path, catalog_url: str, make_store: Callable[..., dict[str, Any]]
) -> None:
    for sample in ("rock_1", "rockX1", "rock-10"):
        make_store(
            tmp_path / f"{sample}.zarr", stage="measure", store_kind="results", sample_id=sample
        )
        register(str(tmp_path / f"{sample}.zarr"), catalog_url=catalog_url)

    def samples(pattern: str) -> list[str]:
        return sorted(search(catalog_url=catalog_url, sample=pattern)["sample_id"])

    assert samples("rock_1") == ["rock_1"]
    assert samples("rock*1") == samples("rock%1") == ["rockX1", "rock_1"]
    assert samples("rock*") == ["rock-10", "rockX1", "rock_1"]
