"""Stream a synthetic sample to disk as TIFF slice stacks plus a ``sample.json`` sidecar."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from tqdm import tqdm

from ooc.synth.imaging import render_scan
from ooc.synth.scan import field_of_view, render_labels
from ooc.synth.spec import FINE_PHASES, SCALES, SampleSpec

SLAB_VOXELS = 1 << 26
"""Default slab size, voxels: memory is bounded by one slab of labels and grey (3 bytes/voxel)
plus one render tile (about 30 bytes/voxel of :data:`ooc.synth.scan.TILE_VOXELS`)."""

KINDS = ("grey", "labels")


def _slice_name(z: int, nz: int) -> str:
    return f"slice_{z:0{max(5, len(str(nz - 1)))}d}.tif"


def _check_folder(folder: Path, names: set[str]) -> None:
    stale = sorted(p.name for p in folder.glob("slice_*.tif") if p.name not in names)
    if stale:
        raise FileExistsError(
            f"{folder} holds {len(stale)} slice files this stack would not overwrite "
            f"(e.g. {stale[0]}); remove them or write elsewhere"
        )


def _write_stacks(
    spec: SampleSpec,
    scale: str,
    folders: dict[str, Path],
    *,
    slab: int | None,
    progress: bool,
) -> dict[str, Any]:
    """Render ``scale`` slab by slab, writing one TIFF per z slice for each kind in ``folders``."""
    sc = spec.scale(scale)
    nz, ny, nx = sc.shape
    if slab is None:
        # At least 32 slices, so the blur's z halo stays a small overhead.
        slab = min(nz, max(32, SLAB_VOXELS // (ny * nx)))
    if slab < 1:
        raise ValueError(f"slab must be >= 1 slices, got {slab}")
    bad = set(folders) - set(KINDS)
    if bad:
        raise ValueError(f"kind must be one of {KINDS}, got {sorted(bad)}")
    names = [_slice_name(z, nz) for z in range(nz)]
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        _check_folder(folder, set(names))
    counts = np.zeros(len(sc.phases), dtype=np.int64)
    with tqdm(
        total=nz, desc=f"{scale} {'+'.join(folders)}", unit="slice", disable=not progress
    ) as bar:
        for z0 in range(0, nz, slab):
            z1 = min(z0 + slab, nz)
            region = (slice(z0, z1), slice(0, ny), slice(0, nx))
            if "grey" in folders:
                labels, grey = render_scan(spec, scale, region)
                arrays = {"labels": labels, "grey": grey}
            else:
                labels = render_labels(spec, scale, region)
                arrays = {"labels": labels}
            for k in range(z1 - z0):
                # Per slice: bincount casts to intp, 8 bytes per voxel.
                counts += np.bincount(labels[k].ravel(), minlength=len(sc.phases))
                for kind, folder in folders.items():
                    tifffile.imwrite(folder / names[z0 + k], arrays[kind][k])
            bar.update(z1 - z0)
    return {
        "scale": scale,
        "shape": list(sc.shape),
        "files": nz,
        "phases": list(sc.phases),
        "label_counts": counts.tolist(),
    }


def write_tiff_stack(
    spec: SampleSpec,
    scale: str,
    folder: str | os.PathLike[str],
    *,
    kind: str = "grey",
    slab: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write one scan as a stack of 2D TIFFs, ``slice_00000.tif``, ... (one per z slice).

    Parameters
    ----------
    spec
        The sample.
    scale
        ``"MicroCT"``, ``"FIB-SEM"`` or ``"TEM"``.
    folder
        Output folder (created). Existing ``slice_*.tif`` files of the same names are overwritten;
        others are an error.
    kind
        ``"grey"`` (uint16) or ``"labels"`` (uint8).
    slab
        z slices rendered at once (bounds memory); default: about 2**26 voxels, at least 32
        slices.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    dict
        ``scale``, ``kind``, ``folder``, ``dtype``, ``shape`` (z, y, x), ``files``, ``phases`` and
        ``label_counts`` (voxels per label, counted from the labels as they were rendered).
    """
    folder = Path(folder)
    acc = _write_stacks(spec, scale, {kind: folder}, slab=slab, progress=progress)
    dtype = "uint16" if kind == "grey" else "uint8"
    return {**acc, "kind": kind, "folder": str(folder), "dtype": dtype}


def write_sample(
    spec: SampleSpec,
    out_dir: str | os.PathLike[str],
    *,
    scales: Iterable[str] | None = None,
    slab: int | None = None,
    progress: bool = True,
) -> Path:
    """Write scans of a sample: ``<scale>/grey/`` and ``<scale>/labels/`` stacks, ``sample.json``.

    Labels and grey are rendered in the same pass. ``sample.json`` holds the seed, the material
    (lengths in nm), and per scale: modality, shape, voxel size and unit, field-of-view origin and
    extent (in that unit), phase names, label counts and fractions (the generator's accounting),
    the imaging parameters and the stacks' folders; :meth:`SampleSpec.from_dict` rebuilds the
    spec from it.

    Returns
    -------
    pathlib.Path
        Path of ``sample.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(SCALES if scales is None else scales)
    for name in names:
        spec.scale(name)  # fail on a bad name before writing anything
    meta = spec.to_dict()
    meta = {
        "generator": "ooc.synth",
        "format_version": 1,
        "material_unit": "nanometer",
        "fine_phases": list(FINE_PHASES),
        **meta,
    }
    for name in names:
        folders = {kind: out / name / kind for kind in KINDS}
        acc = _write_stacks(spec, name, folders, slab=slab, progress=progress)
        origin, extent = field_of_view(spec, name)
        total = sum(acc["label_counts"])
        meta["scales"][name].update(
            origin=list(origin),
            extent=list(extent),
            phases=acc["phases"],
            label_counts=acc["label_counts"],
            phase_fractions=[c / total for c in acc["label_counts"]],
            grey={"path": f"{name}/grey", "dtype": "uint16"},
            labels={"path": f"{name}/labels", "dtype": "uint8"},
            files=acc["files"],
            written=True,
        )
    for name in set(SCALES) - set(names):
        meta["scales"][name]["written"] = False
    path = out / "sample.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(path)
    return path
