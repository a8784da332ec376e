"""Every volume store ooc writes is a valid OME-Zarr (NGFF 0.5) image, and label stores (ingested
or segmented) are valid NGFF label images, checked against the NGFF JSON Schemas (ngff-zarr)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ngff_zarr
import numpy as np
import pytest

from ooc.config import load_settings
from ooc.features import FeatureSpec
from ooc.segment import save_model, simulate_scribbles, train_forest
from ooc.stages import run_ingest, run_segment
from ooc.synth import default_sample, render_scan

META = {"sample_id": "ngff", "modality": "MicroCT", "voxel_size": [2.0, 2.0, 2.0], "unit": "um"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ngff")
    truth, grey = render_scan(default_sample(seed=1, shape=(24, 32, 32)), "MicroCT")
    np.save(root / "grey.npy", grey)
    np.save(root / "labels.npy", truth.astype(np.uint8))
    settings = load_settings(data_dir=str(root / "data"))
    run_ingest(
        str(root / "grey.npy"),
        str(root / "grey.zarr"),
        metadata={**META, "kind": "grey"},
        settings=settings,
        chunks=(16, 16, 16),
    )
    names = {"0": "pore", "1": "grain", "2": "micro-porous"}
    run_ingest(
        str(root / "labels.npy"),
        str(root / "labels.zarr"),
        metadata={**META, "kind": "labels", "labels": names},
        settings=settings,
        chunks=(16, 16, 16),
    )
    import ooc

    model = train_forest(
        ooc.open_volume(str(root / "grey.zarr")),
        simulate_scribbles(truth, fraction=0.02, seed=0),
        FeatureSpec(filters={"gaussian": [0, 1.0]}),
        n_estimators=5,
    )
    save_model(model, root / "forest.model")
    run_segment(
        str(root / "grey.zarr"),
        str(root / "forest.model"),
        str(root / "seg.zarr"),
        settings=settings,
    )
    return root  # fmt: skip


def _ome(store: Path) -> dict:
    return {"ome": json.loads((store / "zarr.json").read_text())["attributes"]["ome"]}


@pytest.mark.parametrize(
    "name",
    ["grey.zarr", "labels.zarr", "seg.zarr", "seg.probabilities.zarr", "seg.uncertainty.zarr"],
)
def test_stores_are_valid_ngff_images(stores: Path, name: str) -> None:
    ngff_zarr.validate(_ome(stores / name), version="0.5", model="image", strict=True)


@pytest.mark.parametrize("name", ["labels.zarr", "seg.zarr"])
def test_label_stores_are_valid_ngff_label_images(stores: Path, name: str) -> None:
    ome = _ome(stores / name)
    ngff_zarr.validate(ome, version="0.5", model="label", strict=True)
    props = ome["ome"]["image-label"]["properties"]
    assert len(props) == 3
    assert all(p["class"] for p in props)


def test_a_broken_label_image_is_caught(stores: Path) -> None:
    ome = _ome(stores / "seg.zarr")
    ome["ome"]["image-label"]["colors"][0]["rgba"] = [300, 0, 0, 255]  # 0..255 per channel
    with pytest.raises(jsonschema.ValidationError, match="300 is greater than the maximum"):
        ngff_zarr.validate(ome, version="0.5", model="label", strict=True)
