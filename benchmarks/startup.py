"""Start-up benchmark: how soon each ``ooc`` verb starts its work, and what it cost before.

Runs the README's chain (synth, ingest, features, train, segment, measure, simulate) on a small
synthetic scan in a fresh folder, each verb as a subprocess the way a user types it, with
progress bars on (``OOC_PROGRESS=1``) and no Prefect server configured. For each verb: seconds
to its first byte of output (a progress bar, or the result line of a verb too short for one),
total seconds and exit status; also a bad argument (argparse) and a bad phase name (the store
is opened to refuse it).

The alternative, on the same labels in the same run: ``measure`` run as its Prefect flow on
Prefect's temporary local API, the way every verb ran before (the API's database warmed by one
run first).

Run:  python benchmarks/startup.py --shape 64
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import print_table

OOC = [sys.executable, "-m", "ooc_flows.cli"]


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """``[first output s, total s, exit status, first line]`` of ``command``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_s = time.perf_counter() - start
    rest = proc.stdout.read()
    proc.wait()
    total_s = time.perf_counter() - start
    text = (first + rest).decode(errors="replace").replace("\r", "\n").strip().splitlines()
    return [f"{first_s:.2f}", f"{total_s:.2f}", str(proc.returncode), text[0][:60] if text else ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, default=64, help="edge of the synthetic scan")
    parser.add_argument("--workdir", help="folder for the run (default: a temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.workdir))
    env = {**os.environ, "OOC_PROGRESS": "1", "PREFECT_HOME": str(work / "prefect")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    n = args.shape
    verbs = {
        "synth": ["synth", "rock", "--seed", "1", "--shape", f"{n},{n},{n}", "--scales", "MicroCT"],
        "ingest": ["ingest", "rock/MicroCT/grey", "rock.zarr", "--sample-id", "rock-1",
                   "--modality", "MicroCT", "--voxel-size", "2", "--unit", "um"],
        "features": ["features", "rock.zarr", "features.zarr", "--filter", "hessian", "--sigma", "1.5"],
        "train": ["train", "rock.zarr", "rock/MicroCT/scribbles.tif", "rock.model",
                  "--class-names", "1=pore", "2=grain", "3=micro-porous"],
        "segment": ["segment", "rock.zarr", "rock.model", "seg.zarr"],
        "measure": ["measure", "seg.zarr", "measure.zarr", "--pore", "pore", "--objects", "grain"],
        "simulate": ["simulate", "seg.zarr", "simulate.zarr", "--pore", "pore",
                     "--phase-value", "pore=1", "micro-porous=0.25", "--porous", "micro-porous=1e-15"],
        "bad phase name": ["measure", "seg.zarr", "bad.zarr", "--pore", "void"],
        "bad argument": ["measure", "seg.zarr"],
    }  # fmt: skip
    try:
        rows = [[f"ooc {name}", *_timed(OOC + v, work, env)] for name, v in verbs.items()]
        flow = [
            sys.executable,
            "-c",
            "import sys; from ooc_flows.measure import measure_flow; "
            "measure_flow(labels='seg.zarr', output=sys.argv[1], pore='pore', objects='grain')",
        ]
        _timed([*flow, "warm.zarr"], work, env)  # Prefect's database made once
        rows.append(["measure as a Prefect flow", *_timed([*flow, "flow.zarr"], work, env)])
        print(f"{n}³ synthetic scan, load average {os.getloadavg()[0]:.2f}")
        print_table(rows, ["verb", "first output s", "total s", "exit", "first line"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
