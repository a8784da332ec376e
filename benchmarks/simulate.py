"""Benchmark: ooc.simulate beside TauFactor, PoreSpy, PuMA and lbmpy on the same images, same run.

Every solve runs in its own subprocess (fresh interpreter) so its time and memory are its own:
``peak MiB`` is the largest resident-set growth during the solve (sampled every 5 ms from
``/proc/self/statm``; the interpreter, imports and the input image are not counted), and
``ru_maxrss`` of the process is printed as well.

Sections

1. Tortuosity factor of the pore phase along axis 0 at equal accuracy: ooc
   (``rtol=1e-3`` on the inlet/outlet flux balance), PoreSpy ``tortuosity_fd`` (``ftol=1e-3``,
   the same flux-balance criterion, PyAMG inside) and TauFactor ``Solver(device="cpu")``
   (``conv_crit=1e-3``).  Each tau is compared with a tight ooc reference (``rtol=1e-6``).
   Images: the NMC electrode of ``../shared/data`` (when present), and seeded synthetic
   256³ and 384³ images (thresholded Gaussian-filtered noise, 45 % pore).
2. How ooc's time grows with the voxel count (64³ ... 384³) with the fitted exponent.
3. Permeability (Stokes, MAC + MINRES) on a 256³ synthetic sample: this version beside the
   previous implementation (``--previous-rev``, ``src/ooc/simulate/stokes.py`` of that git
   revision run on this version's kernels) on the same image at the same ``rtol``: time,
   iterations, peak memory and bytes per voxel; then a square duct (pressure drop, no-slip walls)
   against its exact series solution.
3b. Permeability beside peers on the same images with the same boundary conditions (every face
   periodic, a uniform body force along axis 0): NASA PuMA
   (finite-element Stokes, built from source; MINRES ``tol=1e-6``) and lbmpy (lattice
   Boltzmann D3Q19 TRT; stops when k changes by less than 1e-5 over 100 steps), ooc at
   ``rtol=1e-3``. Images: the square duct (``--duct``, against its exact answer) and synthetic
   images (``--peer-perm-sizes``, against ooc). Prints k, error, time, peak memory, the machine
   load and ooc's speed-up over the fastest peer.
4. ``--large``: a whole conduction solve (``--whole-size``, default 512³; 0 skips it) and a
   block-wise diffusivity map of a 1024³ volume (``--map-size``, blocks of ``--map-block``):
   by default the labels are first written to a Zarr store on disk block by block (one chunk
   per block) and the map reads them back with ``da.from_zarr``, so they are never whole in
   memory; ``--map-from generated`` makes the blocks inside the map's tasks instead. Prints
   the time and the process's peak memory.

Peers are optional: they are imported only in their subprocess, from ``--peers-python``
(default: this interpreter); rows say ``not installed`` when they do not import.
``benchmarks/install_peers.sh PUMA_SOURCE`` builds that interpreter (``/tmp/peers-venv``).

Usage::

    .venv/bin/python benchmarks/simulate.py                      # all but --large
    .venv/bin/python benchmarks/simulate.py --quick              # 64³/96³ smoke run
    benchmarks/install_peers.sh /tmp/peers-src/puma                # the peers' venv
    .venv/bin/python benchmarks/simulate.py --peers-python /tmp/peers-venv/bin/python --large
    # permeability peers only (PuMA and lbmpy), the duct and a 64³ synthetic image:
    .venv/bin/python benchmarks/simulate.py --sections 3 --perm-size 0 --peer-perm-sizes 64 \\
        --peers-python /tmp/peers-venv/bin/python
    # the 1024³ map from a Zarr store, without the whole solve:
    .venv/bin/python benchmarks/simulate.py --large --sections 4 --whole-size 0
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _harness import print_table

ROOT = Path(__file__).resolve().parents[1]
NMC = ROOT / ".." / "shared" / "data" / "nmc_electrode" / "electrode.tiff"

# --------------------------------------------------------------------------------------
# child side (runs in a subprocess; imports only what its route needs)


class _PeakRSS:
    """Sample the resident set size in a thread; ``peak - base`` is the growth during a solve."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self.page
        except OSError:  # not Linux: fall back to the high-water mark
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __enter__(self) -> _PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _child(spec: dict) -> dict:
    import numpy as np

    route = spec["route"]
    if spec.get("mem_cap_gb"):
        # a MemoryError in this process instead of the kernel's OOM killer on a shared machine
        cap = int(spec["mem_cap_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    module = {
        "taufactor": "taufactor",
        "porespy": "porespy",
        "puma_perm": "pumapy",
        "lbm_perm": "lbmpy",
    }.get(route, "ooc.simulate")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pumapy prints on import
            importlib.import_module(module)
    except Exception as e:  # a peer that does not import
        return {"error": f"not installed ({type(e).__name__})"}
    try:
        return _solve(spec, np)
    except MemoryError:
        return {"error": f"out of memory (cap {spec.get('mem_cap_gb')} GB)"}


def _solve(spec: dict, np: Any) -> dict:
    route = spec["route"]
    if route == "taufactor":
        import taufactor
    elif route == "porespy":
        import porespy
    elif route in ("puma_perm", "lbm_perm"):
        from peers import lbm, puma
    else:
        import ooc.simulate as osim
    im = np.load(spec["image"]) if spec.get("image") else None
    axis = spec.get("axis", 0)
    out: dict = {}
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        if route == "ooc_tau":
            r = osim.tortuosity(
                im, spec.get("pore", 0), direction=axis, rtol=spec["rtol"], dtype=spec["dtype"]
            )
            d = r.directions["zyx"[axis]]
            out = {
                "tau": d.tortuosity,
                "iterations": d.info.iterations,
                "converged": d.info.converged,
            }
        elif route == "taufactor":
            img = np.moveaxis(im == spec.get("pore", 0), axis, 0).astype(np.uint8)
            s = taufactor.Solver(img, device="cpu")
            s.solve(
                verbose=False, conv_crit=spec["rtol"], iter_limit=spec.get("iter_limit", 100000)
            )
            tau = float(np.asarray(s.tau).ravel()[0])
            out = {"tau": tau, "iterations": int(s.iter), "converged": bool(s.converged)}
        elif route == "porespy":
            res = porespy.simulations.tortuosity_fd(
                im == spec.get("pore", 0), axis=axis, ftol=spec["rtol"]
            )
            out = {
                "tau": float(res.tortuosity),
                "iterations": None,
                "converged": bool(getattr(res, "converged", True)),
            }
        elif route == "puma_perm":
            out = puma.permeability(
                im != spec.get("pore", 0),
                axis=axis,
                voxel_size=spec["voxel_size"],
                tol=spec["rtol"],
            )
        elif route == "lbm_perm":
            r = lbm.permeability(im != spec.get("pore", 0), axis=axis, tol=spec["rtol"])
            out = {
                "k_m2": r["k_voxel2"] * spec["voxel_size"] ** 2,  # lattice units: voxel edge = 1
                "iterations": r["steps"],
                "converged": r["converged"],
                "mlups": r["mlups"],  # lattice updates per second while stepping (no set-up)
            }
        elif route in ("ooc_perm", "ooc_perm_previous"):
            if route == "ooc_perm_previous":
                osim = _previous_stokes(spec["rev"])
            extra = {"drive": spec["drive"], "periodic": True} if spec.get("drive") else {}
            r = osim.permeability(
                im,
                pore_label=spec.get("pore", 0),
                voxel_size=spec["voxel_size"],
                direction=axis,
                rtol=spec["rtol"],
                **extra,
            )
            d = r.directions["zyx"[axis]]
            act = int(np.count_nonzero(im == spec.get("pore", 0)))
            out = {
                "k_m2": d.permeability_m2,
                "k_mD": d.permeability_mD,
                "iterations": d.info.iterations,
                "converged": d.info.converged,
                "unknowns": 4 * act,
            }
        elif route == "ooc_large_whole":
            n = spec["n"]
            vol = _synthetic(n, spec["seed"], spec["porosity"])
            mem.base = mem._rss()  # the generated image is input, not solver memory
            t0 = time.perf_counter()
            r = osim.tortuosity(vol, 0, direction=0, rtol=spec["rtol"])
            d = r.directions["z"]
            out = {
                "tau": d.tortuosity,
                "iterations": d.info.iterations,
                "converged": d.info.converged,
            }
        elif route in ("ooc_large_blocks", "ooc_large_store"):
            import dask
            import dask.array as da

            n, b = spec["n"], spec["block"]

            def gen(block_info=None):
                loc = block_info[None]["chunk-location"]
                return _block_labels(spec, loc, block_info[None]["chunk-shape"][0])

            if route == "ooc_large_blocks":
                vol = da.map_blocks(gen, chunks=((b,) * (n // b),) * 3, dtype=np.uint8)
            else:
                out["write_seconds"] = _write_label_store(spec)
                out["write_peak_mib"] = mem.growth_mib
                mem.base = mem.peak = mem._rss()  # the map's own growth from here on
                t0 = time.perf_counter()
                vol = da.from_zarr(spec["store"])
            with dask.config.set(scheduler="threads", num_workers=spec["workers"]):
                ds = osim.property_map(
                    vol,
                    block_shape=b,
                    voxel_size=1e-6,
                    properties=("diffusivity",),
                    direction="z",
                    rtol=spec["rtol"],
                )
            t = ds.tortuosity.values
            out.update(
                tau=float(np.median(t)),
                iterations=None,
                converged=bool(ds.diffusivity_converged.all()),
                blocks=int(t.size),
            )
        else:
            raise ValueError(route)
        out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = mem.growth_mib
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _block_labels(spec: dict, loc: tuple, edge: int) -> Any:
    """Labels of block ``loc`` (block indices) of a section-4 volume: seeded synthetic."""
    seed = spec["seed"] + 7919 * loc[0] + 104729 * loc[1] + 1299709 * loc[2]
    return _synthetic(edge, seed, spec["porosity"])


def _write_label_store(spec: dict) -> float:
    """Write the section-4 labels to a Zarr v3 store one block (= one chunk) at a time.

    Returns the seconds taken; at most one block of labels is in memory at once.
    """
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    n, b = spec["n"], spec["block"]
    t0 = time.perf_counter()
    arr = zarr.create_array(
        store=spec["store"],
        shape=(n, n, n),
        chunks=(b, b, b),
        dtype="uint8",
        compressors=[BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)],
    )
    for i in range(n // b):
        for j in range(n // b):
            for k in range(n // b):
                blk = _block_labels(spec, (i, j, k), b)
                arr[i * b : (i + 1) * b, j * b : (j + 1) * b, k * b : (k + 1) * b] = blk
    return time.perf_counter() - t0


def _previous_stokes(rev: str) -> Any:
    """``ooc.simulate.stokes`` as it was at git revision ``rev`` (imported from a temp file)."""
    import importlib.util

    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/ooc/simulate/stokes.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="ooc-prev-")) / "stokes_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("stokes_previous", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["stokes_previous"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _duct_exact(a: int) -> float:
    """Permeability (voxel²) of a square duct of ``a`` voxels inside a one-voxel wall frame."""
    s = sum(math.tanh(n * math.pi / 2) / n**5 for n in range(1, 400, 2))
    c = (1 - 192 / math.pi**5 * s) / 12  # mean velocity = c G a^2 / mu
    return a * a / (a + 2) ** 2 * c * a * a


def _synthetic(n: int, seed: int, porosity: float):
    """Seeded thresholded Gaussian-filtered noise: label 0 pore (``porosity``), 1 solid."""
    import numpy as np
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, n, n), dtype=np.float32)
    f = ndi.gaussian_filter(f, 2.5, mode="wrap")
    thr = np.quantile(f[:: max(1, n // 64)], porosity)
    return (f > thr).astype(np.uint8)


# --------------------------------------------------------------------------------------
# parent side


def _run(spec: dict, python: str, timeout: float) -> dict:
    env = dict(os.environ)
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [python, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f} s"}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"failed: {tail[0][:80]}"}


def _fmt(x: object, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument(
        "--peers-python", default=sys.executable, help="interpreter with taufactor/porespy"
    )
    ap.add_argument("--quick", action="store_true", help="small images only (smoke run)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--sizes", default="64,96,128,192,256,384", help="scaling sizes (edge, voxels)")
    ap.add_argument("--peer-sizes", default="256,384", help="synthetic images compared with peers")
    ap.add_argument(
        "--perm-size", type=int, default=256, help="section 3 versions' image (edge; 0 skips)"
    )
    ap.add_argument(
        "--previous-rev",
        default="1c9a5ae",
        help="git revision of the previous Stokes solver compared in section 3 ('' skips it)",
    )
    ap.add_argument("--duct", type=int, default=32, help="square duct width (voxels), section 3")
    ap.add_argument(
        "--peer-perm-sizes",
        default="256",
        help="synthetic images (edge) whose permeability is compared with PuMA and lbmpy",
    )
    ap.add_argument("--peer-timeout", type=float, default=900.0, help="seconds per peer solve")
    ap.add_argument("--perm-peers", default="puma,lbm", help="permeability peers run (3b)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess")
    ap.add_argument("--peer-mem-gb", type=float, default=12.0, help="address-space cap of peers")
    ap.add_argument("--json", help="also write all results to this JSON file")
    ap.add_argument("--large", action="store_true", help="whole solve + block-wise map (section 4)")
    ap.add_argument(
        "--whole-size", type=int, default=512, help="section 4 whole solve (edge; 0 skips it)"
    )
    ap.add_argument("--map-size", type=int, default=1024, help="section 4 block map (edge)")
    ap.add_argument("--map-block", type=int, default=256, help="section 4 block (edge)")
    ap.add_argument(
        "--map-from",
        choices=("store", "generated"),
        default="store",
        help="section 4 map's labels: written to a Zarr store first and read back block by "
        "block, or generated block by block in the map's tasks",
    )
    ap.add_argument("--sections", default="1,2,3", help="sections to run (4 needs --large too)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    import numpy as np

    if args.quick:
        args.sizes, args.peer_sizes, args.perm_size, args.duct = "48,64,96", "64", 48, 8
        args.peer_perm_sizes = "24"
    tmp = Path(tempfile.mkdtemp(prefix="ooc-bench-sim-"))
    py = sys.executable
    report: dict[str, Any] = {"tortuosity": [], "scaling": [], "permeability": None, "large": []}
    print(f"# ooc.simulate benchmark  (cpus: {os.cpu_count()}, peers: {args.peers_python})\n")

    sections = {int(v) for v in args.sections.split(",") if v}
    if args.large:
        sections.add(4)

    # ---- 1. tortuosity against peers ------------------------------------------------
    images: list[tuple[str, Path]] = []
    if 1 not in sections:
        args.peer_sizes = ""
    elif NMC.is_file() and not args.quick:
        import tifffile

        p = tmp / "nmc.npy"
        np.save(p, tifffile.imread(NMC))
        images.append(("NMC electrode 256³", p))
    for n in (int(s) for s in args.peer_sizes.split(",") if s):
        p = tmp / f"syn{n}.npy"
        np.save(p, _synthetic(n, 42, 0.45))
        images.append((f"synthetic {n}³", p))
    rows = []
    for name, path in images:
        ref = _run(
            {"route": "ooc_tau", "image": str(path), "rtol": 1e-6, "dtype": "float64"},
            py,
            args.timeout,
        )
        tau_ref = ref.get("tau")
        results = [
            (
                f"ooc (rtol {rt:g})",
                _run(
                    {"route": "ooc_tau", "image": str(path), "rtol": rt, "dtype": "float32"},
                    py,
                    args.timeout,
                ),
            )
            for rt in (1e-3, 1e-4)
        ]
        for peer in ("taufactor", "porespy"):
            if args.no_peers:
                results.append((peer, {"error": "skipped"}))
            else:
                results.append(
                    (
                        peer,
                        _run(
                            {
                                "route": peer,
                                "image": str(path),
                                "rtol": 1e-3,
                                "mem_cap_gb": args.peer_mem_gb,
                            },
                            args.peers_python,
                            args.timeout,
                        ),
                    )
                )
        t_ooc = results[1][1].get("seconds")  # the ratio is to ooc at rtol 1e-4
        report["tortuosity"].append({"image": name, "tau_ref": tau_ref, "results": dict(results)})
        for tool, r in results:
            if "error" in r:
                rows.append([name, tool, r["error"], "-", "-", "-", "-", "-", "-"])
                continue
            err = abs(r["tau"] / tau_ref - 1) if tau_ref and math.isfinite(r["tau"]) else None
            ratio = r["seconds"] / t_ooc if t_ooc else None
            rows.append(
                [
                    name,
                    tool,
                    _fmt(r["tau"], ".4f"),
                    _fmt(err, ".1e"),
                    _fmt(r["seconds"], ".1f"),
                    _fmt(ratio, ".1f") + "x" if ratio else "-",
                    _fmt(r.get("iterations")),
                    _fmt(r["peak_mib"], ".0f"),
                    _fmt(r["maxrss_mib"], ".0f"),
                ]
            )
        print(
            f"  reference tau of {name} (ooc, rtol 1e-6, float64): {_fmt(tau_ref, '.5f')}",
            flush=True,
        )
    if 1 in sections:
        print(
            "\n## 1. Tortuosity factor, pore phase, axis 0, at equal or better accuracy "
            "(|err| against a tight reference; time ratio against ooc at rtol 1e-4)\n"
        )
        print_table(
            rows,
            [
                "image",
                "tool",
                "tau",
                "|err| vs ref",
                "seconds",
                "time / ooc",
                "iterations",
                "peak MiB",
                "maxrss MiB",
            ],
        )

    # ---- 2. scaling -------------------------------------------------------------------
    rows, pts = [], []
    for n in (int(v) for v in args.sizes.split(",") if v and 2 in sections):
        p = tmp / f"scale{n}.npy"
        np.save(p, _synthetic(n, 7, 0.45))
        r = _run(
            {"route": "ooc_tau", "image": str(p), "rtol": 1e-3, "dtype": "float32"},
            py,
            args.timeout,
        )
        p.unlink()
        if "error" in r:
            rows.append([f"{n}³", r["error"], "-", "-", "-", "-"])
            continue
        nv = n**3
        pts.append((nv, r["seconds"]))
        report["scaling"].append({"n": n, **r})
        rows.append(
            [
                f"{n}³",
                _fmt(r["seconds"], ".2f"),
                _fmt(r["iterations"]),
                _fmt(r["seconds"] / nv * 1e9, ".0f"),
                _fmt(r["peak_mib"], ".0f"),
                _fmt(r["peak_mib"] * 2**20 / nv, ".0f"),
            ]
        )
    if 2 in sections:
        print("## 2. ooc tortuosity: time against voxel count (synthetic, 45 % pore, rtol 1e-3)\n")
        print_table(
            rows, ["size", "seconds", "iterations", "ns / voxel", "peak MiB", "bytes / voxel"]
        )
    if len(pts) >= 3:
        x = np.log([p[0] for p in pts])
        y = np.log([p[1] for p in pts])
        big = x >= np.log(128**3) if (x >= np.log(128**3)).sum() >= 2 else np.ones_like(x, bool)
        slope = np.polyfit(x[big], y[big], 1)[0]
        used = ", ".join(f"{round(math.exp(v / 3))}³" for v in x[big])
        print(f"  time ~ voxels^{slope:.2f} (least-squares fit over {used}; 1.00 = linear)\n")
        report["scaling_exponent"] = float(slope)

    # ---- 3. permeability ----------------------------------------------------------------
    if 3 in sections:
        _permeability_section(args, tmp, py, report)
        _permeability_peers(args, tmp, py, report)

    # ---- 4. large volumes -----------------------------------------------------------------
    if 4 in sections:
        _large_section(args, py, report)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


def _permeability_versions(args: Any, tmp: Path, py: str, report: dict) -> None:
    """Section 3: this version beside the previous one on the synthetic ``--perm-size`` image."""
    import numpy as np

    n = args.perm_size
    p = tmp / f"perm{n}.npy"
    np.save(p, _synthetic(n, 11, 0.45))
    base = {"image": str(p), "rtol": 1e-3, "voxel_size": 1e-6}
    runs = [("ooc (this version)", _run({"route": "ooc_perm", **base}, py, args.timeout))]
    if args.previous_rev:
        spec = {"route": "ooc_perm_previous", "rev": args.previous_rev, **base}
        runs.append((f"ooc (previous, {args.previous_rev})", _run(spec, py, args.timeout)))
    print(
        f"## 3. Permeability (Stokes, MAC + MINRES/multigrid), synthetic {n}³, 45 % pore, "
        "voxel 1 µm, rtol 1e-3\n"
    )
    report["permeability"] = {"n": n, "runs": dict(runs)}
    k_now = runs[0][1].get("k_m2")
    rows = []
    for name, r in runs:
        if "error" in r:
            rows.append([name, r["error"], *["-"] * 7])
            continue
        ups = r["unknowns"] * r["iterations"] / r["seconds"]
        rows.append(
            [
                name,
                _fmt(r["k_m2"], ".5g"),
                _fmt(abs(r["k_m2"] / k_now - 1), ".1e") if k_now else "-",
                _fmt(r["seconds"], ".1f"),
                _fmt(r["iterations"]),
                _fmt(ups / 1e6, ".2f"),
                _fmt(r["peak_mib"], ".0f"),
                _fmt(r["peak_mib"] * 2**20 / n**3, ".0f"),
                str(r["converged"]),
            ]
        )
    print_table(
        rows,
        [
            "solver",
            "k (m²)",
            "|k / k_now - 1|",
            "seconds",
            "iterations",
            "M unknown-updates/s",
            "peak MiB",
            "bytes / voxel",
            "converged",
        ],
    )


def _permeability_section(args: Any, tmp: Path, py: str, report: dict) -> None:
    import numpy as np

    if args.perm_size:
        _permeability_versions(args, tmp, py, report)
    # a square duct along z: the exact (series) answer
    a = args.duct
    im = np.ones((2 * a, a + 2, a + 2), np.uint8)
    im[:, 1:-1, 1:-1] = 0
    pd = tmp / f"duct{a}.npy"
    np.save(pd, im)
    r = _run(
        {"route": "ooc_perm", "image": str(pd), "rtol": 1e-6, "voxel_size": 1e-6}, py, args.timeout
    )
    exact = _duct_exact(a)
    report["duct"] = {"a": a, "exact_voxel2": exact, **r}
    if "error" in r:
        print(f"  square duct {a}²: {r['error']}\n")
    else:
        k_vox = r["k_m2"] / 1e-12
        print(
            f"  square duct {a}² x {2 * a} (rtol 1e-6): k = {k_vox:.6g} voxel², exact "
            f"{exact:.6g}, error {abs(k_vox / exact - 1):.1e} (second order in 1/a), "
            f"{r['seconds']:.2f} s, {r['iterations']} iterations\n"
        )


def _permeability_peers(args: Any, tmp: Path, py: str, report: dict) -> None:
    """Section 3b: ooc beside PuMA (finite elements) and lbmpy (lattice Boltzmann).

    Every tool sees the same image with the same boundary conditions (all faces periodic, a
    uniform body force along axis 0, no-slip solid voxels) and stops at its stated criterion.
    """
    import numpy as np

    a = args.duct
    duct = np.ones((2 * a, a + 2, a + 2), np.uint8)
    duct[:, 1:-1, 1:-1] = 0
    images = [(f"square duct {a}² x {2 * a}", duct, _duct_exact(a))]
    for n in (int(v) for v in args.peer_perm_sizes.split(",") if v):
        images.append((f"synthetic {n}³", _synthetic(n, 11, 0.45), None))
    tools = [
        ("ooc", "ooc_perm", 1e-3, "MINRES rtol 1e-3", py),
        ("PuMA (FE)", "puma_perm", 1e-6, "MINRES tol 1e-6", args.peers_python),
        ("lbmpy (LBM)", "lbm_perm", 1e-5, "|dk/k| < 1e-5 per 100 steps", args.peers_python),
    ]
    rows, speedups = [], []
    report["permeability_peers"] = []
    for name, im, exact in images:
        path = tmp / "peer_perm.npy"
        np.save(path, im)
        results = []
        for tool, route, tol, criterion, python in tools:
            spec = {"route": route, "image": str(path), "rtol": tol, "voxel_size": 1e-6}
            if route == "ooc_perm":
                spec["drive"] = "body_force"  # the peers' boundary conditions
                r = _run(spec, python, args.timeout)
            elif args.no_peers or route.split("_")[0] not in args.perm_peers.split(","):
                r = {"error": "skipped"}
            else:
                spec["mem_cap_gb"] = args.peer_mem_gb
                r = _run(spec, python, args.peer_timeout)
            r["load"] = os.getloadavg()[0]
            results.append((tool, criterion, r))
        path.unlink()
        k_ref = exact * 1e-12 if exact is not None else results[0][2].get("k_m2")
        report["permeability_peers"].append(
            {"image": name, "k_exact_m2": exact and exact * 1e-12, "results": results}
        )
        for tool, criterion, r in results:
            if "error" in r:
                rows.append([name, tool, criterion, r["error"], *["-"] * 5, _fmt(r["load"], ".1f")])
                continue
            rows.append(
                [
                    name,
                    tool,
                    criterion,
                    _fmt(r["k_m2"], ".5g"),
                    _fmt(abs(r["k_m2"] / k_ref - 1), ".1e") if k_ref else "-",
                    _fmt(r["seconds"], ".1f"),
                    _fmt(r.get("iterations")),
                    _fmt(r["peak_mib"], ".0f"),
                    _fmt(r["peak_mib"] * 2**20 / im.size, ".0f"),
                    _fmt(r["load"], ".1f"),
                ]
            )
        t_ooc = results[0][2].get("seconds")
        done = [(r["seconds"], tool) for tool, _, r in results[1:] if "seconds" in r]
        late = [tool for tool, _, r in results[1:] if r.get("error", "").startswith("timeout")]
        if t_ooc and done:
            t, tool = min(done)
            speedups.append(f"  {name}: ooc {t / t_ooc:.1f}x faster than the fastest peer ({tool})")
        elif t_ooc and late:
            speedups.append(
                f"  {name}: ooc > {args.peer_timeout / t_ooc:.0f}x faster (peers "
                f"{', '.join(late)} ran past {args.peer_timeout:.0f} s)"
            )
    print(
        "## 3b. Permeability beside peers, same images, all faces periodic, body force along "
        "axis 0, voxel 1 µm (error against the exact answer for the duct, against ooc otherwise)\n"
    )
    print_table(
        rows,
        [
            "image",
            "tool",
            "criterion",
            "k (m²)",
            "|k / k_ref - 1|",
            "seconds",
            "iterations",
            "peak MiB",
            "bytes / voxel",
            "load",
        ],
    )
    print("\n".join(speedups) + "\n")


def _large_section(args: Any, py: str, report: dict) -> None:
    import shutil

    rows = []
    if args.whole_size:
        spec = {"route": "ooc_large_whole", "n": args.whole_size, "seed": 3}
        r = _run({**spec, "porosity": 0.45, "rtol": 1e-3}, py, args.timeout)
        report["large"].append({"route": f"{args.whole_size} whole", **r})
        rows.append(
            [
                f"{args.whole_size}³ whole solve",
                *(
                    [r["error"]]
                    if "error" in r
                    else [
                        _fmt(r["tau"], ".4f"),
                        _fmt(r["seconds"], ".0f"),
                        _fmt(r["iterations"]),
                        _fmt(r["peak_mib"], ".0f"),
                        _fmt(r["maxrss_mib"], ".0f"),
                    ]
                ),
            ]
        )
    store = Path(tempfile.mkdtemp(prefix="ooc-bench-labels-")) / "labels.zarr"
    route = {"store": "ooc_large_store", "generated": "ooc_large_blocks"}[args.map_from]
    spec = {"route": route, "n": args.map_size, "block": args.map_block, "seed": 5}
    spec.update(porosity=0.45, rtol=1e-3, workers=2, store=str(store))
    r = _run(spec, py, args.timeout)
    shutil.rmtree(store.parent, ignore_errors=True)
    r["load"] = os.getloadavg()[0]
    nb = max(1, args.map_size // args.map_block) ** 3
    report["large"].append({"route": f"{args.map_size} blockwise ({args.map_from})", **r})
    source = "labels streamed from a Zarr store" if route == "ooc_large_store" else "generated"
    rows.append(
        [
            f"{args.map_size}³ block-wise ({nb} x {args.map_block}³, {source})",
            *(
                [r["error"]]
                if "error" in r
                else [
                    _fmt(r["tau"], ".4f") + " (median)",
                    _fmt(r["seconds"], ".0f"),
                    "-",
                    _fmt(r["peak_mib"], ".0f"),
                    _fmt(r["maxrss_mib"], ".0f"),
                ]
            ),
        ]
    )
    print("## 4. Large volumes (tortuosity along z)\n")
    print_table(
        [row + ["-"] * (6 - len(row)) for row in rows],
        ["route", "tau", "seconds", "iterations", "peak MiB", "maxrss MiB"],
    )
    if "write_seconds" in r:
        print(
            f"  the store was written block by block first: {r['write_seconds']:.0f} s, "
            f"peak {r['write_peak_mib']:.0f} MiB; the map's peak MiB counts from its start, "
            f"maxrss covers both; load {r['load']:.1f}\n"
        )


if __name__ == "__main__":
    main()
