"""Services of verbs: a flow verb killed with ``kill -9`` leaves Prefect's temporary server
behind and the next verb ends it; a stage verb with no Prefect server configured starts none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from ooc.config import load_settings
from ooc.stages import run_ingest


def _servers(verb: int) -> list[psutil.Process]:
    """Prefect servers started by the verb with process id ``verb`` (by its environment mark)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("prefect.server.api.server" in p for p in proc.info["cmdline"] or []):
            try:
                if proc.environ().get("OOC_VERB", "").startswith(f"{verb}:"):
                    found.append(proc)
            except psutil.Error:
                pass
    return found


@pytest.mark.slow
def test_the_next_verb_ends_the_server_a_killed_verb_left(tmp_path: Path) -> None:
    np.save(
        tmp_path / "labels.npy",
        np.random.default_rng(0).integers(0, 2, (24, 24, 24), dtype=np.uint8),
    )
    meta = {
        "sample_id": "svc",
        "modality": "TEM",
        "voxel_size": [2.0] * 3,
        "unit": "nm",
        "kind": "labels",
        "labels": {"0": "solid", "1": "pore"},
    }
    run_ingest(
        str(tmp_path / "labels.npy"),
        str(tmp_path / "labels.zarr"),
        metadata=meta,
        settings=load_settings(data_dir=str(tmp_path / "data")),
    )
    env = {
        **os.environ,
        "OOC_PROGRESS": "0",
        "OOC_DATA_DIR": str(tmp_path / "data"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }

    def ooc(*args: str) -> list[str]:
        return [sys.executable, "-m", "ooc_flows.cli", *args]

    # `ooc run` always runs a Prefect flow: with no server configured, a temporary one
    killed = subprocess.Popen(ooc("run", "--shape", "24,24,24"), cwd=tmp_path, env=env)
    deadline = time.monotonic() + 120
    while not _servers(killed.pid) and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.2)
    (orphan,) = _servers(killed.pid)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    time.sleep(1)
    assert orphan.is_running(), "the server died with its verb: nothing to clean up"

    measure = ooc("measure", "labels.zarr", "m.zarr", "--pore", "pore")
    done = subprocess.run(
        measure, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE


def test_a_stage_verb_starts_its_work_with_no_prefect_server(tmp_path: Path) -> None:
    """With the embedded defaults, the order of events is: check the inputs, start the Dask
    cluster, work (its progress shows), record. Prefect never starts: no server process
    appears while the verb runs and no database is made."""
    np.save(tmp_path / "labels.npy", np.random.default_rng(1).integers(0, 2, (24, 24, 24)))
    meta = {"sample_id": "fast", "modality": "TEM", "voxel_size": [2.0] * 3, "unit": "nm"}
    meta |= {"kind": "labels", "labels": {"0": "solid", "1": "pore"}}
    settings = load_settings(data_dir=str(tmp_path / "data"))
    run_ingest(
        str(tmp_path / "labels.npy"), str(tmp_path / "l.zarr"), metadata=meta, settings=settings
    )
    env = {**os.environ, "OOC_PROGRESS": "1", "OOC_DATA_DIR": str(tmp_path / "data")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    verb = subprocess.Popen(
        [sys.executable, "-m", "ooc_flows.cli", "measure", "l.zarr", "m.zarr", "--pore", "pore"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    servers = []
    while verb.poll() is None:
        servers += _servers(verb.pid)
        time.sleep(0.05)
    out, err = verb.communicate()
    assert verb.returncode == 0, err[-2000:]
    assert not servers, "a Prefect server was started for a stage verb"
    assert not (tmp_path / "prefect").exists()
    assert err.lstrip().startswith("measure l.zarr:"), err[:500]  # the work's progress comes first
    assert "l.zarr: measure done" in out
