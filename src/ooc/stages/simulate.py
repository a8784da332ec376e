"""Simulate stage: transport through a label volume -> one results store.

The memory each route needs is estimated first. The whole-volume route solves the tortuosity
factor of the pore phase, the effective conductivity for the given phase values and the
permeability (with Brinkman phases), each one part (group ``simulate/<property>``). The
block-wise route (for volumes whose whole solve does not fit) computes property maps one slab of
blocks at a time (each slab one part), joined into ``simulate/blocks`` at the end. A killed run
resumes with the parts that are left.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psutil
import xarray as xr
import zarr
from tqdm.auto import tqdm

from ooc.cluster import progress_enabled
from ooc.config import Settings
from ooc.provenance import make_record
from ooc.results import write_dataset
from ooc.simulate.blockwise import property_map
from ooc.simulate.conduction import conductivity, tortuosity
from ooc.simulate.memory import estimate_memory
from ooc.simulate.stokes import permeability
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input, phase_values_by_name
from ooc.stages.record import open_results_store
from ooc.volume import as_volume

__all__ = ["CODE_VERSION", "plan_simulation", "run_simulate"]

CODE_VERSION = 1
PROPERTIES = ("tortuosity", "conductivity", "permeability")
_AXES = ("z", "y", "x")
_MAP_NAMES = {
    "tortuosity": "diffusivity",
    "conductivity": "conductivity",
    "permeability": "permeability",
}
# per solve: (summary key, variable of its stored group)
_SUMMARY = {
    "tortuosity": [("tau", "tortuosity"), ("relative_diffusivity", "relative_diffusivity")],
    "conductivity": [("relative_conductivity", "relative_conductivity")],
    "permeability": [("permeability_mD", "permeability_mD"), ("permeability_m2", "permeability")],
}
_PER_AXIS = [key for pairs in _SUMMARY.values() for key, _ in pairs]


def plan_simulation(
    shape: tuple[int, int, int], *, block_shape: int = 64, available: int | None = None
) -> dict[str, Any]:
    """Memory of each route (:func:`ooc.simulate.estimate_memory`) and the route to take:
    "whole" when every property's whole-volume solve fits in ``available`` bytes (default:
    the memory free now), else "blocks"."""
    available = available or psutil.virtual_memory().available
    estimate = estimate_memory(shape, block_shape=block_shape, available=available)
    whole = all(r == "whole" for r in estimate["route"].values())
    return {
        "route": "whole" if whole else "blocks",
        "available": int(available),
        "estimate": estimate,
    }


def run_simulate(
    labels: str,
    output: str,
    *,
    settings: Settings,
    pore: str = "pore",
    phase_values: dict[str, float] | None = None,
    porous_phases: dict[str, float] | None = None,
    route: str = "auto",
    block_shape: int = 64,
    properties: tuple[str, ...] | list[str] | None = PROPERTIES,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Simulate transport through the label store ``labels`` into ``output`` (see module).

    ``phase_values``: conductivity per phase name (default 1 in the pore space, 0 elsewhere);
    ``porous_phases``: Brinkman phases and their permeability in m²; ``route``: "whole",
    "blocks" or "auto" (whole when the memory estimate fits; the choice is made on the machine
    that runs it and never enters the cache key); ``properties``: which of "tortuosity",
    "conductivity" and "permeability" to compute.

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).
    """
    volume, parent = open_input(labels, kind="labels", role="labels", settings=settings)
    pore_label = next(iter(phase_values_by_name(labels, volume, {pore: 1.0})))
    values = phase_values_by_name(labels, volume, phase_values or {}) or {pore_label: 1.0}
    brinkman = phase_values_by_name(labels, volume, porous_phases or {})
    parameters = {
        "pore": pore,
        "phase_values": phase_values,
        "porous_phases": porous_phases,
        "route": route,
        "block_shape": block_shape,
        "properties": [p for p in PROPERTIES if p in (properties or PROPERTIES)],
    }
    wanted = parameters["properties"]
    voxel_m = as_volume(volume).voxel_size_m

    def body(ctx: Context) -> Product:
        options = ctx.storage_options
        group = open_results_store(ctx.url, "simulate", ctx.digest, storage_options=options)
        plan = plan_simulation(volume.shape, block_shape=block_shape)
        chosen = group.attrs.get("route") or (plan["route"] if route == "auto" else route)
        group.attrs["route"] = chosen  # a resumed run keeps the route it started with
        record = make_record(
            "simulate",
            parameters={**parameters, "route_taken": chosen},
            inputs=[{"source": parent.url, "digest": parent.digest}],
            run_id=run_id,
        )
        show = progress_enabled() if progress is None else progress
        name = labels.rstrip("/").rsplit("/", 1)[-1]
        done = list(group.attrs.get("parts_done", []))

        def store(part: str, ds: xr.Dataset, target: str) -> None:
            write_dataset(ds, ctx.url, group=target, provenance=record, storage_options=options)
            done.append(part)
            group.attrs["parts_done"] = done

        summary: dict[str, Any] = {"route": chosen, "memory": plan}
        if chosen == "blocks":
            nz = volume.shape[0]
            slabs = [(z, min(z + block_shape, nz)) for z in range(0, nz, block_shape)]
            for z0, z1 in tqdm(slabs, desc=f"simulate {name} blocks", disable=not show):
                part = f"slab_{z0}"
                if part not in done:
                    maps = property_map(
                        volume.data[z0:z1],
                        block_shape=block_shape,
                        voxel_size=voxel_m,
                        pore_label=pore_label,
                        properties=[_MAP_NAMES[p] for p in wanted],
                        phase_values=_with_zeros(values, volume),
                        porous_phases=brinkman or None,
                    )
                    store(part, _shift_z(maps, z0, voxel_m[0]), f"simulate/_slabs/{part}")
            maps = xr.concat(
                [
                    xr.open_zarr(
                        ctx.url,
                        group=f"simulate/_slabs/slab_{z0}",
                        zarr_format=3,
                        consolidated=False,
                        storage_options=options or None,
                    ).compute()
                    for z0, _ in slabs
                ],
                dim="z",
            )
            maps.attrs.pop("ooc_history", None)
            write_dataset(
                maps, ctx.url, group="simulate/blocks", provenance=record, storage_options=options
            )
            del zarr.open_group(ctx.url, mode="a", storage_options=options or None)[
                "simulate/_slabs"
            ]
            summary["blocks"] = int(np.prod([maps.sizes[d] for d in _AXES]))
            numbers = {
                f"{key}_median_{d}": float(maps[var].sel(direction=d).median())
                for key, var in (("tau", "tortuosity"), ("permeability_mD", "permeability_mD"))
                if var in maps
                for d in _AXES
            }
        else:
            arr = np.asarray(volume.values)
            solves = {
                "tortuosity": lambda: tortuosity(arr, pore_label, voxel_size=voxel_m),
                "conductivity": lambda: conductivity(
                    arr, _with_zeros(values, volume), voxel_size=voxel_m
                ),
                "permeability": lambda: permeability(
                    arr, pore_label=pore_label, voxel_size=voxel_m, porous_phases=brinkman or None
                ),
            }
            for part in tqdm(wanted, desc=f"simulate {name}", disable=not show):
                if part not in done:
                    store(part, solves[part]().to_dataset(), f"simulate/{part}")
            summary.update(_whole_summary(ctx.url, wanted, options))
            numbers = {"porosity": summary["porosity"]}
            for key in _PER_AXIS:
                numbers.update({f"{key}_{d}": v for d, v in summary.get(key, {}).items()})
        return Product(
            store_kind="results",
            summary=summary,
            numbers=numbers,
            sample_id=volume.attrs["sample_id"],
            modality=volume.attrs["modality"],
        )

    return run_stage(
        "simulate",
        code_version=CODE_VERSION,
        output=output,
        parameters=parameters,
        parents=[parent],
        settings=settings,
        body=body,
        check_only=check_only,
    )


def _with_zeros(values: dict[int, float], volume: xr.DataArray) -> dict[int, float]:
    """Phase values with every other named phase set to 0 (it does not conduct)."""
    out = {int(v): 0.0 for v in (volume.attrs.get("labels") or {})}
    out.update(values)
    return out


def _shift_z(maps: xr.Dataset, z0: int, dz: float) -> xr.Dataset:
    """A slab's block map placed at its depth in the whole volume."""
    return maps.assign_coords(z=maps["z"] + z0 * dz, z_start=maps["z_start"] + z0)


def _whole_summary(url: str, wanted: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """Per-axis key numbers, read back from the stored groups (the same after a resume)."""

    def group(name: str) -> xr.Dataset:
        return xr.open_zarr(
            url,
            group=f"simulate/{name}",
            zarr_format=3,
            consolidated=False,
            storage_options=options or None,
        ).compute()

    groups = {name: group(name) for name in wanted}

    def per_axis(ds: xr.Dataset, var: str) -> dict[str, float]:
        return {str(d): float(ds[var].sel(direction=d)) for d in ds["direction"].values}

    out: dict[str, Any] = {
        "porosity": float(
            next((ds.attrs["porosity"] for ds in groups.values() if "porosity" in ds.attrs), np.nan)
        ),
        "converged": all(bool(ds["converged"].all()) for ds in groups.values()),
    }
    for name, ds in groups.items():
        out.update({key: per_axis(ds, var) for key, var in _SUMMARY[name]})
    return out
