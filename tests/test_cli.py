"""The ``ooc`` command line: ingest through the Prefect flow, history, catalog search, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ooc_flows.cli import main


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cli")
    stack = root / "stack"
    stack.mkdir()
    rng = np.random.default_rng(0)
    for z in range(12):
        tifffile.imwrite(stack / f"s{z}.tif", rng.integers(0, 255, (20, 30), dtype=np.uint8))
    out = str(root / "grey.zarr")
    code = main(
        [
            "--data-dir",
            str(root / "data"),
            "ingest",
            str(stack),
            out,
            "--sample-id",
            "cli-1",
            "--modality",
            "FIB-SEM",
            "--voxel-size",
            "30,20,20",
            "--unit",
            "nanometer",
            "--acquisition",
            "kV=2",
            "detector=InLens",
            "--chunks",
            "8,16,16",
        ]
    )
    assert code == 0
    return root, out


def test_ingest_verb_runs_the_flow_and_registers(
    ingested: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = ingested
    assert (
        main(
            [
                "--data-dir",
                str(root / "data"),
                "catalog",
                "search",
                "--modality",
                "FIB-SEM",
                "--json",
            ]
        )
        == 0
    )
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["url"] == out
    assert [entry["shape_z"], entry["shape_y"], entry["shape_x"]] == [12, 20, 30]
    assert entry["extra"]["acquisition"] == {"kV": 2, "detector": "InLens"}


def test_history_shows_the_checksum(
    ingested: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = ingested
    assert main(["history", out, "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["step"] == "ingest"
    assert record["run_id"] is None  # no Prefect server configured: no flow run (see tests/deploy)
    assert len(record["inputs"][0]["sha256_tree"]) == 64
    assert record["inputs"][0]["files"] == 12
    assert main(["history", out]) == 0
    assert "ingest at" in capsys.readouterr().out


def test_rerunning_the_flow_is_safe(
    ingested: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = ingested
    args = [
        "--data-dir",
        str(root / "data"),
        "ingest",
        str(root / "stack"),
        out,
        "--sample-id",
        "cli-1",
        "--modality",
        "FIB-SEM",
        "--voxel-size",
        "30,20,20",
        "--unit",
        "nanometer",
        "--acquisition",
        "kV=2",
        "detector=InLens",
        "--chunks",
        "8,16,16",
    ]
    assert main(args) == 0
    assert "already complete" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--modality", "XRM"], "field 'modality': 'XRM' is not one of"),
        (
            ["--modality", "TEM", "--voxel-size", "-1"],
            "field 'voxel_size/0': -1.0 is less than or equal to",
        ),
    ],
)
def test_bad_metadata_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4), np.uint8))
    code = main(
        [
            "ingest",
            str(tmp_path / "v.npy"),
            str(tmp_path / "o.zarr"),
            "--sample-id",
            "x",
            "--voxel-size",
            "1",
            *extra,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "v.npy" in err
    assert not (tmp_path / "o.zarr").exists()


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ooc_flows.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for verb in ("run", "synth", "ingest", "history", "catalog"):
        assert verb in result.stdout


def test_measure_verb_writes_results_and_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ooc.synth import default_sample, render_labels

    labels = render_labels(default_sample(seed=1, shape=(40, 40, 40)), "MicroCT")
    np.save(tmp_path / "labels.npy", labels)
    store = str(tmp_path / "labels.zarr")
    ingest_args = [
        "ingest",
        str(tmp_path / "labels.npy"),
        store,
        "--sample-id",
        "m1",
        "--modality",
        "MicroCT",
        "--kind",
        "labels",
        "--voxel-size",
        "2",
    ]
    assert main(ingest_args) == 0
    capsys.readouterr()
    assert (
        main(["measure", store, str(tmp_path / "results.zarr"), "--pore", "0", "--objects", "1"])
        == 0
    )
    out = capsys.readouterr().out
    expected = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert f"phase fractions: 0 {expected[0]:.4f}, 1 {expected[1]:.4f}, 2 {expected[2]:.4f}" in out
    assert (tmp_path / "results.objects.parquet").is_file()
    assert (tmp_path / "results.pore_size.png").stat().st_size > 1000


def test_train_and_segment_verbs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ooc.segment import simulate_scribbles
    from ooc.synth import default_sample, render_scan

    truth, grey = render_scan(default_sample(seed=2, shape=(32, 40, 40)), "MicroCT")
    np.save(tmp_path / "grey.npy", grey)
    store = str(tmp_path / "grey.zarr")
    assert (
        main(
            [
                "ingest",
                str(tmp_path / "grey.npy"),
                store,
                "--sample-id",
                "s1",
                "--modality",
                "MicroCT",
                "--voxel-size",
                "2",
            ]
        )
        == 0
    )
    scribbles = simulate_scribbles(truth, fraction=0.01, seed=0)
    painted = np.zeros(truth.shape, np.uint8)
    painted[tuple(scribbles.coords.T)] = scribbles.labels
    tifffile.imwrite(tmp_path / "scribbles.tif", painted)
    model = str(tmp_path / "forest.model")
    assert (
        main(
            [
                "train",
                store,
                str(tmp_path / "scribbles.tif"),
                model,
                "--filters",
                '{"gaussian": [0, 1, 3.5], "hessian": [1.0]}',
            ]
        )
        == 0
    )
    assert (tmp_path / "forest.model" / "model.json").is_file()
    assert main(["segment", store, model, str(tmp_path / "seg.zarr")]) == 0
    out = capsys.readouterr().out
    assert "class fractions:" in out
    assert "most uncertain regions" in out
    assert (
        main(
            ["features", store, str(tmp_path / "f.zarr"), "--filter", "gaussian", "--sigma", "1.0"]
        )
        == 0
    )
