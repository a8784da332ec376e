"""Segment stage: a grey volume + a trained model -> a label volume store, with the per-class
probabilities and the uncertainty as volume stores beside it.

``seg.zarr`` is a label volume store like an ingested one (OME-Zarr with NGFF ``image-label``
metadata, the input's voxel size, unit, modality and sample, class names as phase names), so
measure, simulate and upscale take it directly; ``seg.probabilities.zarr`` (c, z, y, x) and
``seg.uncertainty.zarr`` sit beside it. All three are written region by region, each region
flagged once stored, so a killed run resumes without predicting finished regions again.
"""

from __future__ import annotations

import math
from typing import Any

import dask
import dask.array as da
import numpy as np

from ooc.cluster import run_tasks
from ooc.config import Settings
from ooc.errors import ConfigError
from ooc.io.ingest import build_pyramid
from ooc.io.store import Box, VolumeStore, region_grid
from ooc.metadata import VolumeMetadata
from ooc.provenance import make_record
from ooc.segment import load_model, scan_prior, segmentation, training_prior, uncertain_regions
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input
from ooc.stages.record import model_weights_digest, prepare_output, remove, store_parent

__all__ = ["CODE_VERSION", "companion_urls", "run_segment"]

CODE_VERSION = 1


def companion_urls(output: str) -> dict[str, str]:
    """Where the probabilities and uncertainty of the segmentation ``output`` are stored."""
    base = output.rstrip("/").removesuffix(".zarr")
    return {
        "probabilities": f"{base}.probabilities.zarr",
        "uncertainty": f"{base}.uncertainty.zarr",
    }


def _encode(values: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities/uncertainty in [0, 1] as stored: float16/float32, or uint8 steps of 1/255."""
    if dtype == "uint8":
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return values.astype(dtype)


def _write_region(
    proba: np.ndarray,
    unc: np.ndarray,
    urls: dict[str, str],
    options: dict[str, dict[str, Any]],
    lut: np.ndarray,
    dtype: str,
    index: tuple[int, ...],
    box: Box,
    verify: bool,
) -> int:
    """Store one region in the three stores; the label store's flag goes last (it marks the
    region done)."""
    parts = {
        "uncertainty": _encode(unc, dtype),
        "probabilities": _encode(proba, dtype),
        "labels": lut[np.argmax(proba, axis=0)],
    }
    for name, data in parts.items():
        VolumeStore(urls[name], options[name]).write_region(0, index, box, data, verify=verify)
    return 1


def run_segment(
    volume: str,
    model: str,
    output: str,
    *,
    settings: Settings,
    uncertainty: str = "entropy",
    probability_dtype: str = "float16",
    device: str = "auto",
    prior: str = "training",
    max_region_bytes: int = 64 * 2**20,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Segment the grey store ``volume`` with the saved ``model`` into ``output`` (see module).

    ``probability_dtype`` ("float16", "float32" or "uint8") is used for the probabilities and
    the uncertainty. ``prior="scan"`` re-weights the probabilities from the class shares of the
    training labels to the volume's own, estimated from a sample of its blocks
    (:func:`ooc.segment.scan_prior`): scribbles give a thin class (clay) about as many voxels as
    the others, and the forest then over-predicts it. Runs on the active Dask scheduler, region by region; a region's working
    set (probabilities of every class) is kept near ``max_region_bytes`` (at least one chunk).

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).
    """
    parameters: dict[str, Any] = {
        "uncertainty": uncertainty,
        "probability_dtype": probability_dtype,
        "device": device,
    }
    if prior != "training":  # only when set: earlier runs' parameters stay the same
        parameters["prior"] = prior
    vol, vol_parent = open_input(volume, kind="grey", role="volume", settings=settings)
    model_parent = store_parent(model, "model")
    # a forest is checked against its checksum here and loaded by each worker that predicts
    trained = load_model(model, lazy=True)
    if len(vol.shape) != trained.ndim:
        raise ValueError(f"{model}: a {trained.ndim}D model cannot segment the 3D {volume}")
    if prior == "scan" and trained.kind != "forest":
        raise ConfigError(f"{model}: prior 'scan' needs a forest (its training label counts)")

    def body(ctx: Context) -> Product:
        urls = {"labels": ctx.url, **companion_urls(ctx.url)}
        options = {k: settings.storage_options(u) for k, u in urls.items()}
        for name in ("probabilities", "uncertainty"):
            # kept only to resume with their label store: without it, a finished companion
            # (the label store deleted by hand) would be taken as done
            if prepare_output(urls[name], "segment", ctx.digest) and not ctx.resume:
                remove(urls[name], storage_options=options[name])
        classes = np.asarray(trained.classes)
        names = {str(int(c)): trained.class_names.get(int(c), f"class {int(c)}") for c in classes}
        label_dtype = np.uint8 if classes.max() <= 255 else np.uint16
        attrs = vol.attrs
        common = {
            "sample_id": attrs["sample_id"],
            "modality": attrs["modality"],
            "voxel_size": tuple(attrs["voxel_size"]),
            "unit": attrs["unit"],
            "acquisition": {"segmented_from": vol_parent.url, "model": model_parent.url},
        }
        shape = tuple(vol.shape)
        chunks = tuple(int(c[0]) for c in vol.data.chunks)
        # a region's working set: K float32 probabilities, the uncertainty, the three outputs
        per_voxel = 4 * len(classes) + 8
        regions = region_grid(shape, chunks, per_voxel, max_region_bytes)
        plan = {"stage": "segment", "stage_digest": ctx.digest}
        stores = {}
        for name, kind, dtype, channels, levels in (
            ("labels", "labels", label_dtype, None, None),
            ("probabilities", "grey", np.dtype(probability_dtype), len(classes), 1),
            ("uncertainty", "grey", np.dtype(probability_dtype), None, None),
        ):
            stores[name], _ = VolumeStore.create_or_resume(
                urls[name],
                shape=shape,
                dtype=dtype,
                chunks=chunks,
                metadata=VolumeMetadata(kind=kind, labels=names, **common),
                plan_extra=plan,
                levels=levels,
                channels=channels,
                regions=regions,
                storage_options=options[name],
            )
        shares, priors = None, {}
        if prior == "scan":
            base = training_prior(trained)
            shares = scan_prior(trained.predict_proba(vol, device=device), base, progress=progress)
            priors = {  # class shares of the training labels and of this volume, by name
                f"{which}_prior": {
                    names[str(int(c))]: float(v) for c, v in zip(classes, p, strict=True)
                }
                for which, p in (("training", base), ("scan", shares))
            }
        seg = segmentation(
            vol, trained, uncertainty_method=uncertainty, device=device, prior=shares
        )
        proba, unc = seg["probabilities"].data, seg["uncertainty"].data
        lut = classes.astype(label_dtype)
        pending = stores["labels"].pending_regions(0)
        tasks = [
            dask.delayed(_write_region, pure=False)(
                proba[(slice(None), *box)],
                unc[box],
                urls,
                options,
                lut,
                probability_dtype,
                idx,
                box,
                ctx.resume,
            )
            for idx, box in pending
        ]
        name = volume.rstrip("/").rsplit("/", 1)[-1]
        run_tasks(tasks, desc=f"segment {name}", progress=progress)
        record = make_record(
            "segment",
            parameters={**parameters, "model": model_parent.url},
            inputs=[{"source": vol_parent.url, "digest": vol_parent.digest}],
            run_id=run_id,
        )
        for name, kind in (("labels", "labels"), ("uncertainty", "grey"), ("probabilities", "")):
            if stores[name].status == "complete":
                continue
            if kind:
                build_pyramid(stores[name], kind, verify=ctx.resume, progress=progress)
            stores[name].finish(record)

        stored = da.from_zarr(stores["labels"].array(0))
        counts = da.bincount(stored.ravel(), minlength=int(classes.max()) + 1).compute()
        fractions = {names[str(int(c))]: float(counts[c]) / math.prod(shape) for c in classes}
        stored_unc = da.from_zarr(stores["uncertainty"].array(0))
        scale = 255.0 if probability_dtype == "uint8" else 1.0
        origin = [float(vol.coords[d][0]) for d in ("z", "y", "x")]
        top = uncertain_regions(
            stored_unc.astype(np.float32) / scale,
            region=32,
            top=10,
            voxel_size=attrs["voxel_size"],
            origin=origin,
        )
        return Product(
            store_kind="labels",
            summary={
                "phases": names,
                "class_fractions": fractions,
                "uncertain_regions": top,
                "unit": attrs["unit"],
                **{k: u for k, u in urls.items() if k != "labels"},
                **priors,
            },
            numbers={f"fraction_{n}": f for n, f in fractions.items()},
            sample_id=attrs["sample_id"],
            modality=attrs["modality"],
            model_digest=model_weights_digest(model),
            companions={urls["probabilities"]: "probabilities", urls["uncertainty"]: "uncertainty"},
        )

    return run_stage(
        "segment",
        code_version=CODE_VERSION,
        output=output,
        parameters=parameters,
        parents=[vol_parent, model_parent],
        settings=settings,
        body=body,
        check_only=check_only,
    )
