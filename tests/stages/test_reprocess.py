"""Archive reprocessing: after a stage's code version is bumped (or a model's weights change),
``stale_outputs`` lists exactly the stores that stage made and what was made from them, and
``reprocess`` recomputes those and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

import ooc.stages.ingest
import ooc.stages.measure
import ooc.stages.segment
from ooc import catalog
from ooc.config import Settings, load_settings
from ooc.errors import ConfigError
from ooc.segment import load_model, save_model
from ooc.segment.scribbles import simulate_scribbles
from ooc.stages import run_ingest, run_measure, run_segment, run_simulate, run_train
from ooc.stages.record import open_results_store, read_record, remove
from ooc.stages.reprocess import format_stale, reprocess, stale_outputs
from ooc.synth import default_sample, render_scan

META = {"sample_id": "archive-1", "modality": "MicroCT", "voxel_size": [2.0] * 3, "unit": "um"}
SHAPE = (32, 32, 32)
VOXELS = 32**3


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A grey store and a small forest trained on it from scribbles (a label TIFF); never
    changed by the tests."""
    root = tmp_path_factory.mktemp("reprocess")
    truth, grey = render_scan(default_sample(seed=2, shape=SHAPE), "MicroCT")
    np.save(root / "grey.npy", grey)
    marks = simulate_scribbles(truth, fraction=0.02, seed=0)
    painted = np.zeros(truth.shape, np.uint8)
    painted[tuple(marks.coords.T)] = marks.labels
    tifffile.imwrite(root / "scribbles.tif", painted)
    settings = load_settings(data_dir=str(root / "data"))
    grey_url, forest = root / "grey.zarr", root / "forest"
    meta = {**META, "kind": "grey"}
    run_ingest(str(root / "grey.npy"), str(grey_url), metadata=meta, settings=settings, chunks=(16, 16, 16))  # fmt: skip
    names = {"1": "pore", "2": "grain", "3": "micro"}
    run_train(str(grey_url), str(root / "scribbles.tif"), str(forest), settings=settings, filters={"gaussian": [0, 1.0]}, class_names=names, n_estimators=5)  # fmt: skip
    return {"root": root, "grey": grey_url, "forest": forest}


def _chain(base: dict[str, Path], tmp_path: Path, model: Path | None = None) -> tuple[Settings, dict[str, str]]:  # fmt: skip
    """Segment, measure and simulate into ``tmp_path``, all in a catalog of this test's own
    (with the shared grey store and forest registered in it too)."""
    settings = load_settings(data_dir=str(tmp_path / "data"))
    model = model or base["forest"]
    for url in (base["grey"], model):
        catalog.register(str(url), catalog_url=settings.resolved_catalog_url)
    urls = {name: str(tmp_path / f"{name}.zarr") for name in ("seg", "measure", "sim")}
    run_segment(str(base["grey"]), str(model), urls["seg"], settings=settings)
    run_measure(urls["seg"], urls["measure"], settings=settings, pore="pore", objects="grain")
    run_simulate(urls["seg"], urls["sim"], settings=settings, pore="pore", route="whole", properties=["tortuosity"])  # fmt: skip
    return settings, urls


def _chunks(*folders: Path) -> dict[Path, int]:
    """Modification times of every chunk file under ``folders``."""
    return {
        p: p.stat().st_mtime_ns
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file() and "/c/" in str(p)
    }


def _rewritten(before: dict[Path, int]) -> set[str]:
    """The stores (top folder under their root) whose chunk files were written again."""
    return {
        next(part for part in p.parts if part.endswith(".zarr"))
        for p, mtime in before.items()
        if not p.exists() or p.stat().st_mtime_ns != mtime
    }


@pytest.mark.parametrize(
    ("stage", "listed", "redone"),
    [
        ("measure", {"measure": (0, "code version 1 -> 2")}, {"measure.zarr"}),
        (
            "segment",
            {
                "seg": (0, "code version 1 -> 2"),
                "measure": (1, "stale parent {seg}"),
                "sim": (1, "stale parent {seg}"),
            },
            {
                "seg.zarr",
                "seg.probabilities.zarr",
                "seg.uncertainty.zarr",
                "measure.zarr",
                "sim.zarr",
            },
        ),
    ],
    ids=["measure", "segment"],
)
def test_code_version_bump_redoes_that_stage_and_its_descendants_only(
    base: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    listed: dict[str, tuple[int, str]],
    redone: set[str],
) -> None:
    settings, urls = _chain(base, tmp_path)
    cat = settings.resolved_catalog_url
    assert stale_outputs(catalog_url=cat).empty
    before = _chunks(tmp_path, base["grey"])
    monkeypatch.setattr(getattr(ooc.stages, stage), "CODE_VERSION", 2)

    table = stale_outputs(catalog_url=cat)
    want = {urls[k]: (depth, why.format(seg=urls["seg"])) for k, (depth, why) in listed.items()}
    assert {r.url: (r.depth, r.why) for r in table.itertuples()} == want
    assert list(table["depth"]) == sorted(table["depth"])  # parents first
    assert set(table["sample_id"]) == {"archive-1"}
    assert set(table["modality"]) == {"MicroCT"}
    assert (table["voxels"] == VOXELS).all()
    assert np.allclose(table["voxel_m"], 2e-6)

    outcomes = reprocess(catalog_url=cat, settings=settings)
    assert [o.url for o in outcomes] == list(table["url"])
    assert not any(o.skipped for o in outcomes)
    assert _rewritten(before) == redone
    for name in redone:
        record = read_record(str(tmp_path / name))
        assert record["status"] == "complete"
        assert record["code_version"] == (2 if record["stage"] == stage else 1)
    found = catalog.search(catalog_url=cat, stage=stage)
    assert set(found["code_version"]) == {2}
    assert stale_outputs(catalog_url=cat).empty
    assert reprocess(catalog_url=cat, settings=settings) == []


def _reweigh(folder: Path, scratch: Path) -> None:
    """Give the forest in ``folder`` other weights (one tree fewer), keeping its stage record:
    as when a model is re-saved by a newer library, its training inputs unchanged."""
    forest = load_model(folder)
    forest.estimator.estimators_ = forest.estimator.estimators_[:-1]
    forest.estimator.n_estimators -= 1
    save_model(forest, scratch)
    other = json.loads((scratch / "model.json").read_text())
    shutil.copy(scratch / other["weights"]["file"], folder / other["weights"]["file"])
    doc = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**doc, "weights": other["weights"]}))


def test_new_model_weights_redo_the_segmentation_and_below(
    base: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "forest"
    shutil.copytree(base["forest"], model)
    settings, urls = _chain(base, tmp_path, model)
    cat = settings.resolved_catalog_url
    _reweigh(model, tmp_path / "scratch")

    table = stale_outputs(catalog_url=cat)
    assert dict(zip(table["url"], table["why"], strict=True)) == {
        urls["seg"]: f"model weights {model} changed",
        urls["measure"]: f"stale parent {urls['seg']}",
        urls["sim"]: f"stale parent {urls['seg']}",
    }
    # the measurements alone: their segmentation is not redone, so neither are they
    before = _chunks(tmp_path)
    assert list(stale_outputs(catalog_url=cat, stage="measure")["url"]) == [urls["measure"]]
    assert reprocess(catalog_url=cat, settings=settings, stage="measure") == []
    assert _rewritten(before) == set()

    outcomes = reprocess(catalog_url=cat, settings=settings)
    assert [o.stage for o in outcomes] == ["segment", "measure", "simulate"]
    assert _rewritten(before) == {
        "seg.zarr", "seg.probabilities.zarr", "seg.uncertainty.zarr", "measure.zarr", "sim.zarr"
    }  # fmt: skip
    weights = json.loads((model / "model.json").read_text())["weights"]["sha256"]
    assert read_record(urls["seg"])["model_digest"] == weights
    assert stale_outputs(catalog_url=cat).empty


def test_a_segmentation_deleted_by_hand_is_remade_with_the_companions_it_left(
    base: dict[str, Path], tmp_path: Path
) -> None:
    """Its probabilities and uncertainty stores (finished, same digest) are not taken as done:
    they belong to the label store they were written with (this run once failed writing into
    a finished companion)."""
    settings = load_settings(data_dir=str(tmp_path / "data"))
    seg = str(tmp_path / "seg.zarr")
    args = (str(base["grey"]), str(base["forest"]), seg)
    run_segment(*args, settings=settings)
    first = {
        n: zarr.open_array(f"{tmp_path}/{n}/0")[:] for n in ("seg.zarr", "seg.uncertainty.zarr")
    }
    remove(seg)
    outcome = run_segment(*args, settings=settings)
    assert outcome is not None
    assert not outcome.skipped
    for name, values in first.items():
        np.testing.assert_array_equal(zarr.open_array(f"{tmp_path}/{name}/0")[:], values)
    digest = read_record(seg)["digest"]
    for companion in ooc.stages.segment.companion_urls(seg).values():
        assert read_record(companion)["digest"] == digest


def test_ingest_bump_lists_the_whole_lineage_then_a_replaced_parent_and_a_killed_redo(
    base: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, urls = _chain(base, tmp_path)
    cat = settings.resolved_catalog_url
    lost = tmp_path / "lost.npy"
    np.save(lost, np.zeros((4, 5, 6), np.uint16))
    run_ingest(str(lost), str(tmp_path / "lost.zarr"), metadata={**META, "sample_id": "archive-2", "voxel_size": [5.0] * 3, "kind": "grey"}, settings=settings)  # fmt: skip
    lost.unlink()
    grey, forest, lost_url = str(base["grey"]), str(base["forest"]), str(tmp_path / "lost.zarr")
    with monkeypatch.context() as patch:
        patch.setattr(ooc.stages.ingest, "CODE_VERSION", 2)
        table = stale_outputs(catalog_url=cat)
        assert {r.url: (r.depth, r.why, r.voxels) for r in table.itertuples()} == {
            lost_url: (0, f"code version 1 -> 2; source {lost} missing", 120),
            grey: (0, "code version 1 -> 2", VOXELS),
            forest: (1, f"stale parent {grey}", VOXELS),
            urls["seg"]: (2, f"stale parent {grey}; stale parent {forest}", VOXELS),
            urls["measure"]: (3, f"stale parent {urls['seg']}", VOXELS),
            urls["sim"]: (3, f"stale parent {urls['seg']}", VOXELS),
        }
        assert list(table["url"])[:2] == [grey, lost_url]  # depth 0: the finer scale first
        assert list(stale_outputs(catalog_url=cat, sample="archive-2")["url"]) == [lost_url]
        assert stale_outputs(catalog_url=cat, sample="other*").empty
        with pytest.raises(ConfigError, match="'polish'"):
            stale_outputs(catalog_url=cat, stage="polish")

    # the segmentation is redone by hand with other options, and a redo of the simulation is
    # killed at its start: its store holds no parameters, the catalog still does
    run_segment(grey, forest, urls["seg"], settings=settings, uncertainty="margin")
    old = read_record(urls["sim"])
    remove(urls["sim"])
    open_results_store(urls["sim"], "simulate", old["digest"])
    table = stale_outputs(catalog_url=cat)
    assert dict(zip(table["url"], table["why"], strict=True)) == {
        urls["measure"]: f"parent {urls['seg']} changed",
        urls["sim"]: f"unfinished; parent {urls['seg']} changed",
    }
    before = _chunks(tmp_path)
    outcomes = reprocess(catalog_url=cat, settings=settings, stage="simulate")
    assert [(o.url, o.skipped) for o in outcomes] == [(urls["sim"], False)]
    assert _rewritten(before) == set()  # the measurements were left as they are
    assert read_record(urls["sim"])["summary"]["tau"] == old["summary"]["tau"]
    assert list(stale_outputs(catalog_url=cat)["url"]) == [urls["measure"]]


def test_dry_run_flow_returns_the_stale_table(
    base: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ooc_flows.reprocess import reprocess_flow

    settings = load_settings(data_dir=str(tmp_path / "data"))
    for url in (base["grey"], base["forest"]):
        catalog.register(str(url), catalog_url=settings.resolved_catalog_url)
    before = _chunks(base["grey"])
    monkeypatch.setattr(ooc.stages.ingest, "CODE_VERSION", 2)
    table = stale_outputs(catalog_url=settings.resolved_catalog_url)
    assert list(table["url"]) == [str(base["grey"]), str(base["forest"])]
    result = reprocess_flow(dry_run=True, settings_overrides={"data_dir": settings.data_dir})
    assert result["redone"] == []
    got = pd.DataFrame(result["stale"], columns=table.columns)
    pd.testing.assert_frame_equal(got, table, check_dtype=False)
    assert json.loads(json.dumps(result)) == result
    assert result["text"] == format_stale(table)
    assert _rewritten(before) == set()


def test_format_stale_aligns_columns_and_totals_the_work() -> None:
    table = pd.DataFrame(
        {
            "url": ["/a/seg.zarr", "/a/measure.zarr"],
            "stage": ["segment", "measure"],
            "why": ["code version 1 -> 2", "stale parent /a/seg.zarr"],
            "voxels": pd.array([2_500_000_000, None], dtype="Int64"),
        }
    )
    assert format_stale(table).splitlines() == [
        "#  stage    store            why                       work",
        "1  segment  /a/seg.zarr      code version 1 -> 2       2.5G voxels",
        "2  measure  /a/measure.zarr  stale parent /a/seg.zarr  ?",
        "2 stale store(s), about 2.5G voxels to process",
    ]
    assert format_stale(table.iloc[:0]) == "nothing is stale"
