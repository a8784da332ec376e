"""The real NMC electrode (../shared/data) through the command line as a user types it: ingested
as labels with phase names, measured and simulated; numbers equal the published ones.

Skipped when ../shared is absent (a user's clone has no shared data).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ooc
from ooc.catalog import search
from ooc.config import load_settings

TIFF = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "nmc_electrode"
    / "electrode.tiff"
)

pytestmark = pytest.mark.skipif(not TIFF.is_file(), reason=f"{TIFF} is absent")


def _ooc(*args: str, cwd: Path) -> str:
    env = {**os.environ, "OOC_PROGRESS": "0", "OOC_DATA_DIR": str(cwd / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "ooc_flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)  # many verbs, each starting Prefect and a cluster
def test_nmc_electrode_measured_and_simulated_through_the_verbs(tmp_path: Path) -> None:
    _ooc(
        "ingest", str(TIFF.resolve()), "nmc.zarr", "--sample-id", "nmc", "--modality", "MicroCT",
        "--phases", "0=pore", "85=NMC", "170=CBD", "--voxel-size", "0.390625", "--unit", "µm",
        cwd=tmp_path,
    )  # fmt: skip
    assert ooc.open_volume(str(tmp_path / "nmc.zarr")).attrs["labels"] == {
        "0": "pore",
        "85": "NMC",
        "170": "CBD",
    }
    printed = _ooc(
        "measure", "nmc.zarr", "measure.zarr", "--pore", "pore", "--objects", "NMC", cwd=tmp_path
    )
    # TauFactor 2's published volume fractions
    assert "phase fractions: pore 0.4499, NMC 0.4005, CBD 0.1496" in printed
    printed = _ooc(
        "simulate", "nmc.zarr", "simulate.zarr", "--pore", "pore", "--route", "whole",
        "--properties", "tortuosity", cwd=tmp_path,
    )  # fmt: skip
    assert "converged: yes" in printed
    found = search(
        catalog_url=load_settings(data_dir=str(tmp_path / "data")).resolved_catalog_url,
        sample="nmc",
        stage="simulate",
    )
    (row,) = found.to_dict("records")
    assert row["porosity"] == pytest.approx(0.44991738, abs=1e-7)
    # TauFactor 2's published tortuosity factors along axes 0 and 1, within 0.5 %
    assert row["tau_z"] == pytest.approx(2.0776, rel=0.005)
    assert row["tau_y"] == pytest.approx(2.0766, rel=0.005)
