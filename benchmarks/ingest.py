"""Ingest benchmark: ``ooc`` ingest against ``cp`` and a hand-written dask-image pipeline.

Makes a synthetic MicroCT TIFF-slice stack of about ``--size-gb`` (uint16 slices of
``--slice`` x ``--slice`` voxels, from ``ooc.synth``), then times, each in a fresh process on the
same input and the same disk, with the page cache dropped first where permitted (root):

- ``cp -r`` of the slice folder: the practical I/O limit;
- ``ooc ingest`` (library call, no cluster: its thread pool of one thread per core; 128^3 chunks,
  whole pyramid, SHA-256 of the input for the provenance);
- ``dask_image.imread(nframes=128)`` + ``rechunk`` + ``to_zarr``: what a user would write by hand,
  reading a chunk's depth of slices per task (Dask's threaded scheduler, same chunks and codec; no
  pyramid, no checksum, not resumable);
- ``ooc ingest`` on a ``LocalCluster`` of ``--workers`` processes (ooc's default cluster).

Peak memory is the largest summed RSS of the process and all its children (the Dask workers),
sampled every 50 ms. Then ooc's phase breakdown (seconds summed over its tasks) and, with
``--codecs``, the speed and ratio of the Blosc compressors on the synthetic slices and on the real
sandstone slices (``../shared/data``, when present). Run:  python benchmarks/ingest.py --size-gb 2
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

import numpy as np
import tifffile
from tqdm import tqdm

from _harness import print_table, run_measured
from ooc.synth import default_sample, render_grey

_OOC = """
import contextlib, json, sys
from ooc.cluster import dask_client
from ooc.config import Settings
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata
stack, out, workers, cname, clevel = sys.argv[1:6]
cluster = (
    dask_client(Settings(n_workers=int(workers), threads_per_worker=1))
    if int(workers) else contextlib.nullcontext()
)
with cluster:
    report = ingest(
        open_reader(stack), out, VolumeMetadata("bench", "MicroCT", (2.0, 2.0, 2.0)),
        cname=cname, clevel=int(clevel), progress=False,
    )
print(json.dumps({"seconds": report.seconds, "phases": report.phases}))
"""

_DASK_IMAGE = """
import sys
import dask.array as da
from dask_image.imread import imread
from ooc.io.store import blosc_codec
stack, out, depth, cname, clevel = sys.argv[1:6]
volume = imread(stack + "/*.tif", nframes=int(depth)).rechunk((int(depth), 128, 128))
da.to_zarr(volume, out, zarr_format=3, compressors=blosc_codec(volume.dtype, int(clevel), cname))
"""

SANDSTONE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sandstone_slices"


def make_stack(folder: Path, size_gb: float, side: int, seed: int) -> int:
    """Write about ``size_gb`` of uint16 ``side`` x ``side`` slices; returns the byte count.

    A 32-slice slab of the synthetic MicroCT scan is rendered once and its slices are written
    in turn (each slice a different one of the slab's), so content and compressibility are
    those of the synthetic scan while generation stays fast at any size.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = max(1, round(size_gb * 1e9 / (side * side * 2)))
    spec = default_sample(seed=seed, shape=(n, side, side))
    slab = render_grey(spec, "MicroCT", (slice(0, min(32, n)), slice(0, side), slice(0, side)))
    for z in tqdm(range(n), desc="making the TIFF stack", unit="slice"):
        tifffile.imwrite(folder / f"slice_{z:06d}.tif", slab[z % len(slab)])
    return sum(p.stat().st_size for p in folder.iterdir())


def _drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def codec_table(slices: np.ndarray) -> list[list[str]]:
    """Blosc compressors on ``slices`` cut into chunks of up to 128^3 (one thread): ratio and
    GB/s of raw data encoded and decoded."""
    from numcodecs import Blosc

    cz, c = min(128, slices.shape[0]), min(128, *slices.shape[1:])
    chunks = [
        np.ascontiguousarray(slices[:cz, y : y + c, x : x + c])
        for y in range(0, slices.shape[1] - c + 1, c)
        for x in range(0, slices.shape[2] - c + 1, c)
    ]
    nbytes = sum(ch.nbytes for ch in chunks)
    shuffle = Blosc.BITSHUFFLE if slices.dtype.itemsize == 1 else Blosc.SHUFFLE
    rows = []
    for cname, clevel in [("zstd", 3), ("zstd", 1), ("lz4", 5), ("lz4", 1)]:
        codec = Blosc(cname=cname, clevel=clevel, shuffle=shuffle, typesize=slices.dtype.itemsize)
        start = time.perf_counter()
        encoded = [codec.encode(ch) for ch in chunks]
        enc = time.perf_counter() - start
        start = time.perf_counter()
        for e in encoded:
            codec.decode(e)
        dec = time.perf_counter() - start
        size = sum(len(e) for e in encoded)
        rows.append(
            [
                f"{cname} {clevel}",
                f"{nbytes / size:.2f}",
                f"{nbytes / enc / 1e9:.2f}",
                f"{nbytes / dec / 1e9:.2f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--slice", type=int, default=1024, help="slice side, voxels")
    parser.add_argument("--workers", type=int, default=2, help="processes of the cluster route")
    parser.add_argument("--cname", default="zstd", help="Blosc compressor (zstd, lz4)")
    parser.add_argument("--clevel", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder under ./")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-cache", action="store_true", help="do not drop the page cache")
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster route")
    parser.add_argument("--codecs", action="store_true", help="also compare Blosc compressors")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="ooc-bench-", dir=args.workdir or Path.cwd()))
    try:
        stack = work / "stack"
        nbytes = make_stack(stack, args.size_gb, args.slice, args.seed)
        codec = [args.cname, str(args.clevel)]
        runs = {
            "cp -r (I/O limit)": (["cp", "-r", str(stack), str(work / "out")], False),
            "ooc ingest (threads)": (
                [sys.executable, "-c", _OOC, str(stack), str(work / "out"), "0", *codec],
                True,
            ),
            "dask_image.imread + to_zarr": (
                [sys.executable, "-c", _DASK_IMAGE, str(stack), str(work / "out"), "128", *codec],
                False,
            ),
        }
        if not args.no_cluster:
            runs[f"ooc ingest ({args.workers}-process cluster)"] = (
                [
                    sys.executable,
                    "-c",
                    _OOC,
                    str(stack),
                    str(work / "out"),
                    str(args.workers),
                    *codec,
                ],
                True,
            )
        rows = []
        reports = {}
        cold = False
        ooc_bytes = 0
        for name, (command, is_ooc) in runs.items():
            cold = not args.keep_cache and _drop_caches()
            seconds, peak, report = run_measured(command, json_result=is_ooc)
            rows.append((name, seconds, nbytes / seconds / 1e9, peak / 2**30))
            if is_ooc:
                reports[name] = report
                ooc_bytes = sum(p.stat().st_size for p in (work / "out").rglob("*") if p.is_file())
            shutil.rmtree(work / "out")  # keeps the disk needed at 2x the input, for 16 GB runs
        load_after = os.getloadavg()
        cp_rate = rows[0][2]
        print()
        print(
            f"input: {nbytes / 1e9:.2f} GB in {len(list(stack.iterdir()))} TIFF slices of "
            f"{args.slice}x{args.slice} uint16; Blosc {args.cname} {args.clevel}; page cache "
            f"{'dropped before each run' if cold else 'NOT dropped'}; load average "
            f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
        )
        print(f"{'method':<34} {'seconds':>8} {'GB/s':>7} {'vs cp':>6} {'peak GiB':>9}")
        for name, seconds, rate, peak in rows:
            print(f"{name:<34} {seconds:>8.1f} {rate:>7.3f} {rate / cp_rate:>6.0%} {peak:>9.2f}")
        print(
            f"ooc store: {ooc_bytes / 1e9:.2f} GB on disk (all pyramid levels), "
            f"ratio {nbytes / ooc_bytes:.2f}"
        )
        print()
        for name, report in reports.items():
            phases = report["phases"]
            total = sum(phases.values())
            print(
                f"{name}: {report['seconds']:.1f} s inside ingest(); task seconds per phase "
                "(summed over threads/workers):"
            )
            print_table(
                [[k, f"{v:.2f}", f"{v / total:.0%}"] for k, v in phases.items()],
                ["phase", "seconds", "share"],
            )
        if args.codecs:
            print(f"Blosc on 128^3 chunks, one thread (GB/s of raw data), {args.slice}^2 slices:")
            side = min(args.slice, 1024)
            spec = default_sample(seed=args.seed, shape=(128, side, side))
            slab = render_grey(spec, "MicroCT", (slice(0, 128), slice(0, side), slice(0, side)))
            print_table(codec_table(slab), ["synthetic uint16", "ratio", "encode", "decode"])
            if SANDSTONE.is_dir():
                grey = tifffile.imread(next(SANDSTONE.glob("*grey*.tif")))
                print_table(codec_table(grey), ["sandstone uint8", "ratio", "encode", "decode"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
