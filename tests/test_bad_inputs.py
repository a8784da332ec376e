"""Bad input at every verb, typed as a user would (a subprocess each): one line on stderr naming
the file or field and what was expected, exit status 2, and nothing created or changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ooc.config import load_settings
from ooc.stages import run_ingest

META = {"sample_id": "bad", "modality": "TEM", "voxel_size": [2.0, 2.0, 2.0], "unit": "nm"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grey store, a label store and broken files, made once."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    np.save(root / "grey.npy", rng.integers(0, 255, (8, 8, 8), dtype=np.uint8))
    np.save(root / "labels.npy", rng.integers(0, 2, (8, 8, 8), dtype=np.uint8))
    settings = load_settings(data_dir=str(root / "data"))
    run_ingest(
        str(root / "grey.npy"),
        str(root / "grey.zarr"),
        metadata={**META, "kind": "grey"},
        settings=settings,
    )
    names = {"0": "solid", "1": "pore"}
    run_ingest(
        str(root / "labels.npy"),
        str(root / "labels.zarr"),
        metadata={**META, "kind": "labels", "labels": names},
        settings=settings,
    )
    tifffile.imwrite(root / "stack.tif", rng.integers(0, 255, (20, 64, 64), dtype=np.uint8))
    data = (root / "stack.tif").read_bytes()
    (root / "cut.tif").write_bytes(data[: len(data) // 2])
    (root / "scan.raw").write_bytes(b"\0" * 1000)
    (root / "existing.txt").write_text("a file, not a store\n")
    (root / "bad.json").write_text(json.dumps({"annotations": [{"type": "box", "label": 0}]}))
    (root / "empty.model").mkdir()
    (root / "bad.yaml").write_text(
        "sample: a\nscans:\n  a: {source: x, modality: XRM, voxel_size: 1}\n"
    )
    (root / "not.yaml").write_text("sample: [unclosed\n")
    return root  # fmt: skip


INGEST = ["--sample-id", "s", "--modality", "TEM", "--voxel-size", "2", "--unit", "nm"]

# (arguments, what the one line must say, paths that must not exist afterwards)
CASES = {
    "missing source": (["ingest", "nope.tif", "o.zarr", *INGEST], "nope.tif", ["o.zarr"]),
    "truncated TIFF": (["ingest", "cut.tif", "o.zarr", *INGEST], "cut.tif: 20 pages expected", ["o.zarr"]),
    "raw of the wrong size": (["ingest", "scan.raw", "o.zarr", *INGEST, "--shape", "10,10,20", "--dtype", "uint8"], "scan.raw", ["o.zarr"]),
    "negative voxel size": (["ingest", "grey.npy", "o.zarr", "--sample-id", "s", "--modality", "TEM", "--voxel-size", "-1"], "field 'voxel_size/0'", ["o.zarr"]),
    "unknown unit": (["ingest", "grey.npy", "o.zarr", *INGEST[:-1], "parsec"], "parsec", ["o.zarr"]),
    "unknown modality": (["ingest", "grey.npy", "o.zarr", "--sample-id", "s", "--modality", "XRM", "--voxel-size", "2"], "field 'modality'", ["o.zarr"]),
    "output is a file": (["ingest", "grey.npy", "existing.txt", *INGEST], "existing.txt: already exists", []),
    "store of another input": (["ingest", "labels.npy", "grey.zarr", *INGEST], "never overwritten", []),
    "bad phase names": (["ingest", "labels.npy", "o.zarr", *INGEST, "--phases", "pore"], "--phases 'pore': expected VALUE=NAME", ["o.zarr"]),
    "train on labels": (["train", "labels.zarr", "stack.tif", "m.model"], "field 'ooc/kind' is 'labels'", ["m.model"]),
    "missing annotations": (["train", "grey.zarr", "nope.tif", "m.model"], "nope.tif", ["m.model"]),
    "annotations of another shape": (["train", "grey.zarr", "stack.tif", "m.model"], "stack.tif", ["m.model"]),
    "invalid annotation JSON": (["train", "grey.zarr", "bad.json", "m.model"], "bad.json", ["m.model"]),
    "bad class names": (["train", "grey.zarr", "stack.tif", "m.model", "--class-names", "pore"], "--class-names 'pore'", ["m.model"]),
    "segment labels": (["segment", "labels.zarr", "empty.model", "s.zarr"], "field 'ooc/kind' is 'labels'", ["s.zarr"]),
    "not a model": (["segment", "grey.zarr", "empty.model", "s.zarr"], "empty.model", ["s.zarr"]),
    "measure grey": (["measure", "grey.zarr", "m.zarr"], "field 'ooc/kind' is 'grey'", ["m.zarr"]),
    "measure unknown phase": (["measure", "labels.zarr", "m.zarr", "--pore", "void"], "has no phase 'void'", ["m.zarr"]),
    "measure an array inside a store": (["measure", "labels.zarr/0", "m.zarr"], "labels.zarr/0: is an array inside a store", ["m.zarr"]),
    "measure into a file": (["measure", "labels.zarr", "existing.txt"], "existing.txt: already exists", []),
    "measure missing store": (["measure", "nope.zarr", "m.zarr"], "nope.zarr: no store found", ["m.zarr"]),
    "simulate unknown phase": (["simulate", "labels.zarr", "s.zarr", "--pore", "void"], "has no phase 'void'", ["s.zarr"]),
    "simulate dry run, unknown phase": (["simulate", "labels.zarr", "--dry-run", "--pore", "void"], "has no phase 'void'", []),
    "simulate bad number": (["simulate", "labels.zarr", "s.zarr", "--porous", "pore=abc"], "--porous 'pore=abc': expected PHASE=NUMBER", ["s.zarr"]),
    "simulate unknown phase value": (["simulate", "labels.zarr", "s.zarr", "--pore", "pore", "--phase-value", "clay=1"], "has no phase 'clay'", ["s.zarr"]),
    "spec with a bad field": (["run", "bad.yaml"], "field 'scans/a/modality'", []),
    "spec that is not YAML": (["run", "not.yaml"], "not.yaml: not valid YAML", []),
    "missing spec": (["run", "nope.yaml"], "nope.yaml: spec file not found", []),
    "missing config": (["--config", "nope.toml", "history", "grey.zarr"], "nope.toml: configuration file not found", []),
    "history of a non-store": (["history", "existing.txt"], "existing.txt", []),
}  # fmt: skip


@pytest.mark.parametrize(("args", "message", "absent"), list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    folder: Path, args: list[str], message: str, absent: list[str], tmp_path: Path
) -> None:
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    home = tmp_path / "prefect-home"
    env = {
        **os.environ,
        "OOC_PROGRESS": "0",
        "OOC_DATA_DIR": str(folder / "data"),
        "PREFECT_HOME": str(home),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ooc_flows.cli", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert lines[0].startswith(f"ooc {args[2] if args[0] == '--config' else args[0]}: error: ")
    # refused before any service started: Prefect's local API never made its database
    assert not list(home.glob("*.db")), "Prefect started before the input was checked"
    for name in absent:
        assert not (folder / name).exists(), f"{name} was created"
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    changed = [p for p, t in before.items() if after.get(p) != t and "data" not in p.parts]
    assert not changed, f"changed: {changed}"
