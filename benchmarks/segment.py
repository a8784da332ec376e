"""Segmentation benchmark: ``ooc`` features + forest against whole-array pipelines, same volume.

Renders a synthetic MicroCT volume of ``--size``³ voxels (``ooc.synth``, written block by block
to a Zarr store) and sparse scribbles from its ground truth (at most 0.1% of voxels), trains one
forest on ``ooc``'s filter bank, then times, each in a fresh process on the same volume:

- ``ooc`` features + forest prediction, fused block by block on a LocalCluster of 1 and of 2
  worker processes (``segment``: labels, probabilities and uncertainty written to Zarr);
- a plain whole-array pipeline: the same filters with ``scipy.ndimage`` on the whole volume,
  eigenvalues by ``numpy.linalg.eigvalsh``, then the same forest's ``predict`` (labels kept in
  memory);
- scikit-image's ``multiscale_basic_features`` on the whole volume + a forest of the same size
  trained on the same scribbles with those features.

Reported: voxels per second of features + prediction (the time inside each process, after the
volume is read), wall seconds, peak memory (largest summed RSS of the process and its children,
sampled every 50 ms, as in ``benchmarks/ingest.py``) and mean IoU against the ground truth.
Run:  python benchmarks/segment.py --size 160
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr

from _harness import run_measured
from ooc.io.store import blosc_codec
from ooc.synth import SEGMENT_FILTERS, default_sample, render_scan

_OOC = """
import json, sys, time
import dask.array as da, zarr
from ooc.cluster import dask_client
from ooc.config import Settings
from ooc.segment import load_model, segmentation
work, workers = sys.argv[1], int(sys.argv[2])
model = load_model(work + "/ooc.model")
with dask_client(Settings(n_workers=workers, threads_per_worker=1, memory_limit="4GiB")):
    vol = da.from_zarr(zarr.open_array(work + "/grey.zarr", mode="r"))
    t = time.perf_counter()
    seg = segmentation(vol, model, device="cpu")
    seg.to_zarr(work + f"/ooc{workers}.zarr", mode="w", zarr_format=3, consolidated=False)
    seconds = time.perf_counter() - t
labels = zarr.open_group(work + f"/ooc{workers}.zarr", mode="r")["labels"][...]
import numpy as np
np.save(work + f"/pred_ooc{workers}.npy", labels)
print(json.dumps({"seconds": seconds}))
"""

_PLAIN = """
import itertools, json, sys, time
import numpy as np, zarr
from scipy import ndimage as ndi
from ooc.segment import load_model
work = sys.argv[1]
model = load_model(work + "/ooc.model")
x = zarr.open_array(work + "/grey.zarr", mode="r")[...].astype(np.float32)
t = time.perf_counter()
feats = []
for name, sigmas in model.spec.filters:  # the same bank, written with scipy.ndimage by hand
    for s in sigmas:
        if name == "gaussian":
            feats.append(ndi.gaussian_filter(x, s) if s else x.copy())
        elif name == "gradient":
            feats.append(ndi.gaussian_gradient_magnitude(x, s))
        elif name == "laplacian":
            feats.append(ndi.gaussian_laplace(x, s))
        elif name == "dog":
            feats.append(ndi.gaussian_filter(x, 0.66 * s) - ndi.gaussian_filter(x, s))
        elif name in ("hessian", "structure"):
            m = np.empty(x.shape + (3, 3), np.float32)
            if name == "hessian":
                for i, j in itertools.combinations_with_replacement(range(3), 2):
                    o = [0, 0, 0]; o[i] += 1; o[j] += 1
                    m[..., i, j] = m[..., j, i] = ndi.gaussian_filter(x, s, order=o)
            else:
                g = [ndi.gaussian_filter(x, s, order=[int(a == i) for a in range(3)]) for i in range(3)]
                for i, j in itertools.combinations_with_replacement(range(3), 2):
                    m[..., i, j] = m[..., j, i] = ndi.gaussian_filter(g[i] * g[j], 0.5 * s)
                del g
            ev = np.linalg.eigvalsh(m)[..., ::-1]
            del m
            feats.extend(np.moveaxis(ev, -1, 0))
        else:
            raise SystemExit(f"filter {name} not in the plain pipeline")
X = np.stack([f.ravel() for f in feats], axis=1)
del feats
est = model.estimator
est.n_jobs = 1
pred = np.asarray(model.classes)[est.predict_proba(X).argmax(1)].reshape(x.shape)
seconds = time.perf_counter() - t
np.save(work + "/pred_plain.npy", pred.astype(np.uint8))
print(json.dumps({"seconds": seconds}))
"""

_SKIMAGE = """
import json, sys, time
import numpy as np, zarr
from skimage.feature import multiscale_basic_features
from sklearn.ensemble import RandomForestClassifier
work, trees, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ann = np.load(work + "/scribbles.npz")
x = zarr.open_array(work + "/grey.zarr", mode="r")[...].astype(np.float32)
t = time.perf_counter()
f = multiscale_basic_features(x, intensity=True, edges=True, texture=True, sigma_min=0.5, sigma_max=16)
t_feat = time.perf_counter() - t
est = RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=0, n_jobs=1)
est.fit(f[tuple(ann["coords"].T)], ann["labels"])   # training time is not counted
t = time.perf_counter()
pred = est.predict(f.reshape(-1, f.shape[-1])).reshape(x.shape)
seconds = t_feat + time.perf_counter() - t
np.save(work + "/pred_skimage.npy", pred.astype(np.uint8))
print(json.dumps({"seconds": seconds, "features": f.shape[-1]}))
"""


def make_volume(work: Path, size: int, seed: int) -> np.ndarray:
    """Write the grey volume block by block to ``work/grey.zarr``; return the ground truth."""
    spec = default_sample(seed=seed, shape=(size, size, size))
    arr = zarr.create_array(
        str(work / "grey.zarr"), shape=(size,) * 3, chunks=(64,) * 3, dtype="uint16",
        compressors=blosc_codec(np.dtype("uint16")),
    )  # fmt: skip
    truth = np.empty((size,) * 3, dtype=np.uint8)
    for z0 in range(0, size, 64):
        region = (slice(z0, min(z0 + 64, size)), slice(0, size), slice(0, size))
        truth[region], arr[region] = render_scan(spec, "MicroCT", region)
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="volume edge, voxels")
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--select",
        type=int,
        help="prune ooc's bank to the filters of its N most important channels (train_forest "
        "n_features); the scipy route computes the same pruned bank",
    )
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder under ./")
    args = parser.parse_args(argv)

    from ooc.features import FeatureSpec
    from ooc.segment import iou, save_model, simulate_scribbles, train_forest

    work = Path(tempfile.mkdtemp(prefix="ooc-seg-bench-", dir=args.workdir or Path.cwd()))
    try:
        print(f"rendering a {args.size}³ synthetic MicroCT volume ...", flush=True)
        truth = make_volume(work, args.size, args.seed)
        ann = simulate_scribbles(
            truth, fraction=0.001, radius=0.5, margin=0.0, stroke_length=6, seed=3
        )
        np.savez(work / "scribbles.npz", coords=ann.coords, labels=ann.labels)
        spec = FeatureSpec(filters=SEGMENT_FILTERS)
        grey = zarr.open_array(str(work / "grey.zarr"), mode="r")
        import dask.array as da

        model = train_forest(
            da.from_zarr(grey),
            ann,
            spec,
            n_estimators=args.trees,
            max_depth=args.depth,
            n_jobs=1,
            n_features=args.select,
        )
        save_model(model, work / "ooc.model")
        py = sys.executable
        runs = {
            "ooc segment, 1 worker": ([py, "-c", _OOC, str(work), "1"], "pred_ooc1.npy"),
            "ooc segment, 2 workers": ([py, "-c", _OOC, str(work), "2"], "pred_ooc2.npy"),
            "scipy.ndimage + sklearn (whole array)": (
                [py, "-c", _PLAIN, str(work)],
                "pred_plain.npy",
            ),
            "skimage multiscale_basic_features + RF": (
                [py, "-c", _SKIMAGE, str(work), str(args.trees), str(args.depth)],
                "pred_skimage.npy",
            ),
        }
        n = truth.size
        rows = []
        for name, (command, pred_file) in runs.items():
            print(f"running {name} ...", flush=True)
            wall, peak, info = run_measured(command, json_result=True)
            pred = np.load(work / pred_file).astype(np.int64) - 1
            scores = iou(pred, truth, [0, 1, 2])
            rows.append(
                (
                    name,
                    info["seconds"],
                    wall,
                    n / info["seconds"],
                    peak,
                    np.mean(list(scores.values())),
                )
            )
        print()
        print(
            f"volume: {args.size}³ = {n / 1e6:.1f} M voxels uint16 ({n * 2 / 2**20:.0f} MiB), "
            f"{ann.n_voxels} labelled voxels ({ann.fraction:.3%}); forest {args.trees} trees, "
            f"depth {args.depth}; ooc bank {model.spec.n_channels(3)} features"
            + (f" (the best {args.select} of {spec.n_channels(3)} selected)" if args.select else "")
        )
        print(
            f"{'route':<42} {'seconds':>8} {'wall s':>7} {'Mvox/s':>7} {'peak GiB':>9} {'mIoU':>6}"
        )
        base = rows[0][3]
        for name, sec, wall, rate, peak, miou in rows:
            print(
                f"{name:<42} {sec:>8.1f} {wall:>7.1f} {rate / 1e6:>7.3f} {peak / 2**30:>9.2f} {miou:>6.3f}"
            )
        print(
            f"(rate relative to ooc with 1 worker: {', '.join(f'{r[3] / base:.2f}' for r in rows)})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
