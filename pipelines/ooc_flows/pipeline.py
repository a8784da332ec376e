"""Flow: the whole pipeline on a synthetic three-scale sample (the README's main job).

Today's stages: make the sample (TIFF stacks with ground truth), ingest every scan into a volume
store, register it in the catalog, measure each scan's labels (fractions, surfaces,
connectivity, pore and object sizes) into a results store, segment the MicroCT scan with a
random forest trained from scribbles (scored against the ground truth), simulate transport through the
MicroCT labels (tortuosity factor, conductivity, permeability per axis), and summarise. Every stage skips work that is already
complete, so re-running after a failure finishes the job without redoing it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from prefect import flow, task

import ooc
from ooc.catalog import register
from ooc.cluster import dask_client, progress_enabled
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata
from ooc.synth import SCALES, SampleSpec, default_sample, write_sample

from ._runtime import current_run_id, settings_from
from .measure import measure_task
from .segment import segment_task, train_task
from .simulate import simulate_task

# the phase split into objects at each scale: grains in MicroCT, pores below it
OBJECTS = {"MicroCT": "solid grain", "FIB-SEM": "pore", "TEM": "pore"}
# ilastik's filters up to 3.5 voxels: the sample's grains are 16-32 voxels across
SEGMENT_FILTERS = {
    "gaussian": [0.0, 0.7, 1.0, 1.6, 3.5],
    "gradient": [0.7, 1.0, 1.6],
    "laplacian": [0.7, 1.0, 1.6],
    "dog": [1.0, 1.6, 3.5],
    "hessian": [0.7, 1.0, 1.6],
    "structure": [0.7, 1.0],
}

# MicroCT transport: the grey micro-porous phase conducts and flows as a porous medium. Its
# values are assumptions of the demo (about its porosity / tortuosity, and 1 mD) until
# multiscale upscaling derives them from the FIB-SEM and TEM scans.
MICROPOROUS = {"conductivity": 0.25, "permeability_m2": 1e-15}

__all__ = ["pipeline_flow"]


@task(name="synthesize-sample")
def synthesize(out_dir: str, seed: int, shape: list[int] | None) -> str:
    """Write the synthetic sample's TIFF stacks, unless the same sample is already complete."""
    spec = default_sample(seed=seed, **({"shape": tuple(shape)} if shape else {}))
    path = Path(out_dir) / "sample.json"
    if path.is_file():
        done = json.loads(path.read_text())
        if SampleSpec.from_dict(done) == spec and all(
            s.get("written") for s in done["scales"].values()
        ):
            return str(path)
    return str(write_sample(spec, out_dir, progress=progress_enabled()))


@task(name="ingest-scan", retries=1)
def ingest_scan(
    source: str,
    output: str,
    metadata: dict[str, Any],
    scheduler: str,
    overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """Ingest one TIFF stack on the flow's Dask cluster (finishes an unfinished store)."""
    settings = settings_from({**(overrides or {}), "scheduler": scheduler})
    with dask_client(settings):
        report = ingest(
            open_reader(source),
            output,
            VolumeMetadata.from_dict(metadata, source=source),
            chunks=settings.chunks,
            run_id=current_run_id(),
        )
    return report.__dict__


@task(name="register-store", retries=3, retry_delay_seconds=2)
def register_store(output: str, overrides: dict[str, Any] | None) -> None:
    """Add the store to the catalog."""
    settings = settings_from(overrides)
    register(output, catalog_url=settings.resolved_catalog_url)


@task(name="summarize")
def summarize(
    sample_json: str, stores: dict[str, dict[str, str]], scheduler: str
) -> dict[str, Any]:
    """Per scan: shape, voxel size, bytes stored, compression, and phase fractions of the
    ground-truth labels store checked against the generator's own accounting."""
    sample = json.loads(Path(sample_json).read_text())
    rows = []
    from distributed import Client

    with Client(scheduler):
        for scale, urls in stores.items():
            grey = ooc.open_volume(urls["grey"])
            labels = ooc.open_volume(urls["labels"])
            counts = da.bincount(
                labels.data.ravel(), minlength=len(sample["scales"][scale]["phases"])
            ).compute()
            expected = sample["scales"][scale]["label_counts"]
            stored = sum(p.stat().st_size for p in Path(urls["grey"]).rglob("*") if p.is_file())
            rows.append(
                {
                    "scale": scale,
                    "shape": list(grey.shape),
                    "voxel_size": grey.attrs["voxel_size"],
                    "unit": grey.attrs["unit"],
                    "stored_bytes": stored,
                    "compression": grey.nbytes / stored,
                    "phases": sample["scales"][scale]["phases"],
                    "fractions": (counts / counts.sum()).tolist(),
                    "matches_generator": bool(np.array_equal(counts, expected)),
                }
            )
    return {"rows": rows, "stores": stores, "text": _format(rows)}


def _format(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'scale':<8} {'shape':>13} {'voxel (z,y,x)':>22} {'stored':>9} {'ratio':>6}  phase fractions (labels = generator)"
    ]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        unit = {"micrometer": "µm", "nanometer": "nm"}.get(r["unit"], r["unit"])
        voxel = ",".join(f"{v:g}" for v in r["voxel_size"]) + f" {unit}"
        fractions = ", ".join(
            f"{p} {f:.3f}" for p, f in zip(r["phases"], r["fractions"], strict=True)
        )
        check = "yes" if r["matches_generator"] else "NO"
        lines.append(
            f"{r['scale']:<8} {shape:>13} {voxel:>22} {r['stored_bytes'] / 2**20:>7.1f}MB {r['compression']:>5.2f}x  {fractions} ({check})"
        )
    return "\n".join(lines)


@task(name="segment-microct")
def segment_microct(
    grey: str, labels: str, folder: str, seed: int, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Train a forest from scribbles on 0.1% of the voxels (drawn inside the ground truth, as a
    person would), segment the whole scan, and score IoU against the ground truth."""
    import tifffile

    from ooc.results import finish_step, finished_step
    from ooc.segment import iou, simulate_scribbles

    output = f"{folder}/segmentation.zarr"
    parameters = {"grey": grey, "labels": labels, "seed": seed, "filters": SEGMENT_FILTERS}
    done = finished_step(output, "pipeline_segment", parameters)
    if done is not None:
        return done
    truth = ooc.open_volume(labels).values
    scribbles = simulate_scribbles(truth, fraction=0.001, seed=seed)  # class = label + 1
    painted = np.zeros(truth.shape, dtype=np.uint8)
    painted[tuple(scribbles.coords.T)] = scribbles.labels
    tifffile.imwrite(f"{folder}/scribbles.tif", painted)  # a label TIFF, as a user would give
    model = train_task(
        grey, f"{folder}/scribbles.tif", f"{folder}/forest.model", SEGMENT_FILTERS, None, overrides
    )
    out = segment_task(grey, model, output, overrides)
    predicted = (
        zarr.open_array(output, path=f"{out['group']}/labels", mode="r")[...].astype(np.int16) - 1
    )
    scores = iou(predicted, truth)
    summary = {
        "output": output,
        "model": model,
        "scribbled_fraction": float(scribbles.fraction),
        "iou": {str(k): v for k, v in scores.items()},
        "mean_iou": float(np.nanmean(list(scores.values()))),
        "uncertain_regions": out["uncertain_regions"][:3],
    }
    return finish_step(output, "pipeline_segment", parameters, summary)


@flow(name="ooc-pipeline", validate_parameters=True)
def pipeline_flow(
    seed: int = 0,
    shape: list[int] | None = None,
    sample_id: str = "synthetic-0",
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Synthesize a three-scale sample, ingest and catalogue each scan, summarise.

    ``shape`` is the MicroCT scan's (z, y, x); outputs go under ``<data_dir>/<sample_id>/``.
    """
    settings = settings_from(settings_overrides)
    root = Path(settings.data_dir).resolve() / sample_id
    sample_json = synthesize(str(root / "raw"), seed, shape)
    sample = json.loads(Path(sample_json).read_text())
    stores: dict[str, dict[str, str]] = {}
    with dask_client(settings) as client:
        address = client.scheduler.address
        for scale in SCALES:
            info = sample["scales"][scale]
            stores[scale] = {}
            for kind in ("grey", "labels"):
                metadata = {
                    "sample_id": sample_id,
                    "modality": scale,
                    "kind": kind,
                    "voxel_size": info["voxel_size"],
                    "unit": info["unit"],
                    "acquisition": {"synthetic": True, "seed": seed, "generator": "ooc.synth"},
                }
                if kind == "labels":
                    metadata["labels"] = {str(i): name for i, name in enumerate(info["phases"])}
                output = str(root / scale / f"{kind}.zarr")
                ingest_scan(
                    str(root / "raw" / info[kind]["path"]),
                    output,
                    metadata,
                    address,
                    settings_overrides,
                )
                register_store(output, settings_overrides)
                stores[scale][kind] = output
        summary = summarize(sample_json, stores, address)
        cluster = {**(settings_overrides or {}), "scheduler": address}
        segmented = segment_microct(
            stores["MicroCT"]["grey"],
            stores["MicroCT"]["labels"],
            str(root / "MicroCT"),
            seed,
            cluster,
        )
        measured = {
            scale: measure_task(
                urls["labels"],
                str(root / scale / "results.zarr"),
                "pore",
                OBJECTS[scale],
                6,
                {**(settings_overrides or {}), "scheduler": address},
            )
            for scale, urls in stores.items()
        }
        simulated = simulate_task(
            stores["MicroCT"]["labels"],
            str(root / "MicroCT" / "results.zarr"),
            "pore",
            {"pore": 1.0, "micro-porous": MICROPOROUS["conductivity"]},
            {"micro-porous": MICROPOROUS["permeability_m2"]},
            "auto",
            64,
            cluster,
        )
    names = sample["scales"]["MicroCT"]["phases"]
    lines = [
        summary["text"],
        "",
        f"MicroCT  random forest from scribbles on {segmented['scribbled_fraction']:.2%} of the voxels: "
        + ", ".join(f"IoU {names[int(k)]} {v:.3f}" for k, v in segmented["iou"].items())
        + f" (mean {segmented['mean_iou']:.3f})",
    ]
    for scale, m in measured.items():
        unit = {"micrometer": "µm", "nanometer": "nm"}.get(m["unit"], m["unit"])
        d10, d50, d90 = m["pore_d10_d50_d90"]
        obj = m["objects"]
        lines.append(
            f"{scale:<8} porosity {m['porosity']:.3f}; pore SSA {m['ssa']['pore']:.3g}/{unit}; pore "
            f"connected z/y/x {'/'.join(f'{v:.2f}' for v in m['pore_percolating'])}; pore size "
            f"D10/D50/D90 {d10:g}/{d50:g}/{d90:g} {unit}; {obj['count']} {obj['phase']} objects, "
            f"D50 {obj['d50']:.3g} {unit}"
        )
    if simulated["route"] == "whole":
        axes = "zyx"
        lines.append(
            "MicroCT  tortuosity factor z/y/x "
            + "/".join(f"{simulated['tau'][a]:.2f}" for a in axes)
            + "; relative conductivity "
            + "/".join(f"{simulated['relative_conductivity'][a]:.3f}" for a in axes)
            + "; permeability "
            + "/".join(f"{simulated['permeability_mD'][a]:.4g}" for a in axes)
            + " mD"
            + ("" if simulated["converged"] else " (NOT converged)")
        )
    return {
        **summary,
        "segment": segmented,
        "measure": measured,
        "simulate": simulated,
        "text": "\n".join(lines),
    }
