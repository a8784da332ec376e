"""Flow: a whole pipeline spec (``ooc run SPEC.yaml``; with no spec, the synthetic main job).

For each scan of the spec, finest scale first: ingest, then (grey scans) train a forest from the
annotations and segment, then measure and simulate the label volume, and, for a scan that stands
for a phase of a coarser one (``represents``), upscale its simulation into ``upscale.zarr``,
which the coarser scan's simulation then takes that phase's values from. Every stage is skipped
when its output is complete with the same inputs and parameters, so re-running a spec finishes
what is left, and changing one parameter re-runs that stage and the ones downstream of it only
(across scales too: a changed finer result re-runs the coarser simulations).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task

from ooc.cluster import dask_client, progress_enabled
from ooc.stages.spec import ScanPlan, example_spec, load_spec, scan_plans
from ooc.synth import SampleSpec, default_sample, write_sample
from ooc.synth.scribbles import write_scribbles

from ._runtime import settings_from, stage_task

__all__ = ["pipeline_flow"]


@task(name="synthesize-sample")
def synthesize(
    out_dir: str,
    seed: int,
    shape: list[int] | None,
    scribbles: float,
    shapes: dict[str, list[int] | None] | None = None,
) -> str:
    """Write the synthetic sample's TIFF stacks and MicroCT scribbles (a label TIFF drawn
    inside the ground truth, as a person would), unless the same sample is complete.
    ``shapes``: ``fibsem_shape`` / ``tem_shape`` of the finer scans (default 96³, 64³)."""
    sizes = {k: tuple(v) for k, v in {"shape": shape, **(shapes or {})}.items() if v}
    spec = default_sample(seed=seed, **sizes)
    path = Path(out_dir) / "sample.json"
    strokes = Path(out_dir) / "MicroCT" / "scribbles.tif"
    if path.is_file() and strokes.is_file():
        done = json.loads(path.read_text())
        if SampleSpec.from_dict(done) == spec and all(
            s.get("written") for s in done["scales"].values()
        ):
            return str(path)
    write_sample(spec, out_dir, progress=progress_enabled())
    write_scribbles(out_dir, fraction=scribbles, seed=seed)
    return str(path)


@task(name="score-segmentation")
def score(segmentation: str, truth: str, class_names: dict[str, str]) -> dict[str, float]:
    """IoU per phase of a segmentation against ground-truth labels (a label store whose
    values are the class values minus 1, as the synthetic truth is), block by block."""
    import ooc
    from ooc.segment import iou

    predicted = ooc.open_volume(segmentation).data.astype(np.int16)
    expected = ooc.open_volume(truth).data.astype(np.int16) + 1
    scores = iou(predicted, expected, [int(k) for k in class_names])
    return {class_names[str(k)]: float(v) for k, v in scores.items()}


def _run_scan(plan: ScanPlan, overrides: dict[str, Any]) -> dict[str, Any]:
    """The stages of one scan, in order; returns each stage's outcome."""
    out: dict[str, Any] = {}
    ingest = {"source": plan.source, "output": plan.volume, "metadata": plan.metadata}
    ingest.update(reader_options=plan.reader, chunks=plan.chunks)
    out["ingest"] = stage_task("ingest", ingest, overrides)
    if plan.segment:
        seg = plan.segment
        model = seg.get("model")
        if model is None:
            model = f"{plan.folder}/model"
            train = {"volume": plan.volume, "annotations": seg["annotations"], "model": model}
            out["train"] = stage_task("train", {**train, **seg.get("train", {})}, overrides)
        segment = {"volume": plan.volume, "model": model, "output": plan.labels}
        out["segment"] = stage_task("segment", {**segment, **seg.get("options", {})}, overrides)
        if seg.get("truth"):
            meta = {**plan.metadata, "kind": "labels"}
            truth = {
                "source": seg["truth"],
                "output": f"{plan.folder}/truth.zarr",
                "metadata": meta,
            }
            truth_store = stage_task("ingest", truth, overrides)["url"]
            names = out["segment"]["summary"]["phases"]
            out["score"] = score(plan.labels, truth_store, names)
    if plan.measure is not None:
        measure = {"labels": plan.labels, "output": f"{plan.folder}/measure.zarr"}
        out["measure"] = stage_task("measure", {**measure, **plan.measure}, overrides)
    if plan.simulate is not None:
        simulate = {"labels": plan.labels, "output": f"{plan.folder}/simulate.zarr"}
        if plan.upscaled:
            simulate["upscaled"] = dict(plan.upscaled)
        out["simulate"] = stage_task("simulate", {**simulate, **plan.simulate}, overrides)
    if plan.represents:
        rep = dict(plan.represents)
        upscale = {"finer": out["simulate"]["url"], "output": plan.upscale}
        upscale.update(phase=rep.pop("phase"), target=rep.pop("scan"), **rep)
        out["upscale"] = stage_task("upscale", upscale, overrides)
    return out


@flow(name="ooc-run", validate_parameters=True)
def pipeline_flow(
    spec: str | None = None,
    seed: int = 0,
    shape: list[int] | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the pipeline spec file ``spec``; without one, the synthetic main job (the spec
    :func:`ooc.stages.spec.example_spec` gives for ``seed`` and MicroCT ``shape``).

    Returns, per scan, each stage's outcome (url, skipped, seconds, summary) and the text
    summary ``ooc run`` prints.
    """
    settings = settings_from(settings_overrides)
    if spec is None:
        import yaml

        doc = yaml.safe_load(example_spec(seed, shape))
    else:
        doc = load_spec(spec)
    output = str(Path(doc.get("output") or settings.data_dir).resolve())
    synth = doc.get("synthesize")
    if synth is not None or spec is None:
        base = str(Path(output) / doc["sample"] / "raw")
    else:
        base = str(Path(spec).resolve().parent)
    plans = scan_plans(doc, base=base, output=output, source=spec or "example spec")
    if synth is not None:
        shapes = {k: synth.get(k) for k in ("fibsem_shape", "tem_shape")}
        seed_, scribbles = synth.get("seed", seed), synth.get("scribbles", 1e-3)
        synthesize(base, seed_, synth.get("shape"), scribbles, shapes)
    results: dict[str, Any] = {}
    with dask_client(settings) as client:
        cluster = {**(settings_overrides or {}), "scheduler": client.scheduler.address}
        for plan in plans:
            results[plan.name] = _run_scan(plan, cluster)
    return {"sample": doc["sample"], "scans": results, "text": summary_text(results)}


def summary_text(results: dict[str, Any]) -> str:
    """What ``ooc run`` prints: per scan, each stage's time (or 'done before') and key numbers;
    down the scale chain, each scale's total porosity and what it passed up (``FIB-SEM ->
    MicroCT micro-porous: porosity ..., D_eff/D0 z/y/x, k z/y/x m²``)."""
    lines = []
    for scan, stages in results.items():
        times = ", ".join(
            f"{name} " + ("skipped" if o["skipped"] else f"{o['seconds']:.1f} s")
            for name, o in stages.items()
            if isinstance(o, dict) and "skipped" in o
        )
        lines.append(f"{scan}: {times}")
        if "score" in stages:
            ious = stages["score"]
            lines.append(
                f"  segmentation IoU: {', '.join(f'{k} {v:.3f}' for k, v in ious.items())} "
                f"(mean {np.mean(list(ious.values())):.3f})"
            )
        if "measure" in stages:
            m = stages["measure"]["summary"]
            unit = {"micrometer": "µm", "nanometer": "nm"}.get(m["unit"], m["unit"])
            d10, d50, d90 = m["pore_d10_d50_d90"]
            obj = m["objects"]
            lines.append(
                f"  porosity {m['porosity']:.3f}; pore connected z/y/x "
                f"{'/'.join(f'{v:.2f}' for v in m['pore_percolating'])}; pore size D10/D50/D90 "
                f"{d10:g}/{d50:g}/{d90:g} {unit}; {obj['count']} {obj['phase']} objects, "
                f"D50 {obj['d50']:.3g} {unit}"
            )
        if "simulate" in stages and stages["simulate"]["summary"]["route"] == "whole":
            s = stages["simulate"]["summary"]
            parts = [
                f"{label} " + "/".join(format(s[key][a], fmt) for a in "zyx") + unit
                for label, key, fmt, unit in (
                    ("tortuosity factor z/y/x", "tau", ".2f", ""),
                    ("relative conductivity", "relative_conductivity", ".3f", ""),
                    ("permeability", "permeability_mD", ".4g", " mD"),
                )
                if key in s
            ]
            converged = "" if s["converged"] else " (NOT converged)"
            lines.append("  " + "; ".join(parts) + converged)
        if "simulate" in stages and stages["simulate"]["summary"].get("upscaled"):
            s = stages["simulate"]["summary"]
            lines.append(
                f"  total porosity {s['total_porosity']:.3f} (resolved pore and upscaled "
                f"{', '.join(s['upscaled'])})"
            )
        if "upscale" in stages:
            u = stages["upscale"]["summary"]
            passed = [f"porosity {u['porosity']:.3f}"]
            if "relative_diffusivity" in u:
                passed.append(f"D_eff/D0 {_per_axis(u['relative_diffusivity'], '.3g')}")
            if "permeability_m2" in u:
                passed.append(f"k {_per_axis(u['permeability_m2'], '.2g')} m²")
            lines.append(f"  {scan} -> {u['target']} {u['phase']}: {', '.join(passed)}")
    return "\n".join(lines)


def _per_axis(values: dict[str, float], fmt: str) -> str:
    return "/".join(format(values[a], fmt) for a in "zyx")
