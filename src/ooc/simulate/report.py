"""The standard simulations of a label store, written to its results store.

:func:`simulate_store` estimates the memory of each route first, then solves the whole volume
when it fits (tortuosity factor of the pore phase, effective conductivity for the given phase
values, permeability with optional Brinkman phases) or computes block-wise property maps when
it does not, and writes ``simulate/<property>`` groups to the results store.
"""

from __future__ import annotations

import time
from typing import Any

import dask.array as da
import numpy as np
import psutil

from ooc.io.volume import open_volume
from ooc.provenance import make_record
from ooc.results import finish_step, finished_step, write_dataset
from ooc.simulate.blockwise import property_map
from ooc.simulate.conduction import conductivity, tortuosity
from ooc.simulate.memory import estimate_memory
from ooc.simulate.stokes import permeability
from ooc.units import metres_per_unit

__all__ = ["plan_simulation", "simulate_store"]


def _label_values(meta: dict[str, Any], names: dict[str, float]) -> dict[int, float]:
    by_name = {name: int(value) for value, name in (meta.get("labels") or {}).items()}
    out = {}
    for name, value in names.items():
        if name in by_name:
            out[by_name[name]] = float(value)
        elif name.isdigit():
            out[int(name)] = float(value)
        else:
            raise ValueError(f"phase {name!r} is not one of the store's phases {sorted(by_name)}")
    return out


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


def simulate_store(
    labels_url: str,
    results_url: str,
    *,
    pore: str = "pore",
    phase_values: dict[str, float] | None = None,
    porous_phases: dict[str, float] | None = None,
    route: str = "auto",
    block_shape: int = 64,
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Simulate transport through the label store at ``labels_url``.

    Parameters
    ----------
    pore
        Phase name of the pore space (diffusion, flow).
    phase_values
        Conductivity of each phase by name (any unit; SI gives SI); default 1 in the pore
        space and 0 elsewhere.
    porous_phases
        Phases that flow as Brinkman media, by name, with their permeability in m².
    route
        "whole", "blocks" or "auto" (whole when the memory estimate fits).
    block_shape
        Edge of the blocks of the block-wise route, voxels.

    Returns
    -------
    dict
        Per direction z, y, x: tortuosity factor, D_eff/D0, relative conductivity,
        permeability (m², mD), convergence; the route and its memory estimate.
    """
    started = time.perf_counter()
    volume = open_volume(labels_url, storage_options=storage_options)
    meta = volume.attrs
    metres = metres_per_unit(meta["unit"])
    voxel_m = tuple(v * metres for v in meta["voxel_size"])
    pore_label = _label_values(meta, {pore: 1.0}).popitem()[0]
    values = _label_values(meta, phase_values or {}) or {pore_label: 1.0}
    for value in da.unique(volume.data).compute():
        values.setdefault(int(value), 0.0)  # phases not named do not conduct
    brinkman = _label_values(meta, porous_phases or {})
    plan = plan_simulation(volume.shape, block_shape=block_shape)
    chosen = plan["route"] if route == "auto" else route
    parameters = {
        "labels": labels_url,
        "labels_made": meta["history"][:1],
        "pore": pore,
        "phase_values": phase_values,
        "porous_phases": porous_phases,
        "route": chosen,
        "block_shape": block_shape,
    }
    done = finished_step(results_url, "simulate", parameters, storage_options=storage_options)
    if done is not None:
        return done
    record = make_record(
        "simulate",
        parameters={k: v for k, v in parameters.items() if k != "labels_made"},
        inputs=[{"source": labels_url, "made_by": meta["history"][:1]}],
        run_id=run_id,
    )
    summary: dict[str, Any] = {"route": chosen, "memory": plan, "results": results_url}
    if chosen == "blocks":
        maps = property_map(
            volume.data,
            block_shape=block_shape,
            voxel_size=voxel_m,
            pore_label=pore_label,
            properties=("porosity", "permeability", "diffusivity", "conductivity"),
            phase_values=values,
            porous_phases=brinkman or None,
        )
        write_dataset(
            maps,
            results_url,
            group="simulate/blocks",
            provenance=record,
            storage_options=storage_options,
        )
        summary["blocks"] = int(np.prod([maps.sizes[d] for d in ("z", "y", "x")]))
    else:
        labels = volume.values
        tau = tortuosity(labels, pore_label, voxel_size=voxel_m)
        cond = conductivity(labels, values, voxel_size=voxel_m)
        perm = permeability(
            labels, pore_label=pore_label, voxel_size=voxel_m, porous_phases=brinkman or None
        )
        for name, result in (("tortuosity", tau), ("conductivity", cond), ("permeability", perm)):
            write_dataset(
                result.to_dataset(),
                results_url,
                group=f"simulate/{name}",
                provenance=record,
                storage_options=storage_options,
            )
        summary.update(
            porosity=float(tau.porosity),
            tau=tau.tau,
            relative_diffusivity=tau.relative_diffusivity,
            relative_conductivity=cond.relative,
            permeability_m2=perm.k_m2,
            permeability_mD=perm.k_mD,
            converged=bool(tau.converged and cond.converged and perm.converged),
        )
    summary["seconds"] = time.perf_counter() - started
    return finish_step(
        results_url, "simulate", parameters, summary, storage_options=storage_options
    )
