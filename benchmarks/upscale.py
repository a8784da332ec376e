"""Benchmark: multiscale upscaling (ooc.upscale) against the directly solved fine scale.

Every route runs in its own process (``_harness.run_measured``: wall time and the peak resident
memory of the process, sampled every 50 ms).  ``MiB`` is that peak above a baseline process that
imports the same modules and loads the same input, so it is the route's own memory.

Sections

1. Two-scale consistency (``ooc.upscale.testing.two_scale_case``): a coarse region of
   ``--coarse``³ voxels whose matrix is a sub-resolution porous phase, rendered again at a voxel
   ``--ratio`` times smaller (the truth).  Per seed and property (``D_eff/D0`` along z, y, x;
   permeability along z), the direct fine solve beside two upscaled routes:

   - ``constant``: a finer scan of the matrix alone (``--finer``³ fine voxels, elsewhere in the
     material) solved whole; its properties become the matrix phase of the coarse solve.
   - ``per-voxel``: the block map (blocks of one coarse voxel, ``ratio``³) of the finer scan's
     first ``--map-size``³ voxels gives a fitted relation ``D(phi)`` / ``k(phi)``; the coarse
     matrix voxels' porosity comes from their grey value (partial volume, noise ``--noise`` of
     the pore-solid contrast; its spread removed, ``shrink_porosity``), and the coarse solve
     takes the per-voxel field.  The relation's level is set so that the map's own blocks,
     solved as the coarse grid is, give the mapped part's whole value (``calibrate_relation``;
     the mapped part's, not the whole finer scan's: where the matrix varies in space the rest
     of the finer scan is another material).

   ``--field LOW,HIGH,LENGTH``: the matrix's micro-pore fraction varies in space (a smooth
   random field between LOW and HIGH, lattice LENGTH coarse voxels; ``ooc.synth.material.
   VariedMaterial``), the same at both scales; section 4 then also reports the grey porosity of
   the matrix voxels against their true sub-resolution porosity (mean error, RMS, correlation).

   Each upscaled route is run with its coarse solve on the coarse grid (``/1``) and on a grid
   subdivided ``--subdivide`` times with the phase interfaces reconstructed
   (``ooc.upscale.refine_labels``; the per-voxel field then takes the porosity of each voxel's
   matrix part, ``part_porosity``, after the noise spread is removed, ``shrink_porosity``).

2. How the difference changes with the scale ratio (``--ratios``, first seed).
3. Block upscaling (``--block-volume``³ synthetic two-phase volume, ``--block``³ blocks): the
   direct ``D_eff/D0`` (the reference, rtol 1e-4) and the direct solve loosened to the blocks'
   tolerance beside a coarse solve over the block map without and with oversampling
   (``--margin``, one or more: ``4,8``).  The block solves run at ``--block-rtol`` (1e-2): a
   block's answer carries its closed sides' error (~1 %), and the tolerance moves the upscaled
   answer by < 0.1 % (512³: the same worst differences at 1e-4 and 1e-2).  512³ in 64³ blocks
   (2 cores, load 2): direct 195 s / 5.5 GiB; direct at 1e-2 108 s (0.55 of it, +0.7 %);
   blocks 86 s (0.44, -1.3 %), margin 4 135 s (0.69, -0.9 %), margin 8 150 s (0.77, -0.4 %),
   0.2-0.4 GiB.
4. Accuracy only (no timing, one process per seed, every solve done once): section 1's
   differences for every seed, with the finer scan's ``D_eff/D0`` closed-sided and periodic.

Usage::

    .venv/bin/python benchmarks/upscale.py --smoke            # tiny sizes, sections 1 and 3
    .venv/bin/python benchmarks/upscale.py                    # 16³ -> 128³, 3 seeds, 128³ blocks
    .venv/bin/python benchmarks/upscale.py --coarse 32 --block-volume 512 --block 64   # full size
    # full size in pieces of under 10 minutes each (2 cores):
    .venv/bin/python benchmarks/upscale.py --sections 4 --coarse 32 --seeds 0 --properties diffusivity
    # the same where the matrix's porosity varies in space (per-voxel against one constant)
    .venv/bin/python benchmarks/upscale.py --sections 4 --coarse 32 --finer 128 --map-size 64 \
        --seeds 0 --properties diffusivity --subdivide 4 --field 0.4,0.85,16
    .venv/bin/python benchmarks/upscale.py --sections 3 --block-volume 512 --block 64 --block-routes direct
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _harness import print_table, run_measured

AXES = ("z", "y", "x")
#: grey levels of the imaging model of two_scale_case (used when a region lacks pore or grain)
PORE_GREY, SOLID_GREY = 14_000.0, 44_000.0


def _levels(grey: np.ndarray, lab: np.ndarray, noise: float) -> Any:
    """Grey levels from the segmentation; the imaging model's where a label is missing."""
    from ooc.upscale import GreyLevels, grey_levels

    if (lab == 0).any() and (lab == 1).any():
        return grey_levels(grey, lab, pore_label=0, solid_label=1, erode=0)
    sigma = noise * (SOLID_GREY - PORE_GREY)
    return GreyLevels(PORE_GREY, SOLID_GREY, sigma, sigma, 0, 0)


# --------------------------------------------------------------------------------------
# child side: one route per process


def _child(spec: dict[str, Any]) -> dict[str, float]:
    from ooc.simulate import conductivity, permeability, property_map, tortuosity
    from ooc.upscale import (
        calibrate_relation,
        fit_relations,
        from_results,
        per_voxel_property,
        refine_labels,
        upscale_blocks,
    )

    d = dict(np.load(spec["npz"]))
    route = spec["route"]
    if route == "baseline":
        return {}
    if route == "block-direct":
        return tortuosity(d["labels"], 0, direction=AXES, rtol=spec["rtol"]).relative_diffusivity
    if route == "block-map":
        bm = property_map(
            d["labels"],
            block_shape=spec["block"],
            voxel_size=1e-6,
            properties=("diffusivity",),
            margin=spec["margin"],
            rtol=spec["rtol"],
        )
        return upscale_blocks(bm, "relative_diffusivity").effective
    fv, ratio = float(d["fine_voxel_m"]), int(d["ratio"])
    lab, scan = d["coarse_labels"], d["scan"]
    diffusion = spec["property"] == "diffusivity"
    if route == "direct":
        if diffusion:
            return tortuosity(d["fine_pore"], direction=AXES).relative_diffusivity
        return permeability(d["fine_pore"], voxel_size=fv, direction="z", rtol=1e-3).k_m2
    # the coarse solve on a grid `subdivide` times finer, interfaces reconstructed
    sub = int(spec.get("subdivide", 1))
    voxel = fv * ratio / sub
    if route == "constant":
        grid = refine_labels(lab, sub)
        if diffusion:
            p = from_results(diffusion=tortuosity(scan, direction=AXES))
            values = {0: 1.0, 1: 0.0, 2: p.value("relative_diffusivity")}
            return conductivity(grid, values, direction=AXES, reference=1.0).relative
        p = from_results(flow=permeability(scan, voxel_size=fv, direction=AXES, rtol=1e-3))
        return permeability(
            grid,
            voxel_size=voxel,
            porous_phases={2: p.value("permeability")},
            direction="z",
            rtol=1e-3,
        ).k_m2
    # per-voxel: grey levels from the segmentation, the relation fitted on the map of the
    # finer scan's first map_size³ voxels and calibrated on that part's own whole solve (where
    # the matrix varies in space, the rest of the finer scan is another material)
    prop = "diffusivity" if diffusion else "permeability"
    m = int(spec.get("map_size") or scan.shape[0])
    part = scan[:m, :m, :m]
    bm = property_map(
        (~part).astype(np.uint8), block_shape=ratio, voxel_size=fv, properties=(prop,)
    )
    if diffusion:
        whole = tortuosity(part, direction=AXES).relative_diffusivity
    else:
        whole = permeability(part, voxel_size=fv, direction=AXES, rtol=1e-3).k_m2
    quantity = "relative_diffusivity" if diffusion else "permeability"
    relation = calibrate_relation(fit_relations(bm, quantity)[0], bm, whole, subdivide=sub)
    pv = per_voxel_property(
        d["grey"],
        lab,
        phase=2,
        levels=_levels(d["grey"], lab, float(d["noise"])),
        relation=relation,
        subdivide=sub,
    )
    if diffusion:
        return conductivity(
            pv.labels, {0: 1.0, 1: 0.0, 2: pv.values}, direction=AXES, reference=1.0
        ).relative
    return permeability(
        pv.labels, voxel_size=voxel, porous_phases={2: pv.values}, direction="z", rtol=1e-3
    ).k_m2


# --------------------------------------------------------------------------------------
# parent side


def _run(route: str, npz: Path, **extra: Any) -> tuple[float, float, dict[str, float]]:
    """(seconds, peak MiB, answer) of one route in its own process."""
    spec = {"route": route, "npz": str(npz), **extra}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    seconds, peak, out = run_measured(cmd, json_result=True)
    return seconds, peak / 2**20, out


def _pct(a: float, b: float) -> str:
    return f"{100 * (a / b - 1):+.1f}%" if b > 0 else "-"


def _field(text: str, ratio: int) -> Any:
    """``--field LOW,HIGH,LENGTH`` (length in coarse voxels) as a FractionField in fine voxels."""
    if not text:
        return None
    from ooc.synth.material import FractionField

    low, high, length = (float(v) for v in text.split(","))
    return FractionField(low, high, length * ratio)


def _case(seed: int, coarse: int, ratio: int, noise: float, field: str) -> Any:
    """The two-scale case every section compares on (grey coarse scan, 5 % macro-pores)."""
    from ooc.upscale.testing import two_scale_case

    return two_scale_case(
        seed,
        coarse,
        ratio=ratio,
        grey=True,
        noise=noise,
        macro_fraction=0.05,
        micropore_field=_field(field, ratio),
    )


def two_scale_rows(
    seed: int,
    coarse: int,
    ratio: int,
    finer: int,
    noise: float,
    props: list[str],
    tmp: Path,
    map_size: int,
    subdivide: list[int],
    field: str = "",
) -> list[list[str]]:
    """Direct and upscaled answers of one two-scale case, as table rows (one per route and
    coarse-grid subdivision)."""
    from ooc.upscale.testing import finer_scan

    case = _case(seed, coarse, ratio, noise, field)
    npz = tmp / f"case-{seed}-{coarse}-{ratio}.npz"
    np.savez(
        npz,
        fine_pore=case.fine_pore,
        coarse_labels=case.coarse_labels,
        grey=case.grey,
        scan=finer_scan(case, finer),
        fine_voxel_m=case.fine_voxel_m,
        ratio=ratio,
        noise=noise,
    )
    del case
    _, base, _ = _run("baseline", npz)
    rows = []
    for prop in props:
        t_d, m_d, direct = _run("direct", npz, property=prop)
        for route, sub in ((r, s) for r in ("constant", "per-voxel") for s in subdivide):
            t, m, got = _run(route, npz, property=prop, map_size=map_size, subdivide=sub)
            dirs = list(direct)
            rows.append(
                [
                    str(seed),
                    str(ratio),
                    "D_eff/D0" if prop == "diffusivity" else "k_m2",
                    f"{route} /{sub}",
                    " ".join(f"{direct[d]:.4g}" for d in dirs),
                    " ".join(f"{got[d]:.4g}" for d in dirs),
                    " ".join(_pct(got[d], direct[d]) for d in dirs),
                    f"{t_d:.1f}",
                    f"{t:.1f}",
                    f"{max(m_d - base, 0):.0f}",
                    f"{max(m - base, 0):.0f}",
                ]
            )
    npz.unlink()
    return rows


def porosity_row(seed: int, truth: np.ndarray, raw: np.ndarray, shrunk: np.ndarray) -> list[str]:
    """Grey porosity against the true sub-resolution porosity over the matrix voxels: mean
    error (bias), RMS error and correlation, raw and with the noise spread removed."""
    cells = [str(seed), f"{truth.mean():.4f} ± {truth.std():.4f}"]
    for phi in (raw, shrunk):
        e = phi - truth
        r = np.corrcoef(phi, truth)[0, 1]
        cells += [f"{e.mean():+.4f}", f"{np.sqrt(np.mean(e * e)):.4f}", f"{r:.3f}"]
    return cells


POROSITY_HEADER = [
    "seed",
    "true phi (mean ± sd)",
    "grey mean err",
    "grey RMS",
    "grey corr",
    "shrunk mean err",
    "shrunk RMS",
    "shrunk corr",
]


def accuracy_rows(
    seed: int,
    coarse: int,
    ratio: int,
    finer: int,
    noise: float,
    props: list[str],
    map_size: int,
    subdivide: list[int],
    field: str = "",
) -> tuple[list[list[str]], list[str]]:
    """Section 1's answers and differences (upscaled / direct - 1) of one seed, every solve done
    once; and the matrix's grey porosity against its true porosity (:func:`porosity_row`)."""
    from ooc.simulate import conductivity, permeability, property_map, tortuosity
    from ooc.upscale import (
        calibrate_relation,
        fit_relations,
        grey_porosity,
        part_porosity,
        refine_field,
        refine_labels,
        shrink_porosity,
    )
    from ooc.upscale.testing import finer_scan

    case = _case(seed, coarse, ratio, noise, field)
    lab, fv = case.coarse_labels, case.fine_voxel_m
    scan = finer_scan(case, finer)
    levels = _levels(case.grey, lab, noise)
    raw = grey_porosity(case.grey, lab, levels, phase=2)
    phi = shrink_porosity(raw, lab, phase=2, noise=levels.porosity_noise)
    m = lab == 2
    pore_row = porosity_row(seed, case.true_porosity[m], raw[m], phi[m])
    part = scan[:map_size, :map_size, :map_size]
    sub_map = (~part).astype(np.uint8)
    rows = []
    for prop in props:
        diffusion = prop == "diffusivity"
        q = "relative_diffusivity" if diffusion else "permeability"
        if diffusion:
            direct = tortuosity(case.fine_pore, direction=AXES).relative_diffusivity
            whole = tortuosity(scan, direction=AXES).relative_diffusivity
            per = tortuosity(scan, direction=AXES, periodic=True).relative_diffusivity
            mapped = tortuosity(part, direction=AXES).relative_diffusivity
            note = f"finer scan phi {scan.mean():.3f} (mapped part {part.mean():.3f}), D closed "
            note += " ".join(f"{whole[a]:.4f}" for a in AXES)
            note += ", periodic " + " ".join(f"{per[a]:.4f}" for a in AXES)
        else:
            direct = permeability(case.fine_pore, voxel_size=fv, direction="z", rtol=1e-3).k_m2
            whole = permeability(scan, voxel_size=fv, direction=AXES, rtol=1e-3).k_m2
            mapped = permeability(part, voxel_size=fv, direction=AXES, rtol=1e-3).k_m2
            note = f"finer scan phi {scan.mean():.3f} (mapped part {part.mean():.3f}), k "
            note += " ".join(f"{whole[a]:.3g}" for a in AXES)
        bm = property_map(sub_map, block_shape=ratio, voxel_size=fv, properties=(prop,))
        rel = fit_relations(bm, q)[0]
        constant = tuple(whole[a] for a in AXES)

        def solve(
            grid: np.ndarray, value: Any, sub: int, diffusion: bool = diffusion
        ) -> dict[str, float]:
            if diffusion:
                return conductivity(
                    grid, {0: 1.0, 1: 0.0, 2: value}, direction=AXES, reference=1.0
                ).relative
            return permeability(
                grid,
                voxel_size=fv * ratio / sub,
                porous_phases={2: value},
                direction="z",
                rtol=1e-3,
            ).k_m2

        for sub in subdivide:
            grid = refine_labels(lab, sub)
            p = part_porosity(phi, lab, grid, phase=2) if sub > 1 else phi
            cal = calibrate_relation(rel, bm, mapped, subdivide=sub)
            field = refine_field(cal(p).astype(np.float32), lab, 2, sub)
            for route, got in (
                ("constant", solve(grid, constant, sub)),
                ("per-voxel", solve(grid, field, sub)),
            ):
                rows.append(
                    [
                        str(seed),
                        str(ratio),
                        "D_eff/D0" if diffusion else "k_m2",
                        f"{route} /{sub}",
                        " ".join(f"{direct[d]:.4g}" for d in direct),
                        " ".join(f"{got[d]:.4g}" for d in direct),
                        " ".join(_pct(got[d], direct[d]) for d in direct),
                        f"{100 * np.mean([abs(got[d] / direct[d] - 1) for d in direct]):.1f}%",
                        note
                        if route == "constant" and sub == subdivide[0]
                        else f"relation scale {cal.scale:.3f}"
                        if route == "per-voxel"
                        else "",
                    ]
                )
        print(f"  relation: {rel.formula()}", flush=True)
    return rows, pore_row


TWO_SCALE_HEADER = [
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
]


def block_rows(
    n: int,
    block: int,
    margins: list[int],
    seed: int,
    tmp: Path,
    routes: list[str],
    rtol: float,
) -> list[list[str]]:
    """Direct D_eff/D0 of an n³ two-phase volume against block upscaling with/without margin.

    ``routes``: ``"direct"`` (the reference: the solver's default tolerance, 1e-4),
    ``"loose"`` (the direct solve at the blocks' ``rtol``: as loose a solve as the block route
    makes), ``"0"`` (blocks without margin), ``"margin"`` (each of ``margins``) - a subset lets
    a large volume run in several shorter calls; without the reference no difference is given.
    ``time`` is each route's seconds over the reference's.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), 1.5)
    z = np.linspace(-1.0, 1.0, n)
    trend = 0.3 * float(f.std()) * np.sin(3 * z)[:, None, None] * np.cos(2 * z)[None, :, None]
    npz = tmp / f"blocks-{n}.npz"
    np.savez(npz, labels=(f < np.quantile(f, 0.5) + trend).astype(np.uint8))  # 0: pore
    del f
    _, base, _ = _run("baseline", npz)
    runs = [("direct", "-", 1e-4, {})] * ("direct" in routes)
    runs += [("direct", "-", rtol, {})] * ("loose" in routes)
    for mg in [0] * ("0" in routes) + margins * ("margin" in routes):
        runs.append((f"blocks {block}³", str(mg), rtol, {"block": block, "margin": mg}))
    rows, direct, t_direct = [], None, None
    for name, margin, tol, extra in runs:
        route = "block-direct" if name == "direct" else "block-map"
        t, m, got = _run(route, npz, rtol=tol, **extra)
        if direct is None and route == "block-direct":
            direct, t_direct = got, t  # the first direct solve is the reference
            cells, worst = [f"{got[d]:.4f}" for d in AXES], "-"
        elif direct is None:
            cells, worst = [f"{got[d]:.4f}" for d in AXES], "-"
        else:
            cells = [f"{got[d]:.4f} ({_pct(got[d], direct[d])})" for d in AXES]
            worst = f"{100 * max(abs(got[d] / direct[d] - 1) for d in AXES):.1f}%"
        share = f"{t / t_direct:.2f}" if t_direct else "-"
        mib = f"{max(m - base, 0):.0f}"
        rows.append([name, margin, f"{tol:.0e}", *cells, worst, f"{t:.1f}", share, mib])
    npz.unlink()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one seed")
    ap.add_argument("--coarse", type=int, default=16, help="coarse region edge, voxels")
    ap.add_argument("--ratio", type=int, default=8, help="scale ratio of section 1")
    ap.add_argument("--finer", type=int, default=128, help="finer scan edge, fine voxels")
    ap.add_argument(
        "--map-size", type=int, default=64, help="edge of the finer scan's block-mapped part"
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--subdivide",
        default="1,4",
        help="coarse-grid subdivisions (interfaces reconstructed, ooc.upscale.refine_labels)",
    )
    ap.add_argument("--noise", type=float, default=0.1, help="grey noise / pore-solid contrast")
    ap.add_argument("--properties", default="diffusivity,permeability")
    ap.add_argument("--ratios", default="4,8,16", help="scale ratios of section 2 (first seed)")
    ap.add_argument("--block-volume", type=int, default=128)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--margin", default="16", help="oversampling margin(s), voxels: 4,8,16")
    ap.add_argument(
        "--block-routes",
        default="direct,loose,0,margin",
        help="section 3's routes (a subset; see block_rows)",
    )
    ap.add_argument(
        "--block-rtol",
        type=float,
        default=1e-2,
        help="tolerance of section 3's block solves (and of its 'loose' direct solve)",
    )
    ap.add_argument(
        "--field",
        default="",
        help="LOW,HIGH,LENGTH: the matrix's micro-pore fraction varies in space between LOW and "
        "HIGH (a smooth random field of lattice LENGTH coarse voxels); default: one fraction",
    )
    ap.add_argument("--sections", default="1,2,3")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    if args.smoke:
        args.coarse, args.finer, args.map_size, args.seeds = 4, 16, 16, "0"
        args.sections = args.sections.replace("2", "")  # section 1's code at another ratio
        args.block_volume, args.block, args.margin = 32, 16, "8"
    props = [p for p in args.properties.split(",") if p]
    sections = {int(s) for s in args.sections.split(",") if s}
    seeds = [int(s) for s in args.seeds.split(",") if s]
    subs = [int(s) for s in args.subdivide.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="ooc-bench-upscale-"))
    print(
        f"# ooc.upscale benchmark (coarse {args.coarse}³, ratio {args.ratio}, finer scan "
        f"{args.finer}³ (block map of {args.map_size}³), noise {args.noise})\n",
        flush=True,
    )

    def show(seed: int, ratio: int) -> None:
        """One table of section 1/2 rows, printed as soon as it is done."""
        rows = two_scale_rows(
            seed, args.coarse, ratio, args.finer, args.noise, props, tmp, args.map_size, subs,
            args.field,
        )  # fmt: skip
        print_table(rows, TWO_SCALE_HEADER)
        sys.stdout.flush()

    if 1 in sections:
        print(
            f"## 1. two-scale consistency: {args.coarse}³ coarse -> "
            f"{args.coarse * args.ratio}³ fine\n"
        )
        for s in seeds:  # one table per seed, printed as it is done
            show(s, args.ratio)
    if 2 in sections:
        print(f"## 2. difference vs scale ratio (seed {seeds[0]}, coarse {args.coarse}³)\n")
        for r in (int(v) for v in args.ratios.split(",") if v):
            show(seeds[0], r)
    if 4 in sections:
        print(
            f"## 4. accuracy: {args.coarse}³ coarse -> {args.coarse * args.ratio}³ fine"
            f"{f' (micro-pore fraction field {args.field})' if args.field else ''}\n"
        )
        pore_rows = []
        for s in seeds:
            rows, pore_row = accuracy_rows(
                s,
                args.coarse,
                args.ratio,
                args.finer,
                args.noise,
                props,
                args.map_size,
                subs,
                args.field,
            )
            pore_rows.append(pore_row)
            print_table(rows, [*TWO_SCALE_HEADER[:7], "mean |diff|", "note"])
            sys.stdout.flush()
        print("grey porosity of the matrix voxels against their true sub-resolution porosity\n")
        print_table(pore_rows, POROSITY_HEADER)
    if 3 in sections:
        print(
            f"## 3. block upscaling: {args.block_volume}³ volume, {args.block}³ blocks, "
            f"margin {args.margin}\n"
        )
        print_table(
            block_rows(
                args.block_volume,
                args.block,
                [int(v) for v in args.margin.split(",") if v],
                seeds[0],
                tmp,
                args.block_routes.split(","),
                args.block_rtol,
            ),
            ["route", "margin", "rtol", "D z", "D y", "D x", "worst", "seconds", "time", "MiB"],
        )
    tmp.rmdir()


if __name__ == "__main__":
    main()
