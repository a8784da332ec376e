"""Simulate stage: transport through a label volume -> one results store.

The memory each route needs is estimated first. The whole-volume route solves the tortuosity
factor of the pore phase, the effective conductivity for the given phase values and the
permeability (with Brinkman phases), each one part (group ``simulate/<property>``). The
block-wise route (for volumes whose whole solve does not fit) computes property maps one slab of
blocks at a time (each slab one part), joined into ``simulate/blocks`` at the end. A killed run
resumes with the parts that are left.

Phases ``upscaled`` from a finer scan take one value per axis from its upscale store, or, with
``per_voxel``, one value per voxel: the voxel's porosity from the grey scan
(its noise spread removed) through the relations ``D(phi)`` and ``k(phi)`` the upscale store
fitted on the finer scan's block map (:func:`ooc.stages.upscale.stored_relations`), by
:func:`ooc.upscale.per_voxel_property` on the coarse grid itself (``subdivide=1``).
The grey scan is the one the labels were segmented from (or ``grey``); it is a parent (role
``grey``). Its pore and solid grey levels (:func:`ooc.upscale.grey_levels`) come from the pore
phase and the one other phase that conducts nothing and is neither upscaled nor Brinkman (or
``solid``).
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
from ooc.errors import ConfigError, InputError, StoreError
from ooc.provenance import make_record
from ooc.results import read_group, write_dataset
from ooc.simulate.blockwise import property_map
from ooc.simulate.conduction import conductivity, tortuosity
from ooc.simulate.memory import estimate_memory
from ooc.simulate.result import MILLIDARCY_M2
from ooc.simulate.stokes import permeability
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.inputs import open_input, phase_values_by_name
from ooc.stages.record import Parent, open_results_store, read_record, store_parent, write_parts
from ooc.stages.upscale import stored_relations
from ooc.upscale import Relation, grey_levels, per_voxel_property, upscale_blocks
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
    per_voxel: bool = False,
    grey: str | None = None,
    solid: str | None = None,
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

    ``per_voxel``: the upscaled phases' conductivity (the pore phase's value times ``D(phi)``)
    and permeability (``k(phi)``, at least 1e-9 of its largest value) per voxel, from the grey
    scan's porosity and the upscale stores' relations (see module; whole route only). ``grey``:
    the grey scan's store, for labels not segmented by ooc (default: the segmentation's
    ``volume`` parent); ``solid``: the phase whose grey is the dense solid's (default: the one
    phase that is neither pore, upscaled nor Brinkman and has conductivity 0).

    With ``check_only``, inputs and parameters are checked and nothing runs (returns None).

    Raises
    ------
    StoreError
        An upscaled phase's store is missing, unfinished, not an upscale store, or lacks a value
        a wanted property needs; or the label store has no such phase.
        With ``per_voxel``: an upscale store without the relation a wanted property needs; the
        grey scan missing, not a grey scan, or of another shape.
    ConfigError
        ``phase_values`` gives the pore phase no value while an upscaled phase needs it; with
        ``per_voxel``: no upscaled phase or none a wanted property uses, the block-wise route,
        no grey scan named (labels not segmented by ooc, no ``grey``), no or several solid
        phases; ``grey`` or ``solid`` without ``per_voxel``.
    InputError
        With ``per_voxel``: the grey levels cannot be measured (a phase without voxels, pore and
        solid of one grey), or a relation is infinite at some voxel's porosity.
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
    if per_voxel:  # absent when false: the cache key of a constant-value run is unchanged
        parameters["per_voxel"] = True
        if solid is not None:
            parameters["solid"] = solid
    elif grey is not None or solid is not None:
        raise ConfigError(
            f"{'grey' if grey is not None else 'solid'}: is only used with per_voxel (the grey "
            "levels of per-voxel upscaled phases)"
        )
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
    pv = (
        _per_voxel_inputs(
            labels,
            volume,
            settings,
            grey=grey,
            solid=solid,
            route=route,
            block_shape=block_shape,
            pore_label=pore_label,
            ups=ups,
            values=values,
            porous=set(brinkman),
            wanted=wanted,
        )
        if per_voxel
        else None
    )
    parents = [parent, *(u.parent for u in ups), *([pv.parent] if pv is not None else [])]
    voxel_m = as_volume(volume).voxel_size_m
    solver = {
        "pore_label": pore_label,
        "phase_values": {str(k): v for k, v in _with_zeros(values, volume).items()},
        "porous_phases": {str(k): v for k, v in brinkman.items()},
    }
    if pv is not None:
        for u in ups:
            for key, q, what in (
                ("phase_values", "relative_diffusivity", "pore value x D(phi)"),
                ("porous_phases", "permeability", "k(phi)"),
            ):
                if str(u.label) in solver[key] and q in u.relations:
                    solver[key][str(u.label)] = f"per-voxel field {volume.shape}: {what}"

    def body(ctx: Context) -> Product:
        options = ctx.storage_options
        group = open_results_store(ctx.url, "simulate", ctx.digest, storage_options=options)
        plan = plan_simulation(volume.shape, block_shape=block_shape)
        chosen = group.attrs.get("route") or (
            "whole" if pv is not None else plan["route"] if route == "auto" else route
        )
        group.attrs["route"] = chosen  # a resumed run keeps the route it started with
        record = make_record(
            "simulate",
            parameters={**parameters, "route_taken": chosen},
            inputs=[{"source": p.url, "digest": p.digest} for p in parents],
            run_id=run_id,
        )
        name = labels.rstrip("/").rsplit("/", 1)[-1]
        writing = {"provenance": record, "storage_options": options, "progress": progress}

        summary: dict[str, Any] = {"route": chosen, "memory": plan, "solver": solver}
        per_voxel_summary: dict[str, Any] = {}
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
            summary["whole_volume"] = coarse = _coarse_solve(maps)
            for key in _PER_AXIS:
                numbers.update({f"{key}_{d}": v for d, v in coarse.get(key, {}).items()})
        else:
            # read here, where the whole solve runs, not through the cluster's workers
            arr = np.asarray(volume.data.compute(scheduler="threads"))
            if pv is not None:
                fields, per_voxel_summary = _per_voxel_fields(
                    arr, pv, ups, pore_label, pore_value, wanted
                )
                for u in ups:
                    if "conductivity" in wanted:
                        values[u.label] = fields[u.label]["conductivity"]
                    if "permeability" in wanted:
                        brinkman[u.label] = fields[u.label]["permeability"]
                del fields
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
            if pv is not None:
                _add_per_voxel(summary, per_voxel_summary)
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
        parents=parents,
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
    relations: dict[str, Relation]
    relations_skipped: dict[str, str]


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
        *stored_relations(ds),
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


# what a coarse property takes from an upscaled phase per voxel: the relation of that quantity
_RELATION_OF = {"conductivity": "relative_diffusivity", "permeability": "permeability"}


@dataclass(frozen=True)
class _PerVoxel:
    """What a per-voxel run reads besides the labels: the grey scan and its solid phase."""

    grey: xr.DataArray
    parent: Parent
    solid_label: int
    solid: str


def _per_voxel_inputs(
    labels: str,
    volume: xr.DataArray,
    settings: Settings,
    *,
    grey: str | None,
    solid: str | None,
    route: str,
    block_shape: int,
    pore_label: int,
    ups: list[_Upscaled],
    values: dict[int, Any],
    porous: set[int],
    wanted: list[str],
) -> _PerVoxel:
    """Check a per-voxel run before any work (one-line errors): the route, the upscale stores'
    relations, the grey scan and the solid phase."""
    if not ups:
        raise ConfigError(
            "per_voxel: no upscaled phase; it gives the phases of 'upscaled' their values per "
            "voxel (--upscaled PHASE=STORE)"
        )
    props = [p for p in wanted if p in _RELATION_OF]
    if not props:
        raise ConfigError(
            f"per_voxel: properties {wanted} take no upscaled phase; ask for conductivity or "
            "permeability"
        )
    if route == "blocks":
        raise ConfigError(
            "route: 'blocks' solves block by block; per_voxel needs the whole route ('whole' or "
            "'auto')"
        )
    if route == "auto":
        plan = plan_simulation(volume.shape, block_shape=block_shape)
        if plan["route"] != "whole":
            need = max(plan["estimate"]["whole"].values()) / 2**30
            raise ConfigError(
                f"route: 'auto' takes the block-wise route for {labels} (a whole solve needs "
                f"{need:.1f} GiB, {plan['available'] / 2**30:.1f} GiB free); per_voxel needs the "
                "whole route"
            )
    for u in ups:
        for prop in props:
            q = _RELATION_OF[prop]
            if q not in u.relations:
                why = u.relations_skipped.get(q)
                raise StoreError(
                    f"{u.parent.url}: field 'upscale/properties/relations' has no {q!r}"
                    f"{f' ({why})' if why else ''}; per_voxel needs it for the {prop} of phase "
                    f"{u.phase!r} (simulate the finer scan with route 'blocks', then upscale it "
                    "with this ooc)"
                )
    url = grey
    if url is None:
        record = read_record(labels, storage_options=settings.storage_options(labels)) or {}
        url = next((p["url"] for p in record.get("parents", []) if p["role"] == "volume"), None)
        if url is None:
            raise ConfigError(
                f"grey: {labels} names no grey scan (its field 'ooc_stage/parents' has no "
                "'volume': it was not segmented by ooc); give the grey scan of these labels "
                "(--grey STORE)"
            )
    grey_volume, grey_parent = open_input(url, kind="grey", role="grey", settings=settings)
    if tuple(grey_volume.shape) != tuple(volume.shape):
        raise StoreError(
            f"{url}: has shape {tuple(grey_volume.shape)}; per_voxel needs the grey scan of "
            f"{labels}, shape {tuple(volume.shape)}"
        )
    names = {int(v): str(n) for v, n in (volume.attrs.get("labels") or {}).items()}
    taken = {pore_label, *(u.label for u in ups)}
    if solid is not None:
        solid_label = next(iter(phase_values_by_name(labels, volume, {solid: 0.0})))
        if solid_label in taken:
            raise ConfigError(
                f"solid: {solid!r} is the pore or an upscaled phase of {labels}; name the dense "
                "solid phase"
            )
        return _PerVoxel(grey_volume, grey_parent, solid_label, solid)
    candidates = [
        v for v in sorted(names) if v not in taken | porous and not np.any(values.get(v, 0.0))
    ]
    if len(candidates) != 1:
        found = (
            f"several ({', '.join(repr(names[v]) for v in candidates)}); name one"
            if candidates
            else f"none (its phases: {', '.join(repr(n) for n in names.values())}); name it"
        )
        raise ConfigError(
            f"solid: {labels} has {found} (--solid NAME): the grey levels of per_voxel need the "
            "one dense solid phase (not pore, upscaled or Brinkman; conductivity 0)"
        )
    return _PerVoxel(grey_volume, grey_parent, candidates[0], names[candidates[0]])


def _per_voxel_fields(
    arr: np.ndarray,
    pv: _PerVoxel,
    ups: list[_Upscaled],
    pore_label: int,
    pore_value: float,
    wanted: list[str],
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, Any]]:
    """Per upscaled label, its fields of the wanted conductivity and permeability (float32, the
    volume's shape, 0 outside the phase), and what the summary says of them."""
    g = np.asarray(pv.grey.data.compute(scheduler="threads"))
    try:
        levels = grey_levels(g, arr, pore_label=pore_label, solid_label=pv.solid_label)
    except ValueError as err:
        raise InputError(f"{pv.parent.url}: {err} (grey levels of per_voxel)") from None
    fields: dict[int, dict[str, np.ndarray]] = {}
    phases: dict[str, Any] = {}
    for u in ups:
        m = arr == u.label
        out: dict[str, np.ndarray] = {}
        for prop, q in _RELATION_OF.items():
            relation = u.relations.get(q)
            if relation is None or prop not in wanted:
                continue
            r = per_voxel_property(
                g, arr, phase=u.label, levels=levels, relation=relation, pore_label=pore_label
            )
            phi, inside = r.porosity[m], r.values[m]
            if not np.isfinite(inside).all():
                raise InputError(
                    f"{pv.parent.url}: the grey porosity of phase {u.phase!r} reaches "
                    f"{float(phi.max()):.3g}, where {relation.formula()} is infinite"
                )
            if prop == "conductivity":
                inside = inside * np.float32(pore_value)
            elif inside.size:  # a finite drag in every voxel of the phase
                inside = np.maximum(inside, np.float32(_IMPERMEABLE) * inside.max())
            field = np.zeros(arr.shape, dtype=np.float32)
            field[m] = inside
            out[prop] = field
        fields[u.label] = out
        phases[u.phase] = {
            "relations": {q: r.formula() for q, r in u.relations.items()},
            "porosity": {
                "mean": float(phi.mean()) if phi.size else math.nan,
                "std": float(phi.std()) if phi.size else math.nan,
                "min": float(phi.min()) if phi.size else math.nan,
                "max": float(phi.max()) if phi.size else math.nan,
            },
        }
    grey_summary = {
        "store": pv.parent.url,
        "solid_phase": pv.solid,
        "pore": levels.pore,
        "solid": levels.solid,
        "pore_sigma": levels.pore_sigma,
        "solid_sigma": levels.solid_sigma,
        "porosity_noise": levels.porosity_noise,
    }
    return fields, {"phases": phases, "grey_levels": grey_summary}


def _add_per_voxel(summary: dict[str, Any], per_voxel: dict[str, Any]) -> None:
    """Per-voxel details into a summary with upscaled phases; the total porosity takes each
    phase's mean grey porosity in place of the finer scan's porosity."""
    summary["per_voxel"] = True
    summary["grey_levels"] = per_voxel["grey_levels"]
    total = summary["total_porosity"]
    for phase, info in per_voxel["phases"].items():
        entry = summary["upscaled"][phase]
        entry["per_voxel"] = info
        if math.isfinite(info["porosity"]["mean"]):
            total += entry["fraction"] * (info["porosity"]["mean"] - entry["porosity"])
    summary["total_porosity"] = total


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


def _coarse_solve(maps: xr.Dataset) -> dict[str, Any]:
    """Whole-volume values per axis of a block map, under the whole route's keys: the blocks
    become the cells of one coarse conduction / Darcy solve (:func:`ooc.upscale.upscale_blocks`;
    ``benchmarks/upscale.py`` section 3: within ~1 % of the direct solve at 512³ in 64³ blocks).
    Where the map cannot be one grid (blocks of unequal size), ``skipped`` says why."""
    porosity = float((maps["porosity"] * maps["block_voxels"]).sum() / maps["block_voxels"].sum())
    out: dict[str, Any] = {"method": "coarse solve over the block map", "porosity": porosity}
    try:
        for quantity, key in (
            ("relative_diffusivity", "relative_diffusivity"),
            ("relative_conductivity", "relative_conductivity"),
            ("permeability", "permeability_m2"),
        ):
            if quantity in maps:
                found = upscale_blocks(maps, quantity).effective
                out[key] = {a: float(found[a]) for a in _AXES}
    except ValueError as err:
        return {"skipped": str(err)}
    if "relative_diffusivity" in out:
        d = out["relative_diffusivity"]
        out["tau"] = {a: porosity / d[a] if d[a] > 0 else math.inf for a in _AXES}
    if "permeability_m2" in out:
        out["permeability_mD"] = {a: v / MILLIDARCY_M2 for a, v in out["permeability_m2"].items()}
    return out


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
