"""A verb killed with ``kill -9`` leaves Prefect's temporary server behind; the next verb ends it."""

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
    verb = [
        sys.executable,
        "-m",
        "ooc_flows.cli",
        "measure",
        "labels.zarr",
        "m.zarr",
        "--pore",
        "pore",
    ]
    killed = subprocess.Popen(verb, cwd=tmp_path, env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while not _servers(killed.pid) and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.2)
    (orphan,) = _servers(killed.pid)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    time.sleep(1)
    assert orphan.is_running(), "the server died with its verb: nothing to clean up"

    done = subprocess.run(verb, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
