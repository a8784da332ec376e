"""Measure stage: the standard measurements of a label volume -> one results store.

    <output>.zarr            groups measure/fractions, connectivity, surface, pore_size, objects,
                             correlation, chords (xarray Datasets with provenance)
    <output>.objects.parquet one row per object
    <output>.<name>.png      the pore size distribution and an orthoslice picture of the objects

Each group is one part: a part is flagged once written, so a killed run resumes with the parts
that are left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import xarray as xr

from ooc.config import Settings
from ooc.errors import StoreError
from ooc.measure.connectivity import phase_connectivity
from ooc.measure.correlation import chord_length_distribution, two_point_correlation
from ooc.measure.fractions import phase_fractions
from ooc.measure.objects import object_statistics, object_table, separate_objects
from ooc.measure.plots import plot_distribution, plot_orthoslices
from ooc.measure.surface import surface_area
from ooc.measure.thickness import local_thickness, thickness_distribution
from ooc.provenance import make_record
from ooc.results import read_group, write_table
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input
from ooc.stages.record import open_results_store, write_parts

__all__ = ["CODE_VERSION", "run_measure"]

CODE_VERSION = 1


def _phases(url: str, volume: xr.DataArray) -> dict[str, int]:
    named = volume.attrs.get("labels") or {}
    if named:
        return {name: int(value) for value, name in sorted(named.items(), key=lambda v: int(v[0]))}
    return {str(int(v)): int(v) for v in da.unique(volume.data).compute()}


def run_measure(
    labels: str,
    output: str,
    *,
    settings: Settings,
    pore: str | None = None,
    objects: str | None = None,
    connectivity: int = 6,
    block_shape: int = 64,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Measure the label store ``labels`` into the results store ``output`` (see module).

    ``pore`` and ``objects`` name the pore phase (size distribution, percolation) and the phase
    split into objects (grains, particles); default the first and second phase.
    ``block_shape`` is the edge of the local phase-fraction map's blocks, voxels.

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).
    """
    volume, parent = open_input(labels, kind="labels", role="labels", settings=settings)
    phases = _phases(labels, volume)
    names = list(phases)
    pore = pore or names[0]
    objects = objects or names[min(1, len(names) - 1)]
    for field, name in (("pore", pore), ("objects", objects)):
        if name not in phases:
            raise StoreError(
                f"{labels}: has no phase {name!r} (option {field}); its phases are {names}"
            )
    parameters = {
        "pore": pore,
        "objects": objects,
        "connectivity": connectivity,
        "block_shape": block_shape,
    }
    attrs = volume.attrs
    common = {"voxel_size": tuple(attrs["voxel_size"]), "unit": attrs["unit"]}
    data = volume.data

    def body(ctx: Context) -> Product:
        options = ctx.storage_options
        base = ctx.url.rstrip("/").removesuffix(".zarr")
        local = "://" not in ctx.url
        group = open_results_store(ctx.url, "measure", ctx.digest, storage_options=options)
        record = make_record(
            "measure",
            parameters=parameters,
            inputs=[{"source": parent.url, "digest": parent.digest}],
            run_id=run_id,
        )

        def pore_size() -> xr.Dataset:
            thickness = local_thickness(data == phases[pore], voxel_size=common["voxel_size"])
            ds = thickness_distribution(thickness, name=pore, **common)
            if local:
                plot_distribution(
                    ds["volume_fraction"],
                    f"{base}.pore_size.png",
                    title=f"{pore} size distribution (local thickness)",
                )
            return ds

        def objects_part() -> xr.Dataset:
            found, count = separate_objects(
                data == phases[objects], voxel_size=common["voxel_size"]
            )
            table = object_table(found, **common)
            write_table(table, f"{base}.objects.parquet", storage_options=options)
            if local:
                plot_orthoslices(
                    found, f"{base}.objects.png", title=f"{objects}: {count} objects", **common
                )
            return object_statistics(table).assign_attrs(count=int(count))

        parts: dict[str, Callable[[], xr.Dataset]] = {
            "fractions": lambda: phase_fractions(
                data, phases=phases, block_shape=block_shape, pore=pore, **common
            ),
            "connectivity": lambda: phase_connectivity(
                data, phases=phases, connectivity=connectivity, **common
            ),
            "surface": lambda: surface_area(data, phases=phases, **common),
            "pore_size": pore_size,
            "objects": objects_part,
            "correlation": lambda: two_point_correlation(data, phases=phases, **common),
            "chords": lambda: chord_length_distribution(data, phases=phases, **common),
        }
        write_parts(
            group,
            ctx.url,
            parts,
            prefix="measure",
            provenance=record,
            storage_options=options,
            desc=f"measure {labels.rstrip('/').rsplit('/', 1)[-1]}",
            progress=progress,
        )
        return _product(ctx.url, base, local, pore, objects, names, attrs, options)

    return run_stage(
        "measure",
        code_version=CODE_VERSION,
        output=output,
        parameters=parameters,
        parents=[parent],
        settings=settings,
        body=body,
        check_only=check_only,
    )


def _product(
    url: str,
    base: str,
    local: bool,
    pore: str,
    objects: str,
    names: list[str],
    attrs: dict[str, Any],
    options: dict[str, Any],
) -> Product:
    """The key numbers, read back from the stored groups (the same after a resumed run)."""
    groups = {
        name: read_group(url, f"measure/{name}", storage_options=options, load=False)
        for name in ("fractions", "surface", "connectivity", "pore_size", "objects")
    }
    fractions, surface, size, stats = (
        groups["fractions"],
        groups["surface"],
        groups["pore_size"],
        groups["objects"],
    )
    summary = {
        "unit": attrs["unit"],
        "objects_table": f"{base}.objects.parquet",
        "pictures": [f"{base}.pore_size.png", f"{base}.objects.png"] if local else [],
        "porosity": float(fractions["porosity"]),
        "fractions": {n: float(fractions["fraction"].sel(phase=n)) for n in names},
        "ssa": {n: float(surface["ssa"].sel(phase=n)) for n in names},
        "pore": pore,
        "pore_percolating": [
            float(v) for v in groups["connectivity"]["percolating_fraction"].sel(phase=pore).values
        ],
        "pore_d10_d50_d90": [float(size[k]) for k in ("D10", "D50", "D90")],
        "objects": {
            "phase": objects,
            "count": int(stats.attrs["count"]),
            "inside": int(stats["n_objects"]),
            "d50": float(stats["D50"].sel(measure="equivalent_diameter", weighting="number")),
        },
    }
    numbers = {
        "porosity": summary["porosity"],
        **{f"fraction_{n}": v for n, v in summary["fractions"].items()},
        **{f"ssa_{n}": v for n, v in summary["ssa"].items()},
        "pore_d50": summary["pore_d10_d50_d90"][1],
        "objects_d50": summary["objects"]["d50"],
    }
    return Product(
        store_kind="results",
        summary=summary,
        numbers=numbers,
        sample_id=attrs["sample_id"],
        modality=attrs["modality"],
    )
