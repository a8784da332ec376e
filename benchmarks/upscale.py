"""Benchmark: multiscale upscaling (ooc.upscale) against the directly solved fine scale.

Sections

1. Two-scale consistency (``ooc.upscale.testing.two_scale_case``): a coarse region of
   ``--coarse``³ voxels whose matrix is a sub-resolution porous phase, rendered again at a voxel
   ``--ratio`` times smaller (the truth).  Per seed and property (``D_eff/D0`` along z, y, x;
   permeability along z), the direct fine solve beside two upscaled routes:

   - ``constant``: a finer scan of the matrix alone (``--finer``³ fine voxels, elsewhere in the
     material) solved whole; its properties become the matrix phase of the coarse solve.
   - ``per-voxel``: the finer scan's block map (blocks of one coarse voxel, ``ratio``³) gives
     a fitted relation ``D(phi)`` / ``k(phi)``; the coarse matrix voxels' porosity comes from their
     grey value (partial volume, ``--noise``), and the coarse solve takes the per-voxel field.

   Each row: the answer, its difference from the direct one, wall time and peak traced memory
   (``tracemalloc``: NumPy's allocations; the interpreter and imports are not counted).
2. How the difference changes with the scale ratio (``--ratios``) at a fixed coarse region.
3. Block upscaling (``--block-volume``³ synthetic two-phase volume, ``--block``³ blocks): the
   direct ``D_eff/D0`` beside a coarse solve over the block map without and with oversampling
   (``--margin``), with times and memory.

Usage::

    .venv/bin/python benchmarks/upscale.py --smoke            # seconds: tiny sizes
    .venv/bin/python benchmarks/upscale.py                    # 16³ -> 128³, 3 seeds, 128³ blocks
    .venv/bin/python benchmarks/upscale.py --coarse 32 --block-volume 512 --block 64   # full size
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

AXES = ("z", "y", "x")


def _measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB of traced allocations) of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        secs = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return out, secs, peak / 2**20


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(flush=True)


def _pct(a: float, b: float) -> str:
    return f"{100 * (a / b - 1):+.1f}%" if b > 0 else "-"


def two_scale_rows(
    seed: int, coarse: int, ratio: int, finer: int, noise: float, props: list[str]
) -> list[dict[str, Any]]:
    """Direct and upscaled answers of one two-scale case (see the module docstring)."""
    from ooc.simulate import conductivity, permeability, property_map, tortuosity
    from ooc.upscale import fit_relations, from_results, grey_levels, grey_porosity
    from ooc.upscale.testing import finer_scan, two_scale_case

    case = two_scale_case(seed, coarse, ratio=ratio, grey=True, noise=noise, macro_fraction=0.05)
    scan = finer_scan(case, finer)
    fv, cv = case.fine_voxel_m, case.coarse_voxel_m
    lab = case.coarse_labels
    if (lab == 0).any() and (lab == 1).any():
        levels = grey_levels(case.grey, lab, pore_label=0, solid_label=1, erode=1)
    else:  # the region holds no resolved pore or grain: the imaging model's levels
        from ooc.upscale import GreyLevels

        levels = GreyLevels(14_000.0, 44_000.0, 0.0, 0.0, 0, 0)
    phi = grey_porosity(case.grey, lab, levels, phase=2)
    scan_labels = (~scan).astype(np.uint8)  # 0 pore, 1 solid
    rows = []
    if "diffusivity" in props:
        direct, t_d, m_d = _measure(
            lambda: tortuosity(case.fine_pore, direction=AXES).relative_diffusivity
        )

        def constant() -> dict[str, float]:
            p = from_results(diffusion=tortuosity(scan, direction=AXES))
            values = {0: 1.0, 1: 0.0, 2: p.value("relative_diffusivity")}
            return conductivity(lab, values, direction=AXES, reference=1.0).relative

        def per_voxel() -> dict[str, float]:
            bm = property_map(
                scan_labels, block_shape=ratio, voxel_size=fv, properties=("diffusivity",)
            )
            rel = fit_relations(bm, "relative_diffusivity")[0]
            field = rel(phi).astype(np.float32)
            return conductivity(
                lab, {0: 1.0, 1: 0.0, 2: field}, direction=AXES, reference=1.0
            ).relative

        for name, fn in (("constant", constant), ("per-voxel", per_voxel)):
            got, t, m = _measure(fn)
            rows.append(
                {
                    "seed": seed,
                    "ratio": ratio,
                    "property": "D_eff/D0",
                    "route": name,
                    "direct": direct,
                    "upscaled": got,
                    "t_direct": t_d,
                    "m_direct": m_d,
                    "t": t,
                    "m": m,
                }
            )
    if "permeability" in props:
        direct, t_d, m_d = _measure(
            lambda: permeability(case.fine_pore, voxel_size=fv, direction="z", rtol=1e-3).k_m2
        )

        def constant_k() -> dict[str, float]:
            p = from_results(flow=permeability(scan, voxel_size=fv, direction=AXES, rtol=1e-3))
            k = p.value("permeability")
            return permeability(
                lab, voxel_size=cv, porous_phases={2: k}, direction="z", rtol=1e-3
            ).k_m2

        def per_voxel_k() -> dict[str, float]:
            bm = property_map(
                scan_labels, block_shape=ratio, voxel_size=fv, properties=("permeability",)
            )
            rel = fit_relations(bm, "permeability")[0]
            return permeability(
                lab, voxel_size=cv, porous_phases={2: rel(phi)}, direction="z", rtol=1e-3
            ).k_m2

        for name, fn in (("constant", constant_k), ("per-voxel", per_voxel_k)):
            got, t, m = _measure(fn)
            rows.append(
                {
                    "seed": seed,
                    "ratio": ratio,
                    "property": "k_m2",
                    "route": name,
                    "direct": direct,
                    "upscaled": got,
                    "t_direct": t_d,
                    "m_direct": m_d,
                    "t": t,
                    "m": m,
                }
            )
    return rows


def _print_two_scale(rows: list[dict[str, Any]]) -> None:
    out = []
    for r in rows:
        dirs = list(r["direct"])
        out.append(
            [
                str(r["seed"]),
                str(r["ratio"]),
                r["property"],
                r["route"],
                " ".join(f"{r['direct'][d]:.4g}" for d in dirs),
                " ".join(f"{r['upscaled'][d]:.4g}" for d in dirs),
                " ".join(_pct(r["upscaled"][d], r["direct"][d]) for d in dirs),
                f"{r['t_direct']:.1f}",
                f"{r['t']:.1f}",
                f"{r['m_direct']:.0f}",
                f"{r['m']:.0f}",
            ]
        )
    _table(
        out,
        [
            "seed",
            "ratio",
            "property",
            "route",
            "direct (z y x)",
            "upscaled",
            "difference",
            "direct s",
            "upscaled s",
            "direct MiB",
            "upscaled MiB",
        ],
    )


def block_rows(n: int, block: int, margin: int, seed: int) -> list[list[str]]:
    """Direct D_eff/D0 of an n³ two-phase volume against block upscaling with/without margin."""
    from scipy import ndimage

    from ooc.simulate import property_map, tortuosity
    from ooc.upscale import upscale_blocks

    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), 2.0)
    z = np.linspace(-1.0, 1.0, n)
    trend = 0.3 * float(f.std()) * np.sin(3 * z)[:, None, None] * np.cos(2 * z)[None, :, None]
    labels = (f < np.quantile(f, 0.5) + trend).astype(np.uint8)  # 0: pore
    del f
    direct, t_d, m_d = _measure(lambda: tortuosity(labels, 0, direction=AXES).relative_diffusivity)
    rows = [
        ["direct", "-"] + [f"{direct[d]:.4f}" for d in AXES] + ["-", f"{t_d:.1f}", f"{m_d:.0f}"]
    ]
    for mg in (0, margin):

        def route(mg: int = mg) -> dict[str, float]:
            bm = property_map(
                labels,
                block_shape=block,
                voxel_size=1e-6,
                properties=("diffusivity",),
                margin=mg,
                rtol=1e-4,
            )
            return upscale_blocks(bm, "relative_diffusivity").effective

        got, t, m = _measure(route)
        worst = max(abs(got[d] / direct[d] - 1) for d in AXES)
        rows.append(
            [f"blocks {block}³", str(mg)]
            + [f"{got[d]:.4f} ({_pct(got[d], direct[d])})" for d in AXES]
            + [f"{100 * worst:.1f}%", f"{t:.1f}", f"{m:.0f}"]
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one seed (seconds)")
    ap.add_argument("--coarse", type=int, default=16, help="coarse region edge, voxels")
    ap.add_argument("--ratio", type=int, default=8, help="scale ratio of section 1")
    ap.add_argument("--finer", type=int, default=96, help="finer scan edge, fine voxels")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--noise", type=float, default=0.1, help="grey noise / pore-solid contrast")
    ap.add_argument("--properties", default="diffusivity,permeability")
    ap.add_argument("--ratios", default="4,8", help="scale ratios of section 2 (seed 0)")
    ap.add_argument("--block-volume", type=int, default=128)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--margin", type=int, default=16)
    ap.add_argument("--sections", default="1,2,3")
    args = ap.parse_args()
    if args.smoke:
        args.coarse, args.finer, args.seeds, args.ratios = 4, 16, "0", "4"
        args.block_volume, args.block, args.margin = 32, 16, 8
    props = [p for p in args.properties.split(",") if p]
    sections = {int(s) for s in args.sections.split(",") if s}
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print(
        f"# ooc.upscale benchmark (coarse {args.coarse}³, ratio {args.ratio}, finer scan "
        f"{args.finer}³, noise {args.noise})\n",
        flush=True,
    )
    if 1 in sections:
        print(
            f"## 1. two-scale consistency: {args.coarse}³ coarse -> "
            f"{args.coarse * args.ratio}³ fine\n"
        )
        rows = []
        for s in seeds:
            rows += two_scale_rows(s, args.coarse, args.ratio, args.finer, args.noise, props)
        _print_two_scale(rows)
    if 2 in sections:
        print(f"## 2. difference vs scale ratio (seed {seeds[0]}, coarse {args.coarse}³)\n")
        rows = []
        for r in (int(v) for v in args.ratios.split(",") if v):
            rows += two_scale_rows(seeds[0], args.coarse, r, args.finer, args.noise, props)
        _print_two_scale(rows)
    if 3 in sections:
        print(
            f"## 3. block upscaling: {args.block_volume}³ volume, {args.block}³ blocks, "
            f"margin {args.margin}\n"
        )
        _table(
            block_rows(args.block_volume, args.block, args.margin, seeds[0]),
            ["route", "margin", "D z", "D y", "D x", "worst", "seconds", "peak MiB"],
        )


if __name__ == "__main__":
    main()
