"""The standard set of measurements on a label store, written as a results store with pictures.

:func:`measure_store` runs fractions (with a per-block map), connectivity, surface area, the
pore size distribution (local thickness), objects of one phase (separated by watershed), the
two-point correlation and chord lengths, and writes them next to each other:

    <results>.zarr   groups measure/fractions, measure/connectivity, measure/surface,
                     measure/pore_size, measure/objects, measure/correlation, measure/chords
    <results>.objects.parquet        one row per object
    <results>.<name>.png             distributions and an orthoslice picture of the objects
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dask.array as da
import xarray as xr

from ooc.io.volume import open_volume
from ooc.measure.connectivity import phase_connectivity
from ooc.measure.correlation import chord_length_distribution, two_point_correlation
from ooc.measure.fractions import phase_fractions
from ooc.measure.objects import object_statistics, object_table, separate_objects
from ooc.measure.plots import plot_distribution, plot_orthoslices
from ooc.measure.surface import surface_area
from ooc.measure.thickness import local_thickness, thickness_distribution
from ooc.provenance import make_record
from ooc.results import finish_step, finished_step, write_dataset, write_table

__all__ = ["measure_store"]


def _phases(attrs: dict[str, Any], labels: da.Array) -> dict[str, int]:
    named = attrs.get("labels") or {}
    if named:
        return {name: int(value) for value, name in named.items()}
    return {str(v): int(v) for v in da.unique(labels).compute()}


def measure_store(
    labels_url: str,
    results_url: str,
    *,
    pore: str | None = None,
    objects: str | None = None,
    connectivity: int = 6,
    block_shape: int = 64,
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Measure the label store at ``labels_url``; write results to ``results_url`` (a ``.zarr``).

    Parameters
    ----------
    pore, objects
        Phase names (from the store's ``labels`` metadata) of the pore space, whose size
        distribution is measured, and of the phase split into objects (grains, particles);
        default the first and second phase.
    connectivity
        6, 18 or 26 for components and percolation.
    block_shape
        Edge of the blocks of the local phase-fraction map, voxels.

    Re-running with the same labels and parameters returns the stored summary without
    measuring again.

    Returns
    -------
    dict
        Key numbers (porosity, fractions, specific surface areas, pore D10/D50/D90, object
        count and D50) and the paths written.
    """
    started = time.perf_counter()
    volume = open_volume(labels_url, storage_options=storage_options)
    labels = volume.data
    meta = volume.attrs
    parameters = {
        "labels": labels_url,
        "labels_made": meta["history"][:1],
        "pore": pore,
        "objects": objects,
        "connectivity": connectivity,
        "block_shape": block_shape,
    }
    done = finished_step(results_url, "measure", parameters, storage_options=storage_options)
    if done is not None:
        return done
    voxel, unit = tuple(meta["voxel_size"]), meta["unit"]
    phases = _phases(meta, labels)
    names = list(phases)
    pore = pore or names[0]
    objects = objects or names[min(1, len(names) - 1)]
    for role, name in (("pore", pore), ("objects", objects)):
        if name not in phases:
            raise ValueError(f"{labels_url}: {role} phase {name!r} is not one of {names}")
    common = {"voxel_size": voxel, "unit": unit}

    groups: dict[str, xr.Dataset] = {
        "fractions": phase_fractions(
            labels, phases=phases, block_shape=block_shape, pore=pore, **common
        ),
        "connectivity": phase_connectivity(
            labels, phases=phases, connectivity=connectivity, **common
        ),
        "surface": surface_area(labels, phases=phases, **common),
        "correlation": two_point_correlation(labels, phases=phases, **common),
        "chords": chord_length_distribution(labels, phases=phases, **common),
    }
    pore_mask = labels == phases[pore]
    thickness = local_thickness(pore_mask, voxel_size=voxel)
    groups["pore_size"] = thickness_distribution(thickness, name=pore, **common)
    object_labels, count = separate_objects(labels == phases[objects], voxel_size=voxel)
    table = object_table(object_labels, **common)
    groups["objects"] = object_statistics(table)

    base = str(results_url).removesuffix(".zarr")
    record = make_record(
        "measure",
        parameters={k: v for k, v in parameters.items() if k != "labels_made"},
        inputs=[{"source": labels_url, "made_by": meta["history"][:1]}],
        run_id=run_id,
    )
    for name, ds in groups.items():
        write_dataset(
            ds,
            results_url,
            group=f"measure/{name}",
            provenance=record,
            storage_options=storage_options,
        )
    write_table(table, f"{base}.objects.parquet", storage_options=storage_options)
    pictures = []
    if not results_url.startswith(("s3://", "gs://", "az://")):
        pictures = [
            plot_distribution(
                groups["pore_size"]["volume_fraction"],
                f"{base}.pore_size.png",
                title=f"{pore} size distribution (local thickness)",
            ),
            plot_orthoslices(
                object_labels,
                f"{base}.objects.png",
                voxel_size=voxel,
                unit=unit,
                title=f"{objects}: {count} objects",
            ),
        ]

    fractions = groups["fractions"]
    surface = groups["surface"]
    size = groups["pore_size"]
    stats = groups["objects"]
    summary = {
        "labels": labels_url,
        "results": results_url,
        "objects_table": f"{base}.objects.parquet",
        "pictures": [str(Path(p)) for p in pictures],
        "unit": unit,
        "porosity": float(fractions["porosity"]),
        "fractions": {n: float(fractions["fraction"].sel(phase=n)) for n in names},
        "ssa": {n: float(surface["ssa"].sel(phase=n)) for n in names},
        "pore_percolating": [
            float(v) for v in groups["connectivity"]["percolating_fraction"].sel(phase=pore).values
        ],
        "pore_d10_d50_d90": [float(size[k]) for k in ("D10", "D50", "D90")],
        "objects": {
            "phase": objects,
            "count": int(count),
            "inside": int(stats["n_objects"]),
            "d50": float(stats["D50"].sel(measure="equivalent_diameter", weighting="number")),
        },
        "seconds": time.perf_counter() - started,
    }
    # written last: its presence says every group above is complete
    return finish_step(results_url, "measure", parameters, summary, storage_options=storage_options)
