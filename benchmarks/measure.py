"""Benchmark: ooc.measure against whole-array scikit-image / scipy.ndimage / PoreSpy.

Same volume, same run, each route in its own subprocess (fresh interpreter, one thread per
BLAS, ``MALLOC_ARENA_MAX=2``) so its time and peak memory (``ru_maxrss``) are its own:

* labelling (26-connected) + per-object statistics:
  ``ooc.measure.label_components`` + ``object_table`` on a dask array read from a Zarr store,
  against ``scipy.ndimage.label`` + ``skimage.measure.regionprops_table`` on the whole array;
* local thickness (integer radii, the same definition):
  ``ooc.measure.local_thickness`` + ``thickness_distribution`` against the same kernel on the
  whole array (scipy only) and ``porespy.filters.local_thickness(method="dt")`` when PoreSpy
  imports (in this interpreter or in the one given by ``--peers-python``);
* then a volume generated lazily block by block and written to a Zarr store on disk, larger
  than the memory cap (``resource.setrlimit(RLIMIT_AS)``) lets the whole-array route hold:
  ooc completes under the cap, the whole-array route fails with ``MemoryError``.

The test volume is the NMC electrode of ``../shared/data`` when present (objects: the NMC
particles, label 85; local thickness: the pores, label 0), else random balls.

Usage::

    .venv/bin/python benchmarks/measure.py                       # defaults below
    .venv/bin/python benchmarks/measure.py --big 384 --cap-mb 1200 --lt-big \
        --peers-python /tmp/measure-peers/bin/python

Prints a table: route, task, seconds, peak RSS (MiB), result summary, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NMC = ROOT / ".." / "shared" / "data" / "nmc_electrode" / "electrode.tiff"


# --------------------------------------------------------------------------------------
# child routes (run in a subprocess)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _route_ooc_objects(vol: str, phase: int, chunk: int) -> dict:
    import dask
    import dask.array as da

    from ooc.measure import label_components, object_table

    dask.config.set(scheduler="threads", num_workers=2)
    t = time.perf_counter()
    x = da.from_zarr(vol)
    if x.chunksize[0] != chunk:
        x = x.rechunk(chunk)
    lab, n = label_components(x == phase, connectivity=26)
    tab = object_table(lab, voxel_size=(1.0, 1.0, 1.0), unit="voxel")
    dt = time.perf_counter() - t
    return {
        "seconds": dt,
        "n": int(n),
        "volume_sum": int(tab["voxels"].sum()),
        "largest": int(tab["voxels"].max()) if len(tab) else 0,
    }


def _route_skimage_objects(vol: str, phase: int, chunk: int) -> dict:
    import numpy as np
    import scipy.ndimage as ndi
    import zarr
    from skimage.measure import regionprops_table

    t = time.perf_counter()
    im = zarr.open_array(vol, mode="r")[...]
    lab, n = ndi.label(im == phase, structure=np.ones((3, 3, 3), dtype=bool))
    del im
    props = regionprops_table(
        lab, properties=("label", "area", "centroid", "inertia_tensor_eigvals", "bbox")
    )
    dt = time.perf_counter() - t
    return {
        "seconds": dt,
        "n": int(n),
        "volume_sum": int(props["area"].sum()),
        "largest": int(props["area"].max()) if n else 0,
    }


def _route_ooc_ws(vol: str, phase: int, chunk: int) -> dict:
    import dask
    import dask.array as da

    from ooc.measure import object_table, separate_objects

    dask.config.set(scheduler="threads", num_workers=2)
    t = time.perf_counter()
    x = da.from_zarr(vol)
    if x.chunksize[0] != chunk:
        x = x.rechunk(chunk)
    lab, n = separate_objects(x == phase, voxel_size=(1.0, 1.0, 1.0))
    tab = object_table(lab, voxel_size=(1.0, 1.0, 1.0), unit="voxel")
    dt = time.perf_counter() - t
    return {"seconds": dt, "n": int(n), "volume_sum": int(tab["voxels"].sum())}


def _route_skimage_ws(vol: str, phase: int, chunk: int) -> dict:
    import numpy as np
    import scipy.ndimage as ndi
    import zarr
    from skimage.measure import regionprops_table
    from skimage.segmentation import watershed

    t = time.perf_counter()
    m = zarr.open_array(vol, mode="r")[...] == phase
    dist = ndi.distance_transform_edt(m)
    ball = np.add.outer(np.add.outer(*[np.arange(-3, 4) ** 2] * 2), np.arange(-3, 4) ** 2) <= 9
    peaks = dist == ndi.maximum_filter(dist, footprint=ball, mode="constant", cval=-np.inf)
    markers, n = ndi.label(peaks & (dist > 0), structure=np.ones((3, 3, 3), dtype=bool))
    lab = watershed(-dist, markers=markers, mask=m)
    del dist, markers, peaks
    # components without a marker become objects of their own (as ooc does)
    rest, k = ndi.label(m & (lab == 0))
    lab[rest > 0] = rest[rest > 0] + n
    n += k
    props = regionprops_table(
        lab, properties=("label", "area", "centroid", "inertia_tensor_eigvals", "bbox")
    )
    dt = time.perf_counter() - t
    return {"seconds": dt, "n": int(n), "volume_sum": int(props["area"].sum())}


def _route_ooc_lt(vol: str, phase: int, chunk: int) -> dict:
    import dask
    import dask.array as da

    from ooc.measure import local_thickness, thickness_distribution

    dask.config.set(scheduler="threads", num_workers=2)
    t = time.perf_counter()
    x = da.from_zarr(vol)
    if x.chunksize[0] != chunk:
        x = x.rechunk(chunk)
    lt, radii = local_thickness(x == phase, voxel_size=(1.0, 1.0, 1.0), return_radii=True)
    ds = thickness_distribution(lt, voxel_size=(1.0, 1.0, 1.0), unit="voxel", diameters=2 * radii)
    dt = time.perf_counter() - t
    return {
        "seconds": dt,
        "hist": {
            str(float(d) / 2): float(v)
            for d, v in zip(ds.diameter.values, ds.volume.values, strict=True)
        },
        "D50": float(ds.D50),
    }


def _hist_from_radius_map(lt) -> dict:
    import numpy as np

    v, c = np.unique(lt[lt > 0], return_counts=True)
    return {str(float(a)): float(b) for a, b in zip(v, c, strict=True)}


def _route_scipy_lt(vol: str, phase: int, chunk: int) -> dict:
    import numpy as np
    import scipy.ndimage as ndi
    import zarr

    from ooc.measure.thickness import local_thickness_kernel, thickness_radii

    t = time.perf_counter()
    m = zarr.open_array(vol, mode="r")[...] == phase
    dist = ndi.distance_transform_edt(m)
    lt = local_thickness_kernel(dist, thickness_radii(float(dist.max()), (1, 1, 1)), (1, 1, 1))
    dt = time.perf_counter() - t
    h = _hist_from_radius_map(lt)
    return {"seconds": dt, "hist": h, "D50": None, "check": float(np.sum(lt))}


def _route_porespy_lt(vol: str, phase: int, chunk: int) -> dict:
    import numpy as np
    import porespy as ps

    t = time.perf_counter()
    m = np.load(vol) == phase
    lt = ps.filters.local_thickness(m, method="dt")
    dt = time.perf_counter() - t
    return {"seconds": dt, "hist": _hist_from_radius_map(lt)}


ROUTES = {
    "ooc-objects": _route_ooc_objects,
    "skimage-objects": _route_skimage_objects,
    "ooc-ws": _route_ooc_ws,
    "skimage-ws": _route_skimage_ws,
    "ooc-lt": _route_ooc_lt,
    "scipy-lt": _route_scipy_lt,
    "porespy-lt": _route_porespy_lt,
}


def _child(args: argparse.Namespace) -> None:
    if args.child_cap_mb:
        cap = int(args.child_cap_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out: dict
    try:
        out = ROUTES[args.child](args.vol, args.phase, args.chunk)
        out["status"] = "ok"
    except MemoryError as e:
        out = {"status": "MemoryError", "where": repr(e)[:200]}
    except ImportError as e:
        out = {"status": f"not installed ({e.name})"}
    out["peak_mib"] = _peak_mib()
    try:
        with open("/proc/self/status") as f:
            vm = [ln for ln in f if ln.startswith("VmPeak")]
        out["vmpeak_mib"] = int(vm[0].split()[1]) / 1024.0
    except (OSError, IndexError):
        pass
    with open(args.result, "w") as f:
        json.dump(out, f)


# --------------------------------------------------------------------------------------
# parent


def _watch_rss(p: subprocess.Popen, cap_mb: int) -> bool:
    """Poll the child's resident memory every 20 ms; kill it past ``cap_mb``. True if killed."""
    import psutil

    try:
        proc = psutil.Process(p.pid)
        while p.poll() is None:
            rss = proc.memory_info().rss
            if rss > cap_mb * 1024 * 1024:
                p.kill()
                return True
            time.sleep(0.02)
    except psutil.NoSuchProcess:
        pass
    return False


def _run(
    route: str,
    vol: str,
    phase: int,
    chunk: int,
    cap_mb: int | None,
    python: str,
    cap_kind: str = "rss",
) -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NUMBA_NUM_THREADS="1",
        MALLOC_ARENA_MAX="2",
        PYTHONPATH=str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", ""),
    )
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        res = f.name
    cmd = [python, str(Path(__file__).resolve()), "--child", route, "--vol", vol]
    cmd += ["--phase", str(phase), "--chunk", str(chunk), "--result", res]
    if cap_mb and cap_kind == "as":
        cmd += ["--child-cap-mb", str(cap_mb)]
    t = time.perf_counter()
    killed = False
    with tempfile.TemporaryFile(mode="w+") as err:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        if cap_mb and cap_kind == "rss":
            killed = _watch_rss(p, cap_mb)
        p.wait()
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - t
    if killed:
        os.unlink(res)
        return {"status": f"killed: RSS > {cap_mb} MiB", "wall": wall, "peak_mib": float(cap_mb)}
    try:
        with open(res) as f:
            out = json.load(f)
    except (OSError, json.JSONDecodeError):
        tail = (stderr or "").strip().splitlines()[-1:] or ["no output"]
        out = {"status": f"failed (rc {p.returncode}): {tail[0][:60]}"}
    finally:
        if os.path.exists(res):
            os.unlink(res)
    out["wall"] = wall
    return out


def _write_zarr(arr, path: str, chunk: int) -> None:
    import zarr

    z = zarr.create_array(
        path, shape=arr.shape, chunks=(chunk,) * 3, dtype=arr.dtype, overwrite=True
    )
    z[...] = arr


def _make_big(path: str, size: int, chunk: int, cap_mb: int | None) -> float:
    """Generate the big volume lazily, block by block, straight into a Zarr store."""
    code = (
        "import resource,sys\n"
        f"cap={int(cap_mb or 0)}*1024*1024\n"
        "if cap: resource.setrlimit(resource.RLIMIT_AS,(cap,cap))\n"
        "import dask, dask.array as da, numpy as np\n"
        "from ooc.measure.testing import lazy_spheres, random_balls\n"
        "dask.config.set(scheduler='threads', num_workers=2)\n"
        f"n={size}; ch={chunk}\n"
        "c, r = random_balls((n, n, n), int(n**3 / 4000), (4.0, 10.0), seed=1)\n"
        "x = lazy_spheres((n, n, n), (ch, ch, ch), c, r, values=(0, 1))\n"
        f"da.to_zarr(x, {path!r}, overwrite=True, zarr_format=3)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)\n"
    )
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT / "src")
    p = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    return float(p.stdout.strip().splitlines()[-1])


def _fmt(r: dict) -> tuple[str, str]:
    if r.get("status") != "ok":
        return r.get("status", "?"), f"{r.get('peak_mib', float('nan')):.0f}"
    return f"{r['seconds']:.1f}", f"{r['peak_mib']:.0f}"


def _same_hist(a: dict, b: dict) -> str:
    if a.get("status") != "ok" or b.get("status") != "ok":
        return ""
    ha = {round(float(k), 6): v for k, v in a["hist"].items() if v}
    hb = {round(float(k), 6): v for k, v in b["hist"].items() if v}
    return "same" if ha == hb else "DIFFERENT"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", choices=sorted(ROUTES))
    ap.add_argument("--vol")
    ap.add_argument("--phase", type=int, default=1)
    ap.add_argument("--result")
    ap.add_argument("--child-cap-mb", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=192, help="synthetic volume side when no NMC file")
    ap.add_argument("--synthetic", action="store_true", help="random balls even with the NMC file")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument(
        "--big", type=int, default=512, help="side of the lazily generated volume (0: skip)"
    )
    ap.add_argument("--big-chunk", type=int, default=128)
    ap.add_argument(
        "--cap-mb", type=int, default=2000, help="memory cap of the big-volume routes (MiB)"
    )
    ap.add_argument(
        "--cap-kind",
        choices=("rss", "as"),
        default="rss",
        help="rss: the parent kills a route whose resident set passes the cap (psutil, 20 ms "
        "polls); as: resource.setrlimit(RLIMIT_AS) in the route (counts virtual memory, "
        "thread stacks and arenas included, so it needs a higher cap)",
    )
    ap.add_argument("--peers-python", default="/tmp/measure-peers/bin/python")
    ap.add_argument("--lt-big", action="store_true", help="local thickness on the big volume too")
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    import numpy as np

    tmp = tempfile.mkdtemp(prefix="ooc-bench-measure-")
    try:
        if NMC.exists() and not args.synthetic:
            import tifffile

            im = tifffile.imread(NMC)
            name, obj_phase, lt_phase = f"NMC electrode {im.shape[0]}^3", 85, 0
        else:
            from ooc.measure.testing import random_balls, spheres_mask

            n = args.size
            c, r = random_balls((n, n, n), int(n**3 / 4000), (4.0, 10.0), seed=0)
            im = spheres_mask((n, n, n), c, r).astype(np.uint8)
            name, obj_phase, lt_phase = f"random balls {n}^3", 1, 0
        vol = os.path.join(tmp, "vol.zarr")
        _write_zarr(im, vol, args.chunk)
        npy = os.path.join(tmp, "vol.npy")
        np.save(npy, im)
        rows = []
        py = sys.executable
        peers = args.peers_python if os.path.exists(args.peers_python) else None

        print(f"# volume: {name}, chunks {args.chunk}^3, 2 threads for ooc", flush=True)
        o = _run("ooc-objects", vol, obj_phase, args.chunk, None, py)
        s = _run("skimage-objects", vol, obj_phase, args.chunk, None, py)
        same = (
            "same"
            if o.get("n") == s.get("n") and o.get("volume_sum") == s.get("volume_sum")
            else "DIFFERENT"
        )
        rows += [
            ("ooc label_components(26)+object_table", name, *_fmt(o), f"n={o.get('n')}", same),
            (
                "scipy.ndimage.label+skimage regionprops_table",
                name,
                *_fmt(s),
                f"n={s.get('n')}",
                "",
            ),
        ]
        o = _run("ooc-ws", vol, obj_phase, args.chunk, None, py)
        s = _run("skimage-ws", vol, obj_phase, args.chunk, None, py)
        same = (
            "same"
            if o.get("n") == s.get("n") and o.get("volume_sum") == s.get("volume_sum")
            else "DIFFERENT"
        )
        rows += [
            ("ooc separate_objects+object_table", name, *_fmt(o), f"n={o.get('n')}", same),
            ("scipy EDT+skimage watershed+regionprops", name, *_fmt(s), f"n={s.get('n')}", ""),
        ]
        o = _run("ooc-lt", vol, lt_phase, args.chunk, None, py)
        w = _run("scipy-lt", vol, lt_phase, args.chunk, None, py)
        rows += [
            ("ooc local_thickness+distribution", name, *_fmt(o), f"D50={o.get('D50')}", ""),
            ("whole-array same kernel (scipy.ndimage)", name, *_fmt(w), "", _same_hist(o, w)),
        ]
        p = _run("porespy-lt", npy, lt_phase, args.chunk, None, peers or py)
        if peers is None and p.get("status", "").startswith("not installed"):
            p["status"] = "not installed"
        rows.append(("porespy local_thickness(method='dt')", name, *_fmt(p), "", _same_hist(o, p)))

        if args.big:
            big = os.path.join(tmp, "big.zarr")
            t = time.perf_counter()
            gen_cap = args.cap_mb if args.cap_kind == "as" else None
            gen_peak = _make_big(big, args.big, args.big_chunk, gen_cap)
            gen = time.perf_counter() - t
            bname = f"lazy balls {args.big}^3 ({args.cap_kind.upper()} cap {args.cap_mb} MiB)"
            print(
                f"# big volume ({args.big**3 / 2**20:.0f} MiB of uint8) written block by block to "
                f"Zarr in {gen:.1f} s, peak RSS {gen_peak:.0f} MiB",
                flush=True,
            )
            o = _run("ooc-objects", big, 1, args.big_chunk, args.cap_mb, py, args.cap_kind)
            s = _run("skimage-objects", big, 1, args.big_chunk, args.cap_mb, py, args.cap_kind)
            rows += [
                ("ooc label_components(26)+object_table", bname, *_fmt(o), f"n={o.get('n')}", ""),
                ("scipy.ndimage.label+skimage regionprops_table", bname, *_fmt(s), "", ""),
            ]
            if args.lt_big:
                o = _run("ooc-lt", big, 0, args.big_chunk, args.cap_mb, py, args.cap_kind)
                w = _run("scipy-lt", big, 0, args.big_chunk, args.cap_mb, py, args.cap_kind)
                rows += [
                    ("ooc local_thickness+distribution", bname, *_fmt(o), "", ""),
                    ("whole-array same kernel (scipy.ndimage)", bname, *_fmt(w), "", ""),
                ]

        hdr = ("route", "volume", "seconds", "peak MiB", "result", "agrees")
        widths = [max(len(str(r[i])) for r in [hdr, *rows]) for i in range(len(hdr))]
        line = " | ".join("-" * w for w in widths)
        print(" | ".join(h.ljust(w) for h, w in zip(hdr, widths, strict=True)))
        print(line)
        for r in rows:
            print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
        print(
            "\nseconds: compute after imports, including reading the volume; peak MiB: the "
            "subprocess's maximum resident set (interpreter and imports included)."
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
