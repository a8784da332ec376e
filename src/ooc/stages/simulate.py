"""Simulate stage: transport through a label volume -> one results store.

The memory each route needs is estimated first. The whole-volume route solves the tortuosity
factor of the pore phase, the effective conductivity for the given phase values and the
permeability (with Brinkman phases), each one part (group ``simulate/<property>``). The
block-wise route (for volumes whose whole solve does not fit) computes property maps one slab of
blocks at a time (each slab one part), joined into ``simulate/blocks`` at the end. A killed run
resumes with the parts that are left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask
import numpy as np
import psutil
import xarray as xr
import zarr

from ooc.config import Settings
from ooc.errors import ConfigError, StoreError
from ooc.provenance import make_record
from ooc.results import read_group, write_dataset
from ooc.simulate.blockwise import property_map
from ooc.simulate.conduction import conductivity, tortuosity
from ooc.simulate.memory import estimate_memory
from ooc.simulate.stokes import permeability
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input, phase_values_by_name
from ooc.stages.record import Parent, open_results_store, read_record, store_parent, write_parts
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
    upscaled: dict[str, str] | None = None,
    route: str = "auto",
    block_shape: int = 64,
    properties: tuple[str, ...] | list[str] | None = PROPERTIES,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Simulate transport through the label store ``labels`` into ``output`` (see module).

    ``phase_values``: conductivity per phase name (default 1 in the pore space, 0 elsewhere);
    ``porous_phases``: Brinkman phases and their permeability in m²; ``upscaled``: phase name
    -> upscale store of a finer scan, whose values replace that phase's entries in both (the
    conductivity as the pore phase's value times ``D_eff/D0`` per axis; a permeability of 0
    along some axes only becomes 1e-9 of the largest there, as the solver needs a finite drag);
    ``route``: "whole",
    "blocks" or "auto" (whole when the memory estimate fits; the choice is made on the machine
    that runs it and never enters the cache key); ``properties``: which of "tortuosity",
    "conductivity" and "permeability" to compute.

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).

    Raises
    ------
    StoreError
        An upscaled phase's store is missing, unfinished, not an upscale store, or lacks a value
        a wanted property needs; or the label store has no such phase.
    ConfigError
        ``phase_values`` gives the pore phase no value while an upscaled phase needs it.
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
    ups = [
        _read_upscaled(phase, url, labels, volume, settings, wanted)
        for phase, url in sorted((upscaled or {}).items())
    ]
    pore_value = float(np.max(values.get(pore_label, 0.0)))
    for u in ups:
        if u.label == pore_label:
            raise ConfigError(
                f"upscaled: phase {u.phase!r} is the pore phase of {labels}; a finer scan stands "
                "for a sub-resolution phase"
            )
        if u.relative_diffusivity is not None and "conductivity" in wanted:
            if pore_value <= 0:
                raise ConfigError(
                    f"phase_values: gives the pore phase {pore!r} no value; the upscaled phase "
                    f"{u.phase!r} conducts D_eff/D0 times it"
                )
            values[u.label] = tuple(pore_value * d for d in u.relative_diffusivity)
        if u.permeability is not None and "permeability" in wanted:
            brinkman[u.label] = _finite_drag(u.permeability)
    voxel_m = as_volume(volume).voxel_size_m
    solver = {
        "pore_label": pore_label,
        "phase_values": {str(k): v for k, v in _with_zeros(values, volume).items()},
        "porous_phases": {str(k): v for k, v in brinkman.items()},
    }

    def body(ctx: Context) -> Product:
        options = ctx.storage_options
        group = open_results_store(ctx.url, "simulate", ctx.digest, storage_options=options)
        plan = plan_simulation(volume.shape, block_shape=block_shape)
        chosen = group.attrs.get("route") or (plan["route"] if route == "auto" else route)
        group.attrs["route"] = chosen  # a resumed run keeps the route it started with
        record = make_record(
            "simulate",
            parameters={**parameters, "route_taken": chosen},
            inputs=[
                {"source": p.url, "digest": p.digest} for p in (parent, *(u.parent for u in ups))
            ],
            run_id=run_id,
        )
        name = labels.rstrip("/").rsplit("/", 1)[-1]
        writing = {"provenance": record, "storage_options": options, "progress": progress}

        summary: dict[str, Any] = {"route": chosen, "memory": plan, "solver": solver}
        if chosen == "blocks":
            nz = volume.shape[0]
            slabs = [(z, min(z + block_shape, nz)) for z in range(0, nz, block_shape)]

            def slab(z0: int, z1: int) -> xr.Dataset:
                maps = property_map(
                    volume.data[z0:z1],
                    block_shape=block_shape,
                    voxel_size=voxel_m,
                    pore_label=pore_label,
                    properties=[_MAP_NAMES[p] for p in wanted],
                    phase_values=_with_zeros(values, volume),
                    porous_phases=brinkman or None,
                )
                return _shift_z(maps, z0, voxel_m[0])

            write_parts(
                group,
                ctx.url,
                {f"slab_{z0}": partial(slab, z0, z1) for z0, z1 in slabs},
                prefix="simulate/_slabs",
                desc=f"simulate {name} blocks",
                **writing,
            )
            maps = xr.concat(
                [
                    read_group(ctx.url, f"simulate/_slabs/slab_{z0}", storage_options=options)
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
            # read here, where the whole solve runs, not through the cluster's workers
            arr = np.asarray(volume.data.compute(scheduler="threads"))
            solves = {
                "tortuosity": lambda: tortuosity(arr, pore_label, voxel_size=voxel_m),
                "conductivity": lambda: conductivity(
                    arr, _with_zeros(values, volume), voxel_size=voxel_m
                ),
                "permeability": lambda: permeability(
                    arr, pore_label=pore_label, voxel_size=voxel_m, porous_phases=brinkman or None
                ),
            }
            write_parts(
                group,
                ctx.url,
                {part: (lambda part=part: solves[part]().to_dataset()) for part in wanted},
                prefix="simulate",
                desc=f"simulate {name}",
                **writing,
            )
            summary.update(_whole_summary(ctx.url, wanted, options))
            numbers = {"porosity": summary["porosity"]}
            for key in _PER_AXIS:
                numbers.update({f"{key}_{d}": v for d, v in summary.get(key, {}).items()})
        if ups:
            summary.update(_upscaled_summary(volume, pore_label, pore_value, ups))
            numbers["total_porosity"] = summary["total_porosity"]
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
        parents=[parent, *(u.parent for u in ups)],
        settings=settings,
        body=body,
        check_only=check_only,
    )


@dataclass(frozen=True)
class _Upscaled:
    """A phase whose values come from a finer scan: its upscale store's per-axis values."""

    phase: str
    label: int
    parent: Parent
    porosity: float
    relative_diffusivity: tuple[float, float, float] | None
    permeability: tuple[float, float, float] | None


# what a coarse property needs from an upscale store, and the finer solve that gives it
_NEEDS = {
    "conductivity": ("relative_diffusivity", "tortuosity or conductivity"),
    "permeability": ("permeability", "permeability"),
}


def _read_upscaled(
    phase: str, url: str, labels: str, volume: xr.DataArray, settings: Settings, wanted: list[str]
) -> _Upscaled:
    """The upscale store ``url`` for ``phase`` of ``labels``, checked against what the wanted
    properties need (one-line :class:`StoreError` otherwise)."""
    options = settings.storage_options(url)
    parent = store_parent(url, f"upscaled:{phase}", storage_options=options)
    stage = (read_record(url, storage_options=options) or {}).get("stage")
    if stage != "upscale":
        raise StoreError(
            f"{url}: field 'ooc_stage/stage' is {stage!r}; the upscaled phase {phase!r} needs a "
            "store of the upscale stage"
        )
    label = next(iter(phase_values_by_name(labels, volume, {phase: 0.0})))
    ds = read_group(url, "upscale/properties", storage_options=options)

    def triple(var: str) -> tuple[float, float, float] | None:
        if var not in ds:
            return None
        return tuple(float(ds[var].sel(direction=a)) for a in _AXES)  # type: ignore[return-value]

    found = _Upscaled(
        phase,
        label,
        parent,
        float(ds.attrs.get("porosity", math.nan)),
        triple("relative_diffusivity"),
        triple("permeability"),
    )
    for prop, (var, solve) in _NEEDS.items():
        vals = getattr(found, var)
        if prop not in wanted:
            continue
        if vals is None or not all(math.isfinite(v) and v >= 0 for v in vals):
            raise StoreError(
                f"{url}: field 'upscale/properties/{var}' is "
                f"{'missing' if vals is None else list(vals)}; the {prop} of phase {phase!r} "
                f"needs it finite and >= 0 along z, y, x (compute the finer scan's {solve})"
            )
    return found


# A Brinkman voxel needs a finite drag along every axis: along an axis where the finer scan does
# not percolate (k = 0 there, > 0 along another) the phase gets this fraction of its largest k.
_IMPERMEABLE = 1e-9


def _finite_drag(k: tuple[float, float, float]) -> tuple[float, float, float]:
    """Per-axis permeability of an upscaled phase as the Brinkman solver takes it (m²)."""
    top = max(k)
    return tuple(v if v > 0 else top * _IMPERMEABLE for v in k)  # type: ignore[return-value]


def _upscaled_summary(
    volume: xr.DataArray, pore_label: int, pore_value: float, ups: list[_Upscaled]
) -> dict[str, Any]:
    """What the upscaled phases brought: their values, volume fractions and the total porosity
    (resolved pore plus each sub-resolution phase's fraction times its porosity)."""
    data = volume.data
    pore, *fractions = dask.compute(
        (data == pore_label).mean(), *[(data == u.label).mean() for u in ups]
    )
    phases = {
        u.phase: {
            "store": u.parent.url,
            "fraction": float(f),
            "porosity": u.porosity,
            "relative_diffusivity": dict(zip(_AXES, u.relative_diffusivity, strict=True))
            if u.relative_diffusivity
            else None,
            "permeability_m2": dict(zip(_AXES, u.permeability, strict=True))
            if u.permeability
            else None,
        }
        for u, f in zip(ups, fractions, strict=True)
    }
    total = float(pore) + sum(float(f) * u.porosity for u, f in zip(ups, fractions, strict=True))
    return {"upscaled": phases, "pore_value": pore_value, "total_porosity": total}


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
    groups = {name: read_group(url, f"simulate/{name}", storage_options=options) for name in wanted}

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
