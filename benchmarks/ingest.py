"""Ingest benchmark: ``ooc`` ingest against ``cp`` and a hand-written dask-image pipeline.

Makes a synthetic MicroCT TIFF-slice stack of about ``--size-gb`` (uint16 slices of
``--slice`` x ``--slice`` voxels, from ``ooc.synth``), then times, each in a fresh process on the
same input and the same disk, with the page cache dropped first where permitted (root):

- ``cp -r`` of the slice folder: the practical I/O limit;
- ``ooc ingest`` (library call, LocalCluster of ``--workers`` processes, 128^3 chunks, pyramid);
- ``dask_image.imread`` + ``rechunk`` + ``to_zarr`` (same cluster, chunks and codec, no pyramid):
  what a user would write by hand.

Peak memory is the largest summed RSS of the process and all its children (the Dask workers),
sampled every 50 ms. Run:  python benchmarks/ingest.py --size-gb 2
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tifffile
from tqdm import tqdm

from _harness import run_measured
from ooc.synth import default_sample, render_grey

_OOC = """
import sys
from ooc.cluster import dask_client
from ooc.config import Settings
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata
stack, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
with dask_client(Settings(n_workers=workers, threads_per_worker=1)):
    ingest(open_reader(stack), out, VolumeMetadata("bench", "MicroCT", (2.0, 2.0, 2.0)), progress=False)
"""

_DASK_IMAGE = """
import sys
import dask.array as da
from dask_image.imread import imread
from ooc.cluster import dask_client
from ooc.config import Settings
from ooc.io.store import blosc_codec
stack, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
with dask_client(Settings(n_workers=workers, threads_per_worker=1)):
    volume = imread(stack + "/*.tif").rechunk((128, 128, 128))
    da.to_zarr(volume, out, zarr_format=3, compressors=blosc_codec(volume.dtype))
"""


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--slice", type=int, default=1024, help="slice side, voxels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder under ./")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-cache", action="store_true", help="do not drop the page cache")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ooc-bench-", dir=args.workdir or Path.cwd()))
    try:
        stack = work / "stack"
        nbytes = make_stack(stack, args.size_gb, args.slice, args.seed)
        runs = {
            "cp -r (I/O limit)": ["cp", "-r", str(stack), str(work / "copy")],
            "ooc ingest": [
                sys.executable,
                "-c",
                _OOC,
                str(stack),
                str(work / "ooc.zarr"),
                str(args.workers),
            ],
            "dask_image.imread + to_zarr": [
                sys.executable,
                "-c",
                _DASK_IMAGE,
                str(stack),
                str(work / "dask.zarr"),
                str(args.workers),
            ],
        }
        outputs = [work / "copy", work / "ooc.zarr", work / "dask.zarr"]
        rows = []
        cold = False
        ooc_bytes = 0
        for (name, command), output in zip(runs.items(), outputs, strict=True):
            cold = not args.keep_cache and _drop_caches()
            seconds, peak, _ = run_measured(command)
            rows.append((name, seconds, nbytes / seconds / 1e9, peak / 2**30))
            if name == "ooc ingest":
                ooc_bytes = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
            shutil.rmtree(output)  # keeps the disk needed at 2x the input, for 16 GB runs
        cp_rate = rows[0][2]
        print()
        print(
            f"input: {nbytes / 1e9:.2f} GB in {len(list(stack.iterdir()))} TIFF slices of "
            f"{args.slice}x{args.slice} uint16; {args.workers} workers; page cache "
            f"{'dropped before each run' if cold else 'NOT dropped (needs root)'}"
        )
        print(f"{'method':<30} {'seconds':>8} {'GB/s':>7} {'vs cp':>6} {'peak GiB':>9}")
        for name, seconds, rate, peak in rows:
            print(f"{name:<30} {seconds:>8.1f} {rate:>7.3f} {rate / cp_rate:>6.0%} {peak:>9.2f}")
        print(
            f"ooc store: {ooc_bytes / 1e9:.2f} GB on disk (all pyramid levels), ratio {nbytes / ooc_bytes:.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
