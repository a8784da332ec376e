"""Upscale stage: a finer scan's simulation -> the properties of one phase of a coarser scan.

    <output>.zarr   group upscale/properties (:meth:`ooc.upscale.PhaseProperties.to_dataset`:
                    D_eff/D0, conductivity and permeability per axis, porosity in its attrs) and,
                    when the finer results are a block map, upscale/rev (the REV curve)

The finer store is a simulate results store. Whole-volume solves (groups ``simulate/tortuosity``,
``conductivity``, ``permeability``) go through :func:`ooc.upscale.from_results`; a block map
(``simulate/blocks``) through :func:`ooc.upscale.from_block_map` with ``statistic``, and the REV
curve (:func:`ooc.upscale.rev_curve` on the finer labels, block sizes up to the map's) is stored
beside it, and relations ``D(phi)`` / ``k(phi)`` are fitted on the map (the best of
:func:`ooc.upscale.fit_relations`, calibrated by :func:`ooc.upscale.calibrate_relation` to the
map solved as one coarse grid, :func:`ooc.upscale.upscale_blocks`): JSON text in the attrs
``relations`` of ``upscale/properties`` (:meth:`ooc.upscale.Relation.to_dict` per quantity;
:func:`stored_relations` reads them back), with ``relations_skipped`` saying why a quantity has
none. A coarser simulate stage uses them per voxel (``per_voxel``).

When the finer scan had sub-resolution phases of its own (it was simulated with
``upscaled`` phases: the chain TEM -> FIB-SEM -> MicroCT), its pore-only tortuosity misses their
transport: the scan's ``D_eff/D0`` is then its conduction solve over the pore phase's value, and
its porosity the total one (resolved pore plus each phase's fraction times its porosity).

The output's only parent is the finer store (role ``finer``); its summary says which phase of
which coarser scan (``target``) the values stand for.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ooc.config import Settings
from ooc.errors import ConfigError, StoreError
from ooc.io import open_volume
from ooc.provenance import make_record
from ooc.results import read_group
from ooc.simulate.result import (
    AXES,
    MILLIDARCY_M2,
    ConductionDirection,
    ConductionResult,
    ConvergenceInfo,
    FlowDirection,
    PermeabilityResult,
    TortuosityDirection,
    TortuosityResult,
)
from ooc.stages._run import Context, Outcome, Product, run_stage
from ooc.stages.record import open_results_store, read_record, store_parent, write_parts
from ooc.upscale import (
    PhaseProperties,
    Relation,
    calibrate_relation,
    fit_relations,
    from_block_map,
    from_results,
    rev_curve,
    upscale_blocks,
)
from ooc.volume import as_volume

__all__ = ["CODE_VERSION", "RELATION_QUANTITIES", "run_upscale", "stored_relations"]

CODE_VERSION = 2  # 2: relations fitted on a block map
#: the block map's quantities a relation is fitted to (what a coarser simulation takes per voxel)
RELATION_QUANTITIES = ("relative_diffusivity", "permeability")
# the finer simulation's properties -> the names rev_curve (property_map) takes
_REV_NAMES = {
    "tortuosity": "diffusivity",
    "conductivity": "conductivity",
    "permeability": "permeability",
}


def run_upscale(
    finer: str,
    output: str,
    *,
    settings: Settings,
    phase: str,
    target: str,
    statistic: str = "mean",
    rev_block_sizes: list[int] | None = None,
    run_id: str | None = None,
    progress: bool | None = None,
    check_only: bool = False,
) -> Outcome | None:
    """Upscale the finer scan's simulate store ``finer`` into ``output`` (see module).

    ``phase`` and ``target`` name the phase of the coarser scan the values stand for (e.g.
    "micro-porous" of "MicroCT"); ``statistic`` ("mean", "geometric", "harmonic", "median")
    combines a block map's blocks; ``rev_block_sizes`` are the REV curve's cubic block edges in
    voxels (default: a quarter, half and all of the map's block edge, those of 8 voxels or
    more; ``[]``: no REV curve). With ``check_only``, inputs and parameters are checked and
    nothing runs (returns None).

    Raises
    ------
    StoreError
        ``finer`` is missing, unfinished or not a simulate results store, or lacks what its
        route needs (a conduction solve where it had upscaled phases, its labels for the REV).
    ConfigError
        REV block sizes larger than the finer scan.
    """
    options = settings.storage_options(finer)
    parent = store_parent(finer, "finer", storage_options=options)
    made = read_record(finer, storage_options=options) or {}
    if made.get("stage") != "simulate":
        raise StoreError(
            f"{finer}: field 'ooc_stage/stage' is {made.get('stage')!r}; upscale reads a simulate "
            "results store (the finer scan's)"
        )
    solved = sorted(zarr.open_group(finer, mode="r", storage_options=options or None)["simulate"])
    route = "blocks" if "blocks" in solved else "whole"
    finer_summary = made.get("summary", {})
    chain = sorted(finer_summary.get("upscaled") or {})
    if chain and "conductivity" not in made["parameters"]["properties"]:
        raise StoreError(
            f"{finer}: has upscaled phases {chain} but no conduction solve; its D_eff/D0 with "
            "them comes from one (simulate it with the conductivity property)"
        )
    parameters = {
        "phase": phase,
        "target": target,
        "statistic": statistic,
        "rev_block_sizes": rev_block_sizes,
    }
    labels_url = next((p["url"] for p in made.get("parents", []) if p["role"] == "labels"), None)
    if labels_url is None:
        raise StoreError(f"{finer}: field 'ooc_stage/parents' names no labels store")
    volume = open_volume(labels_url, storage_options=settings.storage_options(labels_url))
    voxel_m = as_volume(volume).voxel_size_m
    sizes: list[int] = []
    if route == "blocks":
        edge = int(made["parameters"]["block_shape"])
        default = [b for b in (edge // 4, edge // 2, edge) if 8 <= b <= min(volume.shape)]
        sizes = sorted(set(default if rev_block_sizes is None else rev_block_sizes))
        if sizes and max(sizes) > min(volume.shape):
            raise ConfigError(
                f"rev_block_sizes: {sizes} exceed the finer scan's smallest edge "
                f"{min(volume.shape)} voxels ({labels_url})"
            )
        if sizes and "solver" not in finer_summary:
            raise StoreError(
                f"{finer}: field 'ooc_stage/summary/solver' is missing (an older simulate "
                "store); re-run its simulate stage, or pass rev_block_sizes=[]"
            )

    def body(ctx: Context) -> Product:
        opts = ctx.storage_options
        group = open_results_store(ctx.url, "upscale", ctx.digest, storage_options=opts)
        record = make_record(
            "upscale",
            parameters=parameters,
            inputs=[{"source": parent.url, "digest": parent.digest}],
            run_id=run_id,
        )

        def properties() -> xr.Dataset:
            if route == "whole":
                return _from_whole(finer, options, solved, volume, finer_summary).to_dataset()
            maps = read_group(finer, "simulate/blocks", storage_options=options)
            ds = _from_block_map(maps, finer_summary, statistic).to_dataset()
            relations, skipped = _relations(maps, finer_summary)
            ds.attrs["relations"] = json.dumps({q: r.to_dict() for q, r in relations.items()})
            ds.attrs["relations_skipped"] = json.dumps(skipped)
            return ds

        def rev() -> xr.Dataset:
            solver = finer_summary["solver"]
            wanted = [_REV_NAMES[p] for p in made["parameters"]["properties"]]
            return rev_curve(
                volume.data,
                sizes,
                voxel_size=voxel_m,
                properties=wanted,
                pore_label=int(solver["pore_label"]),
                phase_values=_by_label(solver["phase_values"])
                if "conductivity" in wanted
                else None,
                porous_phases=_by_label(solver["porous_phases"]) or None,
            )

        parts = {"properties": properties, **({"rev": rev} if sizes else {})}
        write_parts(
            group,
            ctx.url,
            parts,
            prefix="upscale",
            provenance=record,
            storage_options=opts,
            desc=f"upscale {phase}",
            progress=progress,
        )
        stored = read_group(ctx.url, "upscale/properties", storage_options=opts)
        summary = {
            "phase": phase,
            "target": target,
            "stands_for": f"{phase} of {target}",
            "finer": parent.url,
            "finer_scale": made.get("modality"),
            "route": route,
            "upscaled_in_finer": chain,
            "source": stored.attrs["source"],
            "n_blocks": int(stored.attrs["n_blocks"]),
            "rev_block_sizes": sizes,
            **_values(stored),
        }
        if route == "blocks":
            relations, skipped = stored_relations(stored)
            summary["relations"] = {
                q: {
                    "formula": r.formula(),
                    "form": r.form,
                    "scale": r.scale,
                    "rms_log_error": r.rms_log_error,
                    "max_relative_error": r.max_relative_error,
                    "n_points": r.n_points,
                }
                for q, r in relations.items()
            }
            summary["relations_skipped"] = skipped
        numbers = {"porosity": summary["porosity"]}
        for key in ("relative_diffusivity", "conductivity", "permeability_m2", "permeability_mD"):
            numbers.update({f"{key}_{a}": v for a, v in summary.get(key, {}).items()})
        return Product(
            store_kind="results",
            summary=summary,
            numbers=numbers,
            sample_id=made.get("sample_id"),
            modality=made.get("modality"),
        )

    return run_stage(
        "upscale",
        code_version=CODE_VERSION,
        output=output,
        parameters=parameters,
        parents=[parent],
        settings=settings,
        body=body,
        check_only=check_only,
    )


def stored_relations(ds: xr.Dataset) -> tuple[dict[str, Relation], dict[str, str]]:
    """The relations of an upscale store's ``upscale/properties`` group (``ds``), by quantity,
    and why the others were not fitted (both empty for a whole-solve finer scan)."""
    relations = json.loads(ds.attrs.get("relations", "{}"))
    skipped = json.loads(ds.attrs.get("relations_skipped", "{}"))
    return {q: Relation.from_dict(d) for q, d in relations.items()}, skipped


def _relations(
    maps: xr.Dataset, summary: dict[str, Any]
) -> tuple[dict[str, Relation], dict[str, str]]:
    """The best relation per quantity of the block map ``maps``, calibrated to the map solved as
    one coarse grid; and, per quantity without one, why."""
    wanted = [q for q in RELATION_QUANTITIES if q in maps]
    if summary.get("upscaled"):
        why = (
            "the finer scan has upscaled phases of its own: its blocks' porosity is the resolved "
            "pore only"
        )
        return {}, dict.fromkeys(wanted, why)
    relations, skipped = {}, {}
    for q in wanted:
        try:
            effective = upscale_blocks(maps, q).effective
            relations[q] = calibrate_relation(fit_relations(maps, q)[0], maps, effective)
        except ValueError as err:  # too few usable blocks, unequal blocks, no percolation
            skipped[q] = str(err)
    return relations, skipped


def _by_label(values: dict[str, Any]) -> dict[int, Any]:
    """Per-label solver values as stored in a simulate summary (JSON keys, lists for triples;
    a per-voxel field is kept as its description)."""
    return {
        int(k): tuple(v) if isinstance(v, list) else v if isinstance(v, str) else float(v)
        for k, v in values.items()
    }


def _values(ds: xr.Dataset) -> dict[str, Any]:
    """The transferred values per axis, as the summary holds them."""
    out: dict[str, Any] = {"porosity": float(ds.attrs["porosity"])}
    names = {
        "relative_diffusivity": "relative_diffusivity",
        "tortuosity": "tortuosity",
        "conductivity": "conductivity",
        "permeability": "permeability_m2",
    }
    for var, key in names.items():
        if var in ds:
            out[key] = {a: float(ds[var].sel(direction=a)) for a in AXES}
    if "permeability_m2" in out:
        out["permeability_mD"] = {a: k / MILLIDARCY_M2 for a, k in out["permeability_m2"].items()}
    return out


def _with_sub_resolution(
    props: PhaseProperties, summary: dict[str, Any], relative: tuple[float, float, float] | None
) -> PhaseProperties:
    """A finer scan with upscaled phases of its own: its D_eff/D0 from the conduction solve
    (``relative``) and its total porosity."""
    if not summary.get("upscaled"):
        return props
    assert relative is not None
    tensor = props.conductivity_tensor
    return dataclasses.replace(
        props,
        porosity=float(summary["total_porosity"]),
        relative_diffusivity=relative,
        diffusivity_tensor=None if tensor is None else tensor / summary["pore_value"],
        source=f"{props.source}; D_eff/D0 from the conduction solve with the upscaled "
        + ", ".join(sorted(summary["upscaled"])),
    )


def _from_whole(
    url: str,
    options: dict[str, Any],
    solved: list[str],
    volume: xr.DataArray,
    summary: dict[str, Any],
) -> PhaseProperties:
    """Whole-volume solves of the finer store (of ``volume``), as the solvers' result objects,
    through :func:`ooc.upscale.from_results`."""
    voxel_m = as_volume(volume).voxel_size_m
    diffusion = (
        _tortuosity(read_group(url, "simulate/tortuosity", storage_options=options))
        if "tortuosity" in solved
        else None
    )
    conduction = (
        _conduction(
            read_group(url, "simulate/conductivity", storage_options=options), volume, summary
        )
        if "conductivity" in solved
        else None
    )
    flow = (
        _permeability(read_group(url, "simulate/permeability", storage_options=options), voxel_m)
        if "permeability" in solved
        else None
    )
    props = from_results(diffusion=diffusion, conduction=conduction, flow=flow)
    relative = None
    if conduction is not None and summary.get("upscaled"):
        pore = float(summary["pore_value"])
        relative = tuple(conduction.effective[a] / pore for a in AXES)
    return _with_sub_resolution(props, summary, relative)  # type: ignore[arg-type]


def _from_block_map(maps: xr.Dataset, summary: dict[str, Any], statistic: str) -> PhaseProperties:
    """The finer block map ``maps`` through :func:`ooc.upscale.from_block_map`."""
    if summary.get("upscaled"):
        maps = maps.assign(relative_diffusivity=maps["conductivity"] / summary["pore_value"])
    props = from_block_map(maps, statistic=statistic)
    return _with_sub_resolution(props, summary, props.relative_diffusivity)


# The stored scalars of a whole solve, back as the solvers' result objects (what the stores do
# not keep - inlet/outlet fluxes, the last change, the stop reason - is NaN or "stored").


def _info(ds: xr.Dataset, d: str) -> ConvergenceInfo:
    v = ds.sel(direction=d)
    return ConvergenceInfo(
        iterations=int(v["iterations"]),
        residual=float(v["residual"]),
        flux_imbalance=float(v["flux_imbalance"]),
        property_change=math.nan,
        converged=bool(v["converged"]),
        time_s=float(v["solve_time_s"]),
        stop_reason="stored",
    )


def _directions(ds: xr.Dataset) -> list[str]:
    return [str(d) for d in ds["direction"].values]


def _conduction_direction(
    ds: xr.Dataset, d: str, effective: str, relative: str
) -> ConductionDirection:
    v = ds.sel(direction=d)
    return ConductionDirection(
        direction=d,
        effective=float(v[effective]),
        relative=float(v[relative]),
        tensor_column=np.asarray(v["tensor_column"].values, dtype=float),
        percolating=bool(v["percolating"]),
        flux_in=math.nan,
        flux_out=math.nan,
        info=_info(ds, d),
    )


def _tortuosity(ds: xr.Dataset) -> TortuosityResult:
    porosity = float(ds.attrs["porosity"])
    out = {}
    for d in _directions(ds):
        c = _conduction_direction(ds, d, "relative_diffusivity", "relative_diffusivity")
        out[d] = TortuosityDirection(
            direction=d,
            relative_diffusivity=c.effective,
            tortuosity=float(ds["tortuosity"].sel(direction=d)),
            porosity=porosity,
            percolating=c.percolating,
            tensor_column=c.tensor_column,
            info=c.info,
            conduction=c,
        )
    return TortuosityResult(directions=out, porosity=porosity)


def _conduction(ds: xr.Dataset, volume: xr.DataArray, summary: dict[str, Any]) -> ConductionResult:
    dirs = {
        d: _conduction_direction(ds, d, "effective_conductivity", "relative_conductivity")
        for d in _directions(ds)
    }
    return ConductionResult(
        directions=dirs,
        reference=float(ds.attrs["reference"]),
        phase_values=_by_label(summary.get("solver", {}).get("phase_values", {})),
        shape=tuple(volume.shape),  # type: ignore[arg-type]
        voxel_size=as_volume(volume).voxel_size_m,  # type: ignore[arg-type]
    )


def _permeability(ds: xr.Dataset, voxel_m: tuple[float, ...]) -> PermeabilityResult:
    porosity = float(ds.attrs["porosity"])
    out = {}
    for d in _directions(ds):
        v = ds.sel(direction=d)
        out[d] = FlowDirection(
            direction=d,
            permeability_m2=float(v["permeability"]),
            permeability_mD=float(v["permeability_mD"]),
            permeability_voxel2=math.nan,
            porosity=porosity,
            percolating=bool(v["percolating"]),
            flow_rate_in=math.nan,
            flow_rate_out=math.nan,
            info=_info(ds, d),
        )
    return PermeabilityResult(directions=out, porosity=porosity, voxel_size=voxel_m)  # type: ignore[arg-type]
