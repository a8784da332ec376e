"""End-to-end benchmark: a synthetic uint16 MicroCT scan from TIFF slices to its properties.

Writes a synthetic MicroCT scan of ``--size``³ uint16 voxels as TIFF slices, with its ground
truth and scribbles on ``--scribbles`` of its voxels (``ooc synth``; set-up, not in the total),
then runs README's chain of ``ooc`` verbs on it, each in its own process the way a user types
it (no Prefect server configured: each verb runs its stage directly, on a LocalCluster of the
configured workers, 2 by default):

- ``ingest``: TIFF slices -> OME-Zarr volume;
- ``train``: a random forest from the scribbles (the filter bank and forest size of
  ``ooc run --example``; ``--select N`` prunes the bank as ``ooc train --select`` does);
- ``segment``: labels, probabilities and uncertainty;
- ``measure``: fractions, surface areas, connectivity, pore sizes, objects;
- ``simulate``: tortuosity factor, conductivity and permeability per axis, with README's phase
  values (pore 1, micro-porous 0.25, micro-porous a Brinkman phase of 1e-15 m²); route "auto":
  the whole volume when its solves fit in the memory free, else maps of ``--block``³ blocks
  (``--route`` forces one).

Printed per stage: wall seconds, share of the total, voxels per second, the peak summed RSS of
the verb's process tree (workers included, sampled every 50 ms) and the 1-minute load average
when it ended; then the segmentation's IoU against the truth and the properties per axis
(whole-volume values, or the median over the blocks of the block-wise maps).

The alternative, on the same scan in the same run: the whole-array route a user would write.
tifffile reads the stack, scikit-image's ``multiscale_basic_features`` and a scikit-learn forest
of as many trees (``skimage.future.fit_segmenter`` / ``predict_segmenter``) segment it, and
scipy / scikit-image measure phase fractions, surface areas (marching cubes), face-to-face
connectivity of the pore space and grains split by distance-transform watershed. It holds the
volume and all its features in memory, so it runs only where its estimated peak fits in the
memory available ("skipped: does not fit" otherwise). It simulates nothing
(``benchmarks/simulate.py`` compares the solvers with peers).

Run:  python benchmarks/end_to_end.py --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from _harness import print_table, run_measured

OOC = [sys.executable, "-m", "ooc_flows.cli"]
STAGES = ("ingest", "train", "segment", "measure", "simulate")
PHASE_VALUES = ["pore=1", "micro-porous=0.25"]
POROUS = ["micro-porous=1e-15"]
# peak bytes per voxel of the whole-array route, measured at 128³ (2.2 GiB; the peak is inside
# multiscale_basic_features, which returns 30 float32 features: 120 B/voxel)
ALTERNATIVE_BYTES_PER_VOXEL = 1100

_ALTERNATIVE = """
import json, sys, time
from pathlib import Path
import numpy as np, tifffile
from scipy import ndimage as ndi
from skimage.feature import multiscale_basic_features, peak_local_max
from skimage.future import fit_segmenter, predict_segmenter
from skimage.measure import marching_cubes, mesh_surface_area
from skimage.segmentation import watershed
from sklearn.ensemble import RandomForestClassifier
raw, out, trees, voxel = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
t = {}
s = time.perf_counter()
x = tifffile.imread(sorted((raw / "grey").glob("*.tif"))).astype(np.float32)
scribbles = tifffile.imread(raw / "scribbles.tif")
t["read"] = time.perf_counter() - s
s = time.perf_counter()
features = multiscale_basic_features(x)
t["features"] = time.perf_counter() - s
s = time.perf_counter()
clf = fit_segmenter(scribbles, features, RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=0))
t["train"] = time.perf_counter() - s
s = time.perf_counter()
labels = predict_segmenter(features, clf).astype(np.uint8)
t["predict"] = time.perf_counter() - s
del features
s = time.perf_counter()
n = labels.size
fractions = np.bincount(labels.ravel(), minlength=4)[1:] / n
ssa = []
for value in (1, 2, 3):
    verts, faces, _, _ = marching_cubes((labels == value).astype(np.float32), 0.5, spacing=(voxel,) * 3)
    ssa.append(mesh_surface_area(verts, faces) / (n * voxel**3))
pore, _ = ndi.label(labels == 1)
percolating = []
for axis in range(3):
    first = np.unique(np.take(pore, 0, axis=axis))
    last = np.unique(np.take(pore, -1, axis=axis))
    through = np.intersect1d(first[first > 0], last[last > 0])
    percolating.append(float(np.isin(pore, through).sum() / max(1, (pore > 0).sum())))
del pore
grain = labels == 2
distance = ndi.distance_transform_edt(grain)
peaks = peak_local_max(distance, min_distance=3, labels=ndi.label(grain)[0])
markers = np.zeros(labels.shape, np.int32)
markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
objects = watershed(-distance, markers, mask=grain)
count = int(len(np.unique(objects)) - 1)
t["measure"] = time.perf_counter() - s
np.save(out, labels)
print(json.dumps({"seconds": t, "fractions": fractions.tolist(), "ssa": ssa, "pore_percolating": percolating, "objects": count}))
"""


def _verb(args: list[str]) -> tuple[float, int, float]:
    """Run ``ooc ARGS``; wall seconds, peak RSS of its process tree (bytes), 1-minute load
    average after."""
    seconds, peak, _ = run_measured([*OOC, *args])
    return seconds, peak, os.getloadavg()[0]


def score(segmentation: str, truth: Path, names: list[str], *, slab: int = 64) -> dict[str, float]:
    """IoU per phase of the label store ``segmentation`` (values 1..K) against the truth's TIFF
    slices in ``truth`` (values 0..K-1), slab by slab of ``slab`` z-slices."""
    import tifffile

    import ooc

    labels = ooc.open_volume(segmentation).data
    files = sorted(truth.glob("*.tif"))
    k = len(names)
    counts = np.zeros((k + 1, k + 1), dtype=np.int64)  # [truth, predicted], value 0 unused
    for z0 in range(0, len(files), slab):
        expected = tifffile.imread(files[z0 : z0 + slab]).astype(np.int64) + 1
        predicted = np.asarray(labels[z0 : z0 + slab]).astype(np.int64)
        counts += np.bincount(
            (expected * (k + 1) + predicted).ravel(), minlength=(k + 1) ** 2
        ).reshape(k + 1, k + 1)
    return {
        name: float(counts[c, c] / (counts[c].sum() + counts[:, c].sum() - counts[c, c]))
        for c, name in enumerate(names, start=1)
    }


def properties(url: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Tortuosity factor, relative conductivity and permeability (mD) per axis of a simulate
    store: the whole-volume values, or the median over blocks of the block-wise maps (and
    ``closed``: the number of blocks with no pore path along some axis)."""
    keys = {
        "tau": "tortuosity",
        "relative_conductivity": "relative_conductivity",
        "permeability_mD": "permeability_mD",
    }
    if summary["route"] == "whole":
        return {key: dict(summary[key]) for key in keys}
    from ooc.results import read_group

    maps = read_group(url, "simulate/blocks")
    closed = int(np.isinf(maps["tortuosity"]).any("direction").sum())
    return {"closed": closed} | {
        key: {
            d: float(np.nanmedian(maps[var].sel(direction=d).values.astype(float))) for d in "zyx"
        }
        for key, var in keys.items()
    }


def solve_times(url: str) -> str:
    """Seconds and iterations of each whole-volume solve of a simulate store, summed over the
    directions (one phrase per property)."""
    from ooc.results import read_group

    parts = []
    for prop in ("tortuosity", "conductivity", "permeability"):
        ds = read_group(url, f"simulate/{prop}")
        its = "/".join(str(int(v)) for v in ds["iterations"].values)
        parts.append(f"{prop} {float(ds['solve_time_s'].sum()):.1f} s ({its} iterations)")
    return ", ".join(parts)


def _alternative_fits(size: int) -> bool:
    return size**3 * ALTERNATIVE_BYTES_PER_VOXEL < psutil.virtual_memory().available


def _fmt_axes(values: dict[str, float], fmt: str) -> str:
    return "/".join(format(values[d], fmt) for d in "zyx")


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The whole benchmark in ``work``; returns what it printed, as numbers."""
    from ooc.stages.record import read_record
    from ooc.synth import PHASES, SEGMENT_FILTERS

    names = list(PHASES["MicroCT"])
    n = args.size
    # the verbs (run_measured's children) inherit this process's folder and environment
    os.chdir(work)
    os.environ.update(OOC_PROGRESS="0", PREFECT_HOME=str(work / "prefect"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)  # no Prefect server: each verb runs its stage
    base = ["--data-dir", str(work / "data")]
    classes = [f"{i}={name}" for i, name in enumerate(names, start=1)]
    train = ["--class-names", *classes, "--filters", json.dumps(SEGMENT_FILTERS)]
    train += ["--n-estimators", str(args.trees)]
    if args.select:
        train += ["--select", str(args.select)]
    verbs = {
        "ingest": ["ingest", "raw/MicroCT/grey", "scan.zarr", "--sample-id", "e2e",
                   "--modality", "MicroCT", "--voxel-size", str(args.voxel), "--unit", "um"],
        "train": ["train", "scan.zarr", "raw/MicroCT/scribbles.tif", "model", *train],
        "segment": ["segment", "scan.zarr", "model", "seg.zarr"],
        "measure": ["measure", "seg.zarr", "measure.zarr", "--pore", "pore",
                    "--objects", names[1]],
        "simulate": ["simulate", "seg.zarr", "simulate.zarr", "--pore", "pore",
                     "--phase-value", *PHASE_VALUES, "--porous", *POROUS,
                     "--route", args.route, "--block", str(args.block)],
    }  # fmt: skip
    load_before = os.getloadavg()[0]
    print(f"load average before: {load_before:.2f}; writing the {n}³ scan ...", flush=True)
    synth = [*base, "synth", "raw", "--seed", str(args.seed), "--shape", f"{n},{n},{n}"]
    synth += ["--scales", "MicroCT", "--scribbles", str(args.scribbles)]
    setup = _verb(synth)
    tiff_bytes = sum(f.stat().st_size for f in (work / "raw/MicroCT/grey").glob("*.tif"))
    measured = {}
    for stage in STAGES:
        print(f"ooc {stage} ...", flush=True)
        measured[stage] = _verb([*base, *verbs[stage]])
    records = {
        s: read_record(str(work / u))
        for s, u in (("segment", "seg.zarr"), ("measure", "measure.zarr"),
                     ("simulate", "simulate.zarr"))
    }  # fmt: skip
    ious = score(str(work / "seg.zarr"), work / "raw/MicroCT/labels", names)
    sim = records["simulate"]["summary"]
    props = properties(str(work / "simulate.zarr"), sim)
    meas = records["measure"]["summary"]

    voxels = n**3
    total = sum(m[0] for m in measured.values())
    rows = [
        [
            s,
            f"{t:.1f}",
            f"{100 * t / total:.1f}%",
            f"{voxels / t / 1e6:.3g}",
            f"{peak / 2**30:.2f}",
            f"{load:.2f}",
        ]
        for s, (t, peak, load) in measured.items()
    ]
    peak_all = max(m[1] for m in measured.values())
    rows.append(["total", f"{total:.1f}", "100.0%", f"{voxels / total / 1e6:.3g}",
                 f"{peak_all / 2**30:.2f}", f"{os.getloadavg()[0]:.2f}"])  # fmt: skip
    print()
    print(
        f"scan: {n}³ uint16 = {voxels / 1e6:.1f} M voxels, {tiff_bytes / 1e9:.3f} GB of TIFF "
        f"slices (written in {setup[0]:.1f} s, not in the total); {psutil.cpu_count()} cores; "
        f"forest {args.trees} trees" + (f", bank pruned to {args.select}" if args.select else "")
    )
    print_table(rows, ["stage", "seconds", "share", "Mvox/s", "peak GiB", "load"])
    print(
        "IoU: "
        + ", ".join(f"{k} {v:.3f}" for k, v in ious.items())
        + f" (mean {np.mean(list(ious.values())):.3f})"
    )
    route = sim["route"]
    if route == "blocks":
        route += f", median of {sim['blocks']} blocks of {args.block}³ ({props['closed']} of them"
        route += " closed along some axis: tau inf there)"
    print(
        f"simulate (route {route}): tau z/y/x {_fmt_axes(props['tau'], '.3f')}; "
        f"sigma/sigma0 {_fmt_axes(props['relative_conductivity'], '.4f')}; "
        f"k {_fmt_axes(props['permeability_mD'], '.4g')} mD"
    )
    if sim["route"] == "whole":
        print("simulate solves: " + solve_times(str(work / "simulate.zarr")))
    print(
        f"measure: porosity {meas['porosity']:.4f}; {meas['objects']['phase']} objects "
        f"{meas['objects']['count']}; pore connected z/y/x "
        + "/".join(f"{v:.3f}" for v in meas["pore_percolating"])
    )
    print()
    out: dict[str, Any] = {
        "size": n,
        "tiff_bytes": tiff_bytes,
        "load_before": load_before,
        "setup_seconds": setup[0],
        "stages": {
            s: {"seconds": t, "share": t / total, "peak_bytes": p, "load": ld}
            for s, (t, p, ld) in measured.items()
        },
        "total_seconds": total,
        "iou": ious,
        "simulate_route": sim["route"],
        "properties": props,
        "measure": {k: meas[k] for k in ("porosity", "fractions", "ssa", "pore_percolating")},
        "objects": meas["objects"]["count"],
    }
    out["alternative"] = _alternative(args, work, names, measured, meas, ious)
    return out


def _alternative(
    args: argparse.Namespace,
    work: Path,
    names: list[str],
    measured: dict[str, tuple[float, int, float]],
    meas: dict[str, Any],
    ooc_iou: dict[str, float],
) -> dict[str, Any] | None:
    """Run and print the whole-array route, or say that it does not fit."""
    route = "tifffile + skimage multiscale_basic_features + sklearn RF + scipy/skimage measure"
    print(f"alternative: {route}")
    if not _alternative_fits(args.size):
        need = args.size**3 * ALTERNATIVE_BYTES_PER_VOXEL / 2**30
        print(
            f"skipped: does not fit (about {need:.0f} GiB, {ALTERNATIVE_BYTES_PER_VOXEL} B/voxel)"
        )
        return None
    command = [sys.executable, "-c", _ALTERNATIVE, str(work / "raw/MicroCT"), str(work / "alt.npy")]
    command += [str(args.trees), str(args.voxel)]
    print("running the alternative ...", flush=True)
    wall, peak, info = run_measured(command, json_result=True)
    load = os.getloadavg()[0]
    import tifffile

    truth = tifffile.imread(sorted((work / "raw/MicroCT/labels").glob("*.tif"))).astype(np.int64)
    pred = np.load(work / "alt.npy").astype(np.int64) - 1
    from ooc.segment import iou

    ious = {names[k]: float(v) for k, v in iou(pred, truth, list(range(len(names)))).items()}
    t = info["seconds"]
    ooc_seconds = sum(measured[s][0] for s in ("ingest", "train", "segment", "measure"))
    rows = [
        [
            "ooc verbs",
            f"{measured['ingest'][0]:.1f}",
            f"{measured['train'][0]:.1f}",
            f"{measured['segment'][0]:.1f}",
            f"{measured['measure'][0]:.1f}",
            f"{ooc_seconds:.1f}",
            f"{max(measured[s][1] for s in ('ingest', 'train', 'segment', 'measure')) / 2**30:.2f}",
            f"{np.mean(list(ooc_iou.values())):.3f}",
            f"{meas['porosity']:.4f}",
            str(meas["objects"]["count"]),
        ],
        [
            "whole array",
            f"{t['read']:.1f}",
            f"{t['train'] + t['features']:.1f}",
            f"{t['predict']:.1f}",
            f"{t['measure']:.1f}",
            f"{wall:.1f}",
            f"{peak / 2**30:.2f}",
            f"{np.mean(list(ious.values())):.3f}",
            f"{info['fractions'][0]:.4f}",
            str(info["objects"]),
        ],
    ]
    print_table(
        rows,
        ["route", "ingest/read", "train", "segment", "measure", "to measure s", "peak GiB", "mIoU",
         "porosity", "objects"],
    )  # fmt: skip
    print(
        f"(alternative: features {t['features']:.1f} s of its train column; load {load:.2f}; "
        f"IoU {', '.join(f'{k} {v:.3f}' for k, v in ious.items())}; ooc / whole-array time, "
        f"ingest to measure: {ooc_seconds / wall:.2f})"
    )
    return {"seconds": t, "wall": wall, "peak_bytes": peak, "iou": ious, **info}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="scan edge, voxels")
    parser.add_argument("--block", type=int, default=64, help="simulate block edge (blocks route)")
    parser.add_argument(
        "--route",
        choices=["auto", "whole", "blocks"],
        default="auto",
        help="ooc simulate --route (auto: whole where its solves fit in the memory free)",
    )
    parser.add_argument("--trees", type=int, default=100, help="trees of both forests")
    parser.add_argument("--select", type=int, help="ooc train --select N (prune the bank)")
    parser.add_argument("--scribbles", type=float, default=0.001, help="fraction of voxels")
    parser.add_argument("--voxel", type=float, default=2.0, help="voxel edge, µm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="parent of the run's folder (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = parser.parse_args(argv)
    here = Path.cwd()
    work = Path(tempfile.mkdtemp(prefix="ooc-e2e-", dir=args.workdir)).resolve()
    try:
        result = run(args, work)
    finally:
        os.chdir(here)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
