"""The benchmarks still run end to end (tiny inputs; their numbers are not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_ingest_benchmark_prints_its_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "ingest.py"),
            "--size-gb",
            "0.004",
            "--slice",
            "96",
            "--workdir",
            str(tmp_path),
            "--keep-cache",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    rows = [line.split()[0] for line in lines[header + 1 : header + 4]]
    assert rows == ["cp", "ooc", "dask_image.imread"]
    assert not list(tmp_path.iterdir()), "the benchmark left its files behind"


def _run(script: str, *args: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_segment_benchmark_prints_each_route(tmp_path: Path) -> None:
    out = _run(
        "segment.py",
        "--size",
        "32",
        "--trees",
        "5",
        "--depth",
        "4",
        "--workdir",
        str(tmp_path),
        tmp_path=tmp_path,
    )
    for route in ("ooc segment, 1 worker", "scipy.ndimage + sklearn", "skimage"):
        assert route in out, out


@pytest.mark.slow
def test_measure_benchmark_prints_each_route(tmp_path: Path) -> None:
    out = _run(
        "measure.py",
        "--synthetic",
        "--size",
        "40",
        "--chunk",
        "16",
        "--big",
        "0",
        tmp_path=tmp_path,
    )
    assert "ooc label_components(26)+object_table" in out
    assert "scipy.ndimage.label+skimage regionprops_table" in out


@pytest.mark.slow
def test_simulate_benchmark_prints_its_tables(tmp_path: Path) -> None:
    out = _run(
        "simulate.py", "--quick", "--no-peers", "--sizes", "24,32", "--peer-sizes", "32",
        "--perm-size", "24", "--timeout", "300", tmp_path=tmp_path,
    )  # fmt: skip
    assert "ooc" in out
    assert "bytes / voxel" in out


@pytest.mark.slow
def test_startup_benchmark_prints_each_verb(tmp_path: Path) -> None:
    out = _run("startup.py", "--shape", "24", "--workdir", str(tmp_path), tmp_path=tmp_path)
    cells = [re.split(r"\s{2,}", line) for line in out.splitlines()]
    exits = {c[0]: c[3] for c in cells if len(c) >= 4 and c[0].startswith(("ooc ", "measure "))}
    for verb in ("synth", "ingest", "features", "train", "segment", "measure", "simulate"):
        assert exits[f"ooc {verb}"] == "0", out
    assert exits["ooc bad phase name"] == exits["ooc bad argument"] == "2", out
    assert exits["measure as a Prefect flow"] == "0", out
    assert not list(tmp_path.iterdir()), "the benchmark left its files behind"


@pytest.mark.slow
def test_end_to_end_benchmark_prints_each_stage(tmp_path: Path) -> None:
    out = _run(
        "end_to_end.py", "--size", "32", "--scribbles", "0.01", "--trees", "20",
        "--workdir", str(tmp_path), tmp_path=tmp_path,
    )  # fmt: skip
    cells = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    stages = {c[0]: c[1:] for c in cells if c[0] in ("ingest", "train", "segment", "measure",
                                                      "simulate", "total") and len(c) == 6}  # fmt: skip
    assert list(stages) == ["ingest", "train", "segment", "measure", "simulate", "total"], out
    shares = [float(stages[s][1].rstrip("%")) for s in list(stages)[:-1]]
    assert sum(shares) == pytest.approx(100.0, abs=0.3)
    seconds = [float(stages[s][0]) for s in stages]
    assert sum(seconds[:-1]) == pytest.approx(seconds[-1], abs=0.3)
    assert min(seconds) > 0
    assert all(0.05 < float(v[3]) < 8 for v in stages.values()), out  # peak GiB
    iou = re.search(r"^IoU: .*\(mean ([0-9.]+)\)", out, re.M)
    assert iou is not None, out
    assert float(iou.group(1)) > 0.5, out
    taus = re.search(r"tau z/y/x ([0-9.]+)/([0-9.]+)/([0-9.]+)", out)
    assert taus is not None, out
    assert all(float(t) >= 1.0 for t in taus.groups()), out  # a tortuosity factor is >= 1
    alternative = next(c for c in cells if c[0] == "whole array")
    assert float(alternative[7]) > 0.5, out  # its mean IoU
    assert not list(tmp_path.iterdir()), "the benchmark left its files behind"
