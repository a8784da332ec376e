"""The README's chain, typed as a user would: every verb a subprocess, each stage's output the
next one's input (synth -> ingest -> train -> segment -> measure -> simulate -> catalog)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import ooc
from ooc.segment import simulate_scribbles


def _ooc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OOC_PROGRESS": "0", "OOC_N_WORKERS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ooc_flows.cli", "--data-dir", "data", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_grey_scan_to_properties_through_the_command_line(tmp_path: Path) -> None:
    _ok(
        _ooc(
            "synth",
            "raw",
            "--seed",
            "2",
            "--shape",
            "40,40,40",
            "--scales",
            "MicroCT",
            cwd=tmp_path,
        )
    )
    out = _ok(
        _ooc(
            "ingest", "raw/MicroCT/grey", "rock.zarr", "--sample-id", "rock-1", "--modality",
            "MicroCT", "--voxel-size", "2", "--unit", "um", "--chunks", "24,24,24", cwd=tmp_path,
        )
    )  # fmt: skip
    assert "rock.zarr: written" in out
    truth = tifffile.imread(sorted((tmp_path / "raw/MicroCT/labels").glob("*.tif")))
    strokes = simulate_scribbles(truth, fraction=0.01, seed=0)
    painted = np.zeros(truth.shape, np.uint8)
    painted[tuple(strokes.coords.T)] = strokes.labels
    tifffile.imwrite(tmp_path / "scribbles.tif", painted)
    out = _ok(
        _ooc(
            "train", "rock.zarr", "scribbles.tif", "rock.model", "--class-names", "1=pore",
            "2=grain", "3=micro-porous", "--filters", '{"gaussian": [0, 1, 2], "gradient": [1]}',
            "--n-estimators", "30", cwd=tmp_path,
        )
    )  # fmt: skip
    assert "classes 1=pore, 2=grain, 3=micro-porous" in out
    out = _ok(_ooc("segment", "rock.zarr", "rock.model", "seg.zarr", cwd=tmp_path))
    assert "most uncertain regions" in out
    seg = ooc.open_volume(str(tmp_path / "seg.zarr"))
    assert seg.attrs["kind"] == "labels"
    assert seg.attrs["voxel_size"] == [2.0, 2.0, 2.0]
    assert seg.attrs["labels"] == {"1": "pore", "2": "grain", "3": "micro-porous"}
    ome = json.loads((tmp_path / "seg.zarr/zarr.json").read_text())["attributes"]["ome"]
    assert [p["class"] for p in ome["image-label"]["properties"]] == [
        "pore",
        "grain",
        "micro-porous",
    ]
    assert ooc.open_volume(str(tmp_path / "seg.probabilities.zarr")).dims == ("c", "z", "y", "x")

    out = _ok(
        _ooc(
            "measure",
            "seg.zarr",
            "measure.zarr",
            "--pore",
            "pore",
            "--objects",
            "grain",
            cwd=tmp_path,
        )
    )
    expected = np.bincount(seg.values.ravel(), minlength=4)[1:] / seg.size
    assert f"phase fractions: pore {expected[0]:.4f}, grain {expected[1]:.4f}" in out
    assert (tmp_path / "measure.pore_size.png").stat().st_size > 1000
    out = _ok(_ooc("simulate", "seg.zarr", "--dry-run", cwd=tmp_path))
    assert "route: whole" in out
    out = _ok(
        _ooc(
            "simulate", "seg.zarr", "simulate.zarr", "--pore", "pore", "--phase-value", "pore=1",
            "micro-porous=0.25", "--porous", "micro-porous=1e-15", cwd=tmp_path,
        )
    )  # fmt: skip
    assert "tortuosity factor: z" in out
    again = _ok(
        _ooc(
            "measure",
            "seg.zarr",
            "measure.zarr",
            "--pore",
            "pore",
            "--objects",
            "grain",
            cwd=tmp_path,
        )
    )
    assert "already done" in again

    found = json.loads(
        _ok(
            _ooc(
                "catalog",
                "search",
                "--sample",
                "rock-*",
                "--where",
                "porosity > 0",
                "--json",
                cwd=tmp_path,
            )
        )
    )
    assert {r["stage"] for r in found} == {"measure"}
    assert found[0]["url"] == str(tmp_path / "measure.zarr")
    listed = _ok(_ooc("catalog", "search", "--sample", "rock-*", cwd=tmp_path))
    assert "seg.zarr" in listed
    assert "rock.model" in listed
    assert "segment" in _ok(_ooc("history", "seg.zarr", cwd=tmp_path))

    spec = yaml.safe_load(_ok(_ooc("run", "--example", cwd=tmp_path)))
    assert set(spec["scans"]) == {"MicroCT", "FIB-SEM", "TEM"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["measure", "rock.zarr", "m.zarr"], "field 'ooc/kind' is 'grey'"),
        (["simulate", "labels.zarr", "s.zarr", "--pore", "void"], "has no phase 'void'"),
        (["run", "bad.yaml"], "field 'scans/a/modality'"),
    ],
)
def test_stage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    np.save(tmp_path / "grey.npy", np.zeros((8, 8, 8), np.uint8))
    np.save(tmp_path / "labels.npy", np.ones((8, 8, 8), np.uint8))
    common = ["--sample-id", "e", "--modality", "TEM", "--voxel-size", "2", "--unit", "nm"]
    _ok(_ooc("ingest", "grey.npy", "rock.zarr", *common, cwd=tmp_path))
    _ok(_ooc("ingest", "labels.npy", "labels.zarr", *common, "--kind", "labels", cwd=tmp_path))
    (tmp_path / "bad.yaml").write_text(
        "sample: a\nscans:\n  a: {source: x, modality: XRM, voxel_size: 1}\n"
    )
    result = _ooc(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert not (tmp_path / "m.zarr").exists()
    assert not (tmp_path / "s.zarr").exists()
