"""The README's first command: ``ooc run`` with no spec runs the synthetic main job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_ooc_run_with_no_spec_is_the_synthetic_main_job(tmp_path: Path) -> None:
    """The README's first command, as typed (smaller: --shape), in a folder where nothing exists
    yet: no warning on the way (Prefect warned when its home folder was made after its import)."""
    env = {**os.environ, "OOC_PROGRESS": "0", "OOC_DATA_DIR": str(tmp_path / "data")}
    env.pop("PREFECT_HOME")  # ooc's default: the data folder's prefect/
    done = subprocess.run(
        [sys.executable, "-m", "ooc_flows.cli", "run", "--seed", "6", "--shape", "32,32,32"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "segmentation IoU" in done.stdout
    assert "Warning" not in done.stdout + done.stderr, done.stderr[-3000:]
    for scale in ("MicroCT", "FIB-SEM", "TEM"):
        assert (tmp_path / "data" / "synthetic-6" / scale / "measure.zarr").is_dir()
