"""benchmarks/upscale.py still runs end to end (tiny sizes; its numbers are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow
def test_upscale_benchmark_prints_its_tables() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "upscale.py"),
            "--smoke",
            "--sections",
            "1,3,4",
            "--field",
            "0.4,0.85,2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = result.stdout
    for title in ("## 1. two-scale", "## 3. block upscaling", "## 4. accuracy", "grey porosity"):
        assert title in out
    rows = [line.split() for line in out.splitlines() if line[:2] in ("0 ", "bl", "di")]
    routes = [(r[3], r[4]) for r in rows if len(r) > 4 and r[0] == "0" and r[1] == "8"]
    assert set(routes) == {(a, b) for a in ("constant", "per-voxel") for b in ("/1", "/4")}
    porosity = [r for r in rows if r[0] == "0" and r[2] == "±"]
    assert [len(r) for r in porosity] == [10]  # one seed: mean ± sd, then 6 numbers
    assert sum(r[0] == "direct" for r in rows) == 2  # the reference and the loosened solve
    assert sum(r[0] == "blocks" for r in rows) == 2
