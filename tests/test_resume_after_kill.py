"""A real ``kill -9`` of an ingest process, then a re-run: the store ends byte-identical to an
uninterrupted ingest, and no chunk that was complete before the re-run is written again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata

META = VolumeMetadata("kill-test", "FIB-SEM", (10.0, 5.0, 5.0), "nanometer")
CHUNKS = (4, 32, 32)

_SCRIPT = """
import sys
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata
meta = VolumeMetadata("kill-test", "FIB-SEM", (10.0, 5.0, 5.0), "nanometer")
ingest(open_reader(sys.argv[1]), sys.argv[2], meta, chunks=(4, 32, 32), max_region_bytes=1,
       progress=False)
"""


def _files(store: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.slow
def test_kill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    volume = rng.integers(0, 4000, size=(64, 128, 256), dtype=np.uint16)
    stack = tmp_path / "stack"
    stack.mkdir()
    for z, plane in enumerate(volume):
        tifffile.imwrite(stack / f"img_{z:04d}.tif", plane)

    reference = tmp_path / "reference.zarr"
    ingest(
        open_reader(stack), str(reference), META, chunks=CHUNKS, max_region_bytes=1, progress=False
    )

    out = tmp_path / "killed.zarr"
    env = {**os.environ, "DASK_SCHEDULER": "synchronous"}
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(stack), str(out)], env=env)
    flags = out / "_progress" / "0" / "c"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if flags.is_dir() and sum(1 for p in flags.rglob("*") if p.is_file()) >= 20:
            break
        time.sleep(0.005)
    assert proc.poll() is None, (
        "the ingest finished before it could be killed; make the volume larger"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = {
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in (out / "0").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    }
    assert 0 < len(before) < len(list((reference / "0").rglob("*")))

    report = ingest(
        open_reader(stack), str(out), META, chunks=CHUNKS, max_region_bytes=1, progress=False
    )
    assert report.resumed
    assert report.regions_skipped >= 20

    assert _files(out) == _files(reference)
    final = _files(reference)
    for path, (mtime, content) in before.items():
        if content == final[str(path.relative_to(out))]:
            assert path.stat().st_mtime_ns == mtime, f"{path} was complete but written again"
