"""With a Prefect server configured, stage verbs run as Prefect flows on it (one server for
every verb, no temporary one), and the stores they write name their flow runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.service


def test_stage_verbs_run_as_flows_on_the_configured_server(
    prefect_server: Any, tmp_path: Path
) -> None:
    np.save(tmp_path / "labels.npy", np.random.default_rng(3).integers(0, 2, (20, 20, 20)))
    env = {**prefect_server.env, "OOC_DATA_DIR": str(tmp_path / "data"), "OOC_PROGRESS": "0"}

    def ooc(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ooc_flows.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    ooc(
        "ingest", "labels.npy", "l.zarr", "--sample-id", "served", "--modality", "TEM",
        "--voxel-size", "2", "--unit", "nm", "--phases", "0=solid", "1=pore",
    )  # fmt: skip
    ooc("measure", "l.zarr", "m.zarr", "--pore", "pore")

    def runs(flow: str) -> list[dict[str, Any]]:
        """This test's runs of ``flow`` (the server is shared with the deployment tests)."""
        query = {"flows": {"name": {"any_": [flow]}}}
        found = prefect_server.api("POST", "/flow_runs/filter", query)
        return [r for r in found if r["parameters"].get("output") in ("l.zarr", "m.zarr")]

    assert [r["state_type"] for r in runs("ooc-measure")] == ["COMPLETED"]
    assert [r["state_type"] for r in runs("ooc-ingest")] == ["COMPLETED"]
    # each result's provenance (in its group's metadata) names the flow run that made it
    metadata = [p.read_text() for p in (tmp_path / "m.zarr").rglob("zarr.json")]
    assert any(runs("ooc-measure")[0]["id"] in text for text in metadata)
    assert not (tmp_path / "data" / "prefect").exists()  # no temporary server's database
