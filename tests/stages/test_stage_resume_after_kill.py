"""A real ``kill -9`` of a process running the segment, measure or simulate stage, then a
re-run: the output equals an uninterrupted run's, and what was complete is not computed again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

import ooc
from ooc.config import load_settings
from ooc.features import FeatureSpec
from ooc.results import open_results
from ooc.segment import save_model, simulate_scribbles, train_forest
from ooc.stages import run_ingest, run_measure, run_segment, run_simulate
from ooc.synth import default_sample, render_scan

SAMPLE = {"sample_id": "kill", "modality": "MicroCT", "voxel_size": [2.0, 2.0, 2.0], "unit": "um"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A grey store, its ground-truth label store and a small forest trained on it."""
    root = tmp_path_factory.mktemp("kill")
    truth, grey = render_scan(default_sample(seed=5, shape=(64, 64, 64)), "MicroCT")
    np.save(root / "grey.npy", grey)
    np.save(root / "labels.npy", truth.astype(np.uint8))
    settings = load_settings(data_dir=str(root / "data"))
    names = {"0": "pore", "1": "grain", "2": "micro-porous"}
    meta = {**SAMPLE, "kind": "grey"}
    run_ingest(
        str(root / "grey.npy"),
        str(root / "grey.zarr"),
        metadata=meta,
        settings=settings,
        chunks=(16, 16, 16),
    )
    meta = {**SAMPLE, "kind": "labels", "labels": names}
    run_ingest(
        str(root / "labels.npy"),
        str(root / "labels.zarr"),
        metadata=meta,
        settings=settings,
        chunks=(16, 16, 16),
    )
    ann = simulate_scribbles(truth, fraction=0.01, seed=0)
    vol = ooc.open_volume(str(root / "grey.zarr"))
    model = train_forest(
        vol, ann, FeatureSpec(filters={"gaussian": [0, 1.0], "hessian": [1.0]}), n_estimators=40
    )
    save_model(model, root / "forest.model")
    return {"root": str(root), "grey": str(root / "grey.zarr"), "labels": str(root / "labels.zarr"), "model": str(root / "forest.model")}  # fmt: skip


_SCRIPT = """
import json, sys
from ooc.config import load_settings
from ooc import stages
name, kwargs, data = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
getattr(stages, name)(**kwargs, settings=load_settings(data_dir=data), progress=False)
"""


def _kill_when(name: str, kwargs: dict, data: str, ready: Callable[[], bool]) -> None:
    """Run ``ooc.stages.<name>(**kwargs)`` in a subprocess and ``kill -9`` it once ``ready()``."""
    env = {**os.environ, "DASK_SCHEDULER": "synchronous"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, name, json.dumps(kwargs), data], env=env
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.01)
    assert proc.poll() is None, f"{name} finished before it could be killed; make its work larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and "/c/" in str(p)}


def _parts_done(url: Path) -> list[str]:
    try:
        return json.loads((url / "zarr.json").read_text())["attributes"].get("parts_done", [])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return []


@pytest.mark.slow
def test_segment_killed_then_resumed(stores: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path / "data"))
    common = {"volume": stores["grey"], "model": stores["model"], "max_region_bytes": 1}
    reference = run_segment(**common, output=str(tmp_path / "ref.zarr"), settings=settings)
    out = tmp_path / "seg.zarr"
    flags = out / "_progress" / "0" / "c"

    def some_regions_done() -> bool:
        return flags.is_dir() and sum(1 for p in flags.rglob("*") if p.is_file()) >= 3

    _kill_when(
        "run_segment", {**common, "output": str(out)}, str(tmp_path / "data"), some_regions_done
    )
    done = np.asarray(zarr.open_group(str(out), mode="r")["_progress/0"][...]).astype(bool)
    assert 0 < done.sum() < done.size
    before = _mtimes(out / "0")
    resumed = run_segment(**common, output=str(out), settings=settings)
    assert not resumed.skipped
    for name in ("seg.zarr", "seg.probabilities.zarr", "seg.uncertainty.zarr"):
        ref_name = name.replace("seg", "ref")
        got = ooc.open_volume(str(tmp_path / name)).values
        want = ooc.open_volume(str(tmp_path / ref_name)).values
        np.testing.assert_array_equal(got, want)
    # a flagged region is one chunk deep in z (16 voxels): its chunks were not written again
    for path, mtime in before.items():
        z_chunk = int(path.relative_to(out / "0" / "c").parts[0])
        if done.reshape(done.shape[0], -1)[z_chunk].all():
            assert path.stat().st_mtime_ns == mtime, f"{path} was complete but written again"
    assert resumed.summary["class_fractions"] == reference.summary["class_fractions"]


@pytest.mark.slow
def test_measure_killed_then_resumed(stores: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path / "data"))
    common = {"labels": stores["labels"], "pore": "pore", "objects": "grain"}
    reference = run_measure(**common, output=str(tmp_path / "ref.zarr"), settings=settings)
    out = tmp_path / "measure.zarr"
    _kill_when(
        "run_measure",
        {**common, "output": str(out)},
        str(tmp_path / "data"),
        lambda: len(_parts_done(out)) >= 2,
    )
    done = _parts_done(out)
    assert 2 <= len(done) < 7
    stamps = {p: _mtimes(out / "measure" / p) for p in done}
    resumed = run_measure(**common, output=str(out), settings=settings)
    assert not resumed.skipped
    for part, files in stamps.items():
        assert all(p.stat().st_mtime_ns == t for p, t in files.items()), f"{part} computed again"
    assert json.dumps(resumed.summary["fractions"]) == json.dumps(reference.summary["fractions"])
    assert resumed.summary["pore_d10_d50_d90"] == reference.summary["pore_d10_d50_d90"]


@pytest.mark.slow
def test_blockwise_simulate_killed_then_resumed(
    stores: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ooc.stages.simulate as stage

    settings = load_settings(data_dir=str(tmp_path / "data"))
    common = {"labels": stores["labels"], "pore": "pore", "route": "blocks", "block_shape": 16}
    reference = run_simulate(**common, output=str(tmp_path / "ref.zarr"), settings=settings)
    out = tmp_path / "sim.zarr"
    _kill_when(
        "run_simulate",
        {**common, "output": str(out)},
        str(tmp_path / "data"),
        lambda: len(_parts_done(out)) >= 1,
    )
    done = _parts_done(out)
    assert 1 <= len(done) < 4
    solved = []

    def counted(volume: object, **kwargs: object) -> object:
        solved.append(volume)
        return stage_map(volume, **kwargs)

    stage_map = stage.property_map
    monkeypatch.setattr(stage, "property_map", counted)
    resumed = run_simulate(**common, output=str(out), settings=settings)
    assert not resumed.skipped
    assert len(solved) == 4 - len(done)  # only the slabs of blocks left are solved
    assert not (out / "simulate" / "_slabs").exists()
    got = open_results(str(out))["simulate/blocks"].to_dataset()
    want = open_results(str(tmp_path / "ref.zarr"))["simulate/blocks"].to_dataset()
    for var in ("porosity", "tortuosity", "permeability", "relative_conductivity"):
        np.testing.assert_array_equal(got[var].values, want[var].values)
    assert resumed.summary["blocks"] == reference.summary["blocks"] == 64
