"""The benchmarks still run end to end (tiny inputs; their numbers are not checked here)."""

from __future__ import annotations

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
