"""The ``ooc`` command line: one verb per stage, plus ``run`` for the whole pipeline.

Every verb reads the configuration (``ooc.config``); ``--data-dir``, ``--scheduler`` and
``--config`` override it. A stage verb checks its inputs, then runs its stage on the Dask
cluster: as a Prefect flow when a Prefect server is configured (``PREFECT_API_URL``), directly
otherwise. ``run`` and ``reprocess`` always run Prefect flows, with Prefect's temporary local
API when no server is configured (its database then lives under the data folder).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from ooc.config import Settings, load_settings
from ooc.errors import ConfigError, OocError
from ooc_flows.services import end_orphaned_servers, mark_verb, prefect_server_configured

__all__ = ["main"]


def _triple(text: str) -> list[float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one number or three (z,y,x)")
    return parts


def _ints(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected integers separated by commas"
        ) from None


def _key_values(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--acquisition {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# optional packages and the extra that installs them, for a one-line hint
_EXTRAS = {
    "s3fs": '; install it with: pip install "ooc[s3]"',
    "torch": '; install it with: pip install torch==2.13.0 "ooc[torch]" (CPU build first)',
    "safetensors": '; install it with: pip install "ooc[torch]"',
    "cupy": '; install it with: pip install "ooc[gpu]"',
}


def _prepare_prefect(settings: Settings, *, debug: bool) -> None:
    """Prefect's local API keeps its SQLite database under the data folder; no telemetry; its
    failure tracebacks only with ``--debug`` (ooc prints the reason in one line)."""
    os.environ.setdefault("PREFECT_HOME", str(Path(settings.data_dir).resolve() / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Dask's own INFO logs (cluster start and stop) would reach Prefect's console handler
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if debug:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    else:  # a failure's reason is printed once, as one line, by main()
        os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"
    # the temporary server needs longer than the default 20 s on a busy 2-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _before_flow() -> None:
    """What a verb does just before it runs a Prefect flow: end the temporary Prefect servers
    of killed verbs, and make the folder of Prefect's local database (before Prefect is
    imported)."""
    end_orphaned_servers()
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


_FLOWS = {
    "ingest": ("ooc_flows.ingest", "ingest_flow"),
    "features": ("ooc_flows.features", "features_flow"),
    "train": ("ooc_flows.segment", "train_flow"),
    "segment": ("ooc_flows.segment", "segment_flow"),
    "measure": ("ooc_flows.measure", "measure_flow"),
    "simulate": ("ooc_flows.simulate", "simulate_flow"),
    "upscale": ("ooc_flows.upscale", "upscale_flow"),
}


def _run_stage(
    stage: str, arguments: dict[str, Any], args: argparse.Namespace, settings: Settings
) -> dict[str, Any]:
    """Check the stage's inputs and parameters first (a mistake is one line within a couple of
    seconds, before any service starts), then run it: as a Prefect flow when a Prefect server
    is configured (the run shows there), otherwise directly on the Dask cluster (a temporary
    Prefect API would only add seconds and record the run where nobody looks)."""
    from ooc.cluster import discard_cluster, start_local_cluster
    from ooc_flows._execute import execute_stage, runs_on_threads, stage_function

    direct = not prefect_server_configured()
    # the cluster's workers start while the stage is imported and its inputs checked; if the
    # check fails, the cluster is closed at exit, after the error line is printed
    cluster = None
    if direct and not runs_on_threads(stage, settings):
        cluster = start_local_cluster(settings)
        atexit.register(discard_cluster, cluster)
    stage_function(stage)(**arguments, settings=settings, check_only=True)
    atexit.unregister(discard_cluster)
    if direct:
        end_orphaned_servers()
        return execute_stage(stage, arguments, _overrides(args), cluster=cluster)
    import importlib

    _before_flow()
    module, name = _FLOWS[stage]
    flow = getattr(importlib.import_module(module), name)
    return flow(**arguments, settings_overrides=_overrides(args))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in {"data_dir": args.data_dir, "scheduler": args.scheduler}.items() if v}


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    metadata: dict[str, Any] = {}
    if args.metadata:
        metadata = json.loads(Path(args.metadata).read_text())
    given = {
        "sample_id": args.sample_id,
        "modality": args.modality,
        "kind": args.kind,
        "voxel_size": args.voxel_size,
        "unit": args.unit,
    }
    metadata.update({k: v for k, v in given.items() if v is not None})
    if args.phases:
        metadata["labels"] = _names(args.phases, "--phases")
        metadata.setdefault("kind", "labels")
    metadata.setdefault("kind", "grey")
    metadata.setdefault("unit", "micrometer")
    if args.acquisition:
        metadata["acquisition"] = {
            **metadata.get("acquisition", {}),
            **_key_values(args.acquisition),
        }
    reader_options = {
        k: v
        for k, v in {
            "shape": tuple(args.shape) if args.shape else None,
            "dtype": args.dtype,
            "byte_order": args.byte_order,
            "offset": args.offset,
            "dataset": args.dataset,
        }.items()
        if v is not None
    }
    out = _run_stage(
        "ingest",
        {
            "source": args.source,
            "output": args.output,
            "metadata": metadata,
            "reader_options": reader_options,
            "chunks": args.chunks,
            "levels": args.levels,
        },
        args,
        settings,
    )
    report = out["summary"]
    verb = "finished (resumed)" if report["resumed"] else "written"
    if out["skipped"]:
        verb = "already complete"
    print(
        f"{out['url']}: {verb}; shape {tuple(report['shape'])} {report['dtype']}, chunks "
        f"{tuple(report['chunks'])}, {report['levels']} levels; {report['chunks_written']} chunks "
        f"written, {report['chunks_kept']} kept, {report['regions_skipped']} regions already done; "
        f"{report['seconds']:.1f} s"
    )
    return 0


def _cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from ooc.io import VolumeStore

    store = VolumeStore.open(args.store, storage_options=settings.storage_options(args.store))
    attrs = store.attrs
    records = attrs.get("ooc_history", [])
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(f"{args.store}  ({attrs.get('ooc_store', {}).get('status', 'unknown')})")
    for i, rec in enumerate(records, 1):
        print(
            f"[{i}] {rec['step']} at {rec['time']} on {rec['host']} by {rec.get('user')}, "
            f"ooc {rec['ooc_version']}" + (f", run {rec['run_id']}" if rec.get("run_id") else "")
        )
        for inp in rec.get("inputs", []):
            print(
                f"    input {inp.get('source')}: sha256 {inp.get('sha256_tree')} "
                f"({inp.get('files')} file(s), {inp.get('bytes')} bytes)"
            )
        print(f"    parameters {json.dumps(rec.get('parameters', {}), sort_keys=True)}")
    return 0


def _cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from ooc import catalog

    if args.catalog_cmd == "register":
        entry = catalog.register(
            args.store,
            catalog_url=settings.resolved_catalog_url,
            storage_options=settings.storage_options(args.store),
        )
        print(f"registered {entry.url} ({entry.sample_id}, {entry.modality})")
        return 0
    found = catalog.search(
        catalog_url=settings.resolved_catalog_url,
        sample=args.sample,
        modality=args.modality,
        kind=args.kind,
        stage=args.stage,
        min_voxel=args.min_voxel,
        max_voxel=args.max_voxel,
        voxel_unit=args.voxel_unit,
        dtype=args.dtype,
        since=dt.datetime.fromisoformat(args.since) if args.since else None,
        until=dt.datetime.fromisoformat(args.until) if args.until else None,
        where=args.where or None,
    )
    if args.json:
        print(found.to_json(orient="records", date_format="iso", indent=2))
        return 0
    for row in found.itertuples(index=False):
        shape = "x".join(str(v) for v in (row.shape_z, row.shape_y, row.shape_x))
        print(
            f"{row.created:%Y-%m-%d %H:%M}  {row.sample_id or '-':<16} {row.modality or '-':<8} "
            f"{row.store_kind:<13} {row.stage or '-':<9} {shape if pd.notna(row.shape_z) else '':>14}  "
            f"{row.url}"
        )
    print(f"{len(found)} store(s)", file=sys.stderr)
    return 0


def _cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    from ooc.synth import PHASES, default_sample, write_sample
    from ooc.synth.scribbles import write_scribbles

    spec = default_sample(seed=args.seed, shape=tuple(args.shape) if args.shape else None)
    out = write_sample(spec, Path(args.output), scales=args.scales)
    print(f"synthetic sample written to {out.parent} (described in {out})")
    if "MicroCT" in (args.scales or ["MicroCT"]):
        strokes = write_scribbles(out.parent, fraction=args.scribbles, seed=args.seed)
        names = ", ".join(f"{i + 1} {n}" for i, n in enumerate(PHASES["MicroCT"]))
        print(f"  MicroCT scribbles for ooc train: {strokes} (values: {names})")
    return 0


def _print_measurements(m: dict[str, Any]) -> None:
    unit = {"micrometer": "µm", "nanometer": "nm"}.get(m["unit"], m["unit"])
    fractions = ", ".join(f"{k} {v:.4f}" for k, v in m["fractions"].items())
    ssa = ", ".join(f"{k} {v:.4g}" for k, v in m["ssa"].items())
    d10, d50, d90 = m["pore_d10_d50_d90"]
    obj = m["objects"]
    print(f"  phase fractions: {fractions}")
    print(f"  specific surface area (1/{unit}, Crofton): {ssa}")
    print(
        "  pore space connected face to face (z, y, x): "
        + ", ".join(f"{v:.3f}" for v in m["pore_percolating"])
    )
    print(f"  pore size D10/D50/D90: {d10:g}/{d50:g}/{d90:g} {unit}")
    print(
        f"  {obj['phase']}: {obj['count']} objects, {obj['inside']} inside the volume, D50 {obj['d50']:.3g} {unit}"
    )
    print(f"  results: {m['results']}, {m['objects_table']}, pictures {', '.join(m['pictures'])}")


def _done(out: dict[str, Any]) -> str:
    """How a stage went: its time, or that its complete output was already there."""
    if out["skipped"]:
        return f"already done (complete output in {out['url']})"
    return f"{out['stage']} done in {out['seconds']:.1f} s"


def _cmd_measure(args: argparse.Namespace, settings: Settings) -> int:
    out = _run_stage(
        "measure",
        {
            "labels": args.labels,
            "output": args.results,
            "pore": args.pore,
            "objects": args.objects,
            "connectivity": args.connectivity,
        },
        args,
        settings,
    )
    print(f"{args.labels}: {_done(out)}")
    _print_measurements({**out["summary"], "results": out["url"]})
    return 0


def _name_values(items: list[str], option: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ConfigError(f"{option} {item!r}: expected PHASE=NUMBER")
    return out


def _name_stores(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, store = item.partition("=")
        if not sep or not name or not store:
            raise ConfigError(f"--upscaled {item!r}: expected PHASE=STORE")
        out[name] = store
    return out


def _print_simulation(s: dict[str, Any]) -> None:
    def axes(d: dict[str, float], fmt: str) -> str:
        return ", ".join(f"{k} {format(v, fmt)}" for k, v in d.items())

    if s["route"] == "blocks":
        print(
            f"  block-wise property maps ({s['blocks']} blocks) in {s['results']} (simulate/blocks)"
        )
        whole = s.get("whole_volume") or {}
        if "skipped" in whole:
            print(f"  whole volume: not solved over the map ({whole['skipped']})")
        elif "tau" in whole:
            print(f"  whole volume by a coarse solve over the map: tau {axes(whole['tau'], '.3f')}")
        if "permeability_mD" in whole:
            print(f"  whole volume permeability (mD): {axes(whole['permeability_mD'], '.4g')}")
        return

    if "tau" in s:
        print(
            f"  tortuosity factor: {axes(s['tau'], '.3f')}  (D_eff/D0 {axes(s['relative_diffusivity'], '.4f')})"
        )
    if "relative_conductivity" in s:
        print(f"  relative conductivity: {axes(s['relative_conductivity'], '.4f')}")
    if "permeability_mD" in s:
        print(f"  permeability (mD): {axes(s['permeability_mD'], '.4g')}")
    for phase, u in (s.get("upscaled") or {}).items():
        pv = u.get("per_voxel")
        if pv:
            phi = pv["porosity"]
            print(
                f"  {phase} per voxel (from {u['store']}): porosity {phi['mean']:.3f} ± "
                f"{phi['std']:.3f} ({phi['min']:.3f}-{phi['max']:.3f})"
            )
            for formula in pv["relations"].values():
                print(f"    {formula}")
        else:
            print(f"  {phase} (from {u['store']}): porosity {u['porosity']:.3f}")
    if "total_porosity" in s:
        print(f"  total porosity: {s['total_porosity']:.3f}")
    print(f"  converged: {'yes' if s['converged'] else 'NO (see the results store)'}")


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from ooc.stages import plan_simulation
    from ooc.stages.inputs import open_input, phase_values_by_name

    phase_values = _name_values(args.phase_value, "--phase-value") or None
    porous_phases = _name_values(args.porous, "--porous") or None
    if args.dry_run:
        volume, _ = open_input(args.labels, kind="labels", role="labels", settings=settings)
        named = {args.pore: 1.0, **(phase_values or {}), **(porous_phases or {})}
        phase_values_by_name(args.labels, volume, named)  # every phase named must exist
        shape = volume.shape
        plan = plan_simulation(shape, block_shape=args.block)
        gib = 2**30
        print(
            f"{args.labels}: {'x'.join(map(str, shape))} voxels, {plan['available'] / gib:.1f} GiB free"
        )
        for prop, route in plan["estimate"]["route"].items():
            whole = plan["estimate"]["whole"][prop] / gib
            print(f"  {prop}: whole volume {whole:.2f} GiB -> {route}")
        print(f"  route: {plan['route']}")
        return 0
    if not args.results:
        raise ConfigError("ooc simulate: give the results store to write (or --dry-run)")
    out = _run_stage(
        "simulate",
        {
            "labels": args.labels,
            "output": args.results,
            "pore": args.pore,
            "phase_values": phase_values,
            "porous_phases": porous_phases,
            "route": args.route,
            "block_shape": args.block,
            "properties": args.properties,
            **({"upscaled": _name_stores(args.upscaled)} if args.upscaled else {}),
            **({"per_voxel": True} if args.per_voxel else {}),
            **({"grey": args.grey} if args.grey else {}),
            **({"solid": args.solid} if args.solid else {}),
        },
        args,
        settings,
    )
    print(f"{args.labels}: {_done(out)} (route {out['summary']['route']})")
    _print_simulation({**out["summary"], "results": out["url"]})
    return 0


def _cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    out = _run_stage(
        "features",
        {"volume": args.volume, "output": args.output, "filter": args.filter, "sigma": args.sigma},
        args,
        settings,
    )
    group = out["summary"]["group"]
    print(
        f"{args.volume}: {_done(out)}; {args.filter} at sigma {args.sigma} in {out['url']}/{group}"
    )
    return 0


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    out = _run_stage(
        "train",
        {
            "volume": args.volume,
            "annotations": args.annotations,
            "model": args.model,
            "filters": json.loads(args.filters) if args.filters else None,
            "class_weight": args.class_weight,
            "class_names": _names(args.class_names, "--class-names"),
            "n_estimators": args.n_estimators,
            **({"n_features": args.select} if args.select is not None else {}),
        },
        args,
        settings,
    )
    s = out["summary"]
    names = ", ".join(f"{k}={v}" for k, v in s["class_names"].items()) or "unnamed"
    print(
        f"random forest saved to {out['url']}: {_done(out)}; classes {names}; "
        f"{s['labelled_voxels']} labelled voxels, {s['features']} features"
    )
    return 0


def _names(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        value, sep, name = item.partition("=")
        if not sep or not value.isdigit() or not name:
            raise ConfigError(f"{option} {item!r}: expected VALUE=NAME, e.g. 1=pore")
        out[value] = name
    return out


def _cmd_segment(args: argparse.Namespace, settings: Settings) -> int:
    from ooc.segment import format_regions

    out = _run_stage(
        "segment",
        {
            "volume": args.volume,
            "model": args.model,
            "output": args.output,
            "probability_dtype": args.probability_dtype,
            "prior": args.prior,
        },
        args,
        settings,
    )
    s = out["summary"]
    fractions = ", ".join(f"{n} {f:.3f}" for n, f in s["class_fractions"].items())
    print(f"{args.volume}: {_done(out)}; labels in {out['url']}")
    print(f"  probabilities {s['probabilities']}, uncertainty {s['uncertainty']}")
    if "scan_prior" in s:
        shares = ", ".join(
            f"{n} {f:.3f} (labels {s['training_prior'][n]:.3f})" for n, f in s["scan_prior"].items()
        )
        print(f"  class shares estimated from the scan: {shares}")
    print(f"  class fractions: {fractions}")
    print("  most uncertain regions (add labels there next):")
    print(format_regions(s["uncertain_regions"][:5], s["unit"]))
    return 0


def _cmd_upscale(args: argparse.Namespace, settings: Settings) -> int:
    out = _run_stage(
        "upscale",
        {
            "finer": args.finer,
            "output": args.output,
            "phase": args.phase,
            "target": args.target,
            "statistic": args.statistic,
        },
        args,
        settings,
    )
    s = out["summary"]
    print(f"{args.finer}: {_done(out)}; stands for {args.phase!r} of {args.target} in {out['url']}")
    for key in ("porosity", "relative_diffusivity", "conductivity", "permeability_m2"):
        value = s.get(key)
        if isinstance(value, dict):
            value = "/".join(f"{v:.4g}" for v in value.values()) + " (z/y/x)"
        if value is not None:
            print(f"  {key}: {value}")
    for fitted in (s.get("relations") or {}).values():  # of a block map, for --per-voxel
        print(f"  {fitted['formula']}")
    return 0


def _cmd_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    from ooc.stages.reprocess import stale_outputs

    stale_outputs(  # a bad stage name or catalog is one line, before any service starts
        catalog_url=settings.resolved_catalog_url, sample=args.sample, stage=args.stage
    )
    _before_flow()  # before Prefect is imported: it warns when its home folder is missing
    from ooc_flows.reprocess import reprocess_flow

    out = reprocess_flow(
        sample=args.sample,
        stage=args.stage,
        dry_run=args.dry_run,
        settings_overrides=_overrides(args),
    )
    print(out["text"])
    for done in out["redone"]:
        print(f"  redone {done['stage']} {done['url']} in {done['seconds']:.1f} s")
    return 0


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from ooc.report import write_report

    path = write_report(
        args.sample,
        args.output or f"{args.sample}.report.html",
        catalog_url=settings.resolved_catalog_url,
    )
    print(f"report of {args.sample} written to {path}")
    return 0


def _cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    import ooc
    from ooc.report import compare_samples, format_comparison, plot_comparison

    url = settings.resolved_catalog_url
    table = compare_samples(args.samples, catalog_url=url)
    print(format_comparison(table), end="")
    if args.output:
        trees = {
            s: ooc.open_results(sample=s, catalog_url=url) for s in dict.fromkeys(args.samples)
        }
        print(f"picture: {plot_comparison(table, trees, args.output)}")
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if args.example:
        from ooc.stages.spec import example_spec

        print(example_spec(args.seed, args.shape), end="")
        return 0
    if args.spec:
        from ooc.stages.spec import load_spec

        load_spec(args.spec)  # a spec error is one line, before any work
    _before_flow()  # before Prefect is imported: it warns when its home folder is missing
    from ooc_flows.pipeline import pipeline_flow

    summary = pipeline_flow(
        spec=args.spec, seed=args.seed, shape=args.shape, settings_overrides=_overrides(args)
    )
    print(summary["text"])
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ooc", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML configuration file (default $OOC_CONFIG or ./ooc.toml)")
    p.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    p.add_argument("--data-dir", help="where data, catalog and Prefect's local database live")
    p.add_argument(
        "--scheduler", help="Dask scheduler address (default: a LocalCluster for the run)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="a pipeline spec (YAML); without one, the synthetic main job")
    run.add_argument("spec", nargs="?", help="pipeline spec (schemas/pipeline.schema.json)")
    run.add_argument("--example", action="store_true", help="print the main job's spec")
    run.add_argument("--seed", type=int, default=0, help="synthetic sample (no spec)")
    run.add_argument("--shape", type=_ints, help="synthetic MicroCT shape Z,Y,X (no spec)")
    run.set_defaults(func=_cmd_run)

    synth = sub.add_parser("synth", help="write a synthetic three-scale sample as TIFF stacks")
    synth.add_argument("output")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--shape", type=_ints, help="MicroCT shape Z,Y,X")
    synth.add_argument("--scales", nargs="+", choices=["MicroCT", "FIB-SEM", "TEM"])
    synth.add_argument(
        "--scribbles", type=float, default=0.001, help="fraction of MicroCT voxels scribbled"
    )
    synth.set_defaults(func=_cmd_synth)

    ing = sub.add_parser("ingest", help="raw scan -> Zarr v3 / OME-Zarr volume store")
    ing.add_argument("source", help="folder of TIFF slices, .tif, .npy, .h5 or .raw file")
    ing.add_argument("output", help="store path or fsspec URL (s3://bucket/scan.zarr)")
    ing.add_argument("--metadata", help="JSON file with the volume metadata (schemas/volume)")
    ing.add_argument("--sample-id")
    ing.add_argument("--modality", help="MicroCT, FIB-SEM or TEM")
    ing.add_argument("--kind", choices=["grey", "labels"])
    ing.add_argument(
        "--phases",
        nargs="+",
        metavar="VALUE=NAME",
        help="phase names of a label scan, e.g. 0=pore 85=NMC 170=CBD (implies --kind labels)",
    )
    ing.add_argument("--voxel-size", type=_triple, help="one value or Z,Y,X in --unit")
    ing.add_argument("--unit", help="nm, um (µm), mm, m or the long names (default µm)")
    ing.add_argument("--acquisition", nargs="*", default=[], metavar="KEY=VALUE")
    ing.add_argument("--chunks", type=_ints, help="chunk shape Z,Y,X (default from config)")
    ing.add_argument("--levels", type=int, help="pyramid levels (default: until one chunk)")
    ing.add_argument("--shape", type=_ints, help="raw input: Z,Y,X")
    ing.add_argument("--dtype", help="raw input: e.g. uint16")
    ing.add_argument("--byte-order", choices=["little", "big"], help="raw input")
    ing.add_argument("--offset", type=int, help="raw input: header bytes to skip")
    ing.add_argument("--dataset", help="HDF5 input: the dataset's path")
    ing.set_defaults(func=_cmd_ingest)

    feat = sub.add_parser("features", help="write one filter-bank feature of a volume")
    feat.add_argument("volume")
    feat.add_argument("output", help="store to write the feature to")
    feat.add_argument(
        "--filter",
        required=True,
        help="gaussian, gradient, laplacian, dog, hessian, structure, sobel, variance, entropy",
    )
    feat.add_argument("--sigma", type=float, required=True, help="scale, voxels")
    feat.set_defaults(func=_cmd_features)

    train = sub.add_parser(
        "train", help="random forest from sparse labels (label TIFF/store or JSON)"
    )
    train.add_argument("volume")
    train.add_argument("annotations")
    train.add_argument("model", help="folder to save the model in (skops + JSON)")
    train.add_argument(
        "--filters",
        help='JSON, e.g. {"gaussian": [0, 1, 3.5], "hessian": [1.6]} (default: ilastik\'s)',
    )
    train.add_argument("--class-weight", choices=["balanced"], help="balance rare classes")
    train.add_argument(
        "--class-names",
        nargs="*",
        default=[],
        metavar="VALUE=NAME",
        help="phase names of the label values, e.g. 1=pore 2=grain",
    )
    train.add_argument("--n-estimators", type=int, default=100, help="trees in the forest")
    train.add_argument(
        "--select",
        type=int,
        metavar="N",
        help="keep only the filters of the N most important feature channels (faster segmenting)",
    )
    train.set_defaults(func=_cmd_train)

    seg = sub.add_parser("segment", help="labels, probabilities and uncertainty of a whole volume")
    seg.add_argument("volume")
    seg.add_argument("model")
    seg.add_argument("output", help="label store to write (.zarr; probabilities beside)")
    seg.add_argument(
        "--probability-dtype", choices=["float16", "float32", "uint8"], default="float16"
    )
    seg.add_argument(
        "--prior",
        choices=["training", "scan"],
        default="training",
        help="class shares to follow: the training labels' or the scan's own (thin classes)",
    )
    seg.set_defaults(func=_cmd_segment)

    meas = sub.add_parser(
        "measure", help="fractions, surfaces, connectivity, sizes of a label store"
    )
    meas.add_argument("labels", help="label volume store")
    meas.add_argument("results", help="results store to write (.zarr; tables and pictures beside)")
    meas.add_argument("--pore", help="phase name of the pore space (default the first phase)")
    meas.add_argument("--objects", help="phase split into objects (default the second phase)")
    meas.add_argument("--connectivity", type=int, choices=[6, 18, 26], default=6)
    meas.set_defaults(func=_cmd_measure)

    sim = sub.add_parser("simulate", help="tortuosity, conductivity, permeability of a label store")
    sim.add_argument("labels", help="label volume store")
    sim.add_argument("results", nargs="?", help="results store to write (.zarr)")
    sim.add_argument("--pore", default="pore", help="phase name of the pore space")
    sim.add_argument(
        "--phase-value",
        nargs="*",
        default=[],
        metavar="PHASE=VALUE",
        help="conductivity per phase (default pore=1, others 0)",
    )
    sim.add_argument(
        "--porous",
        nargs="*",
        default=[],
        metavar="PHASE=K_M2",
        help="Brinkman phases and their permeability in m²",
    )
    sim.add_argument(
        "--upscaled",
        nargs="*",
        default=[],
        metavar="PHASE=STORE",
        help="phases whose values come from an upscale store (ooc upscale)",
    )
    sim.add_argument("--route", choices=["auto", "whole", "blocks"], default="auto")
    sim.add_argument(
        "--properties",
        nargs="+",
        choices=["tortuosity", "conductivity", "permeability"],
        help="what to compute (default all three)",
    )
    sim.add_argument("--block", type=int, default=64, help="block edge for the block-wise route")
    sim.add_argument(
        "--per-voxel",
        action="store_true",
        help="upscaled phases per voxel: grey porosity through the upscale stores' relations",
    )
    sim.add_argument(
        "--grey", metavar="STORE", help="with --per-voxel: the grey scan (default: the segmented)"
    )
    sim.add_argument(
        "--solid", metavar="NAME", help="with --per-voxel: the dense solid phase (its grey level)"
    )
    sim.add_argument("--dry-run", action="store_true", help="print the memory each route needs")
    sim.set_defaults(func=_cmd_simulate)

    up = sub.add_parser(
        "upscale", help="a finer scan's simulated properties as one phase of a coarser scan"
    )
    up.add_argument("finer", help="the finer scan's simulate results store")
    up.add_argument("output", help="upscale results store to write (.zarr)")
    up.add_argument("--phase", required=True, help="the coarser scan's phase it stands for")
    up.add_argument("--target", required=True, help="the coarser scan (e.g. MicroCT)")
    up.add_argument(
        "--statistic", choices=["mean", "geometric", "harmonic", "median"], default="mean"
    )
    up.set_defaults(func=_cmd_upscale)

    rep = sub.add_parser(
        "reprocess", help="redo the stored results the installed ooc would make differently"
    )
    rep.add_argument("--sample", help="sample id, * wildcards allowed")
    rep.add_argument(
        "--stage", choices=["ingest", "train", "segment", "measure", "simulate", "upscale"]
    )
    rep.add_argument("--dry-run", action="store_true", help="list what is stale and why")
    rep.set_defaults(func=_cmd_reprocess)

    report = sub.add_parser("report", help="one self-contained HTML report of a sample")
    report.add_argument("sample", help="sample id (as in the catalog)")
    report.add_argument("-o", "--output", help="HTML file (default SAMPLE.report.html)")
    report.set_defaults(func=_cmd_report)

    compare = sub.add_parser("compare", help="key numbers of samples side by side")
    compare.add_argument("samples", nargs="+", help="sample ids (as in the catalog)")
    compare.add_argument("-o", "--output", help="also draw a PNG comparing them")
    compare.set_defaults(func=_cmd_compare)

    hist = sub.add_parser("history", help="how a store was made (provenance)")
    hist.add_argument("store")
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=_cmd_history)

    cat = sub.add_parser("catalog", help="find stores")
    cat_sub = cat.add_subparsers(dest="catalog_cmd", required=True)
    search = cat_sub.add_parser("search", help="list stores matching all filters, newest first")
    search.add_argument("--sample", help="sample id, * wildcards allowed")
    search.add_argument("--modality")
    search.add_argument("--kind", choices=["grey", "labels"], help="volume kind")
    search.add_argument("--min-voxel", type=float)
    search.add_argument("--max-voxel", type=float)
    search.add_argument("--voxel-unit", default="micrometer")
    search.add_argument("--dtype")
    search.add_argument("--since", help="ISO date/time")
    search.add_argument("--until", help="ISO date/time")
    search.add_argument("--stage", help="ingest, train, segment, measure, simulate")
    search.add_argument(
        "--where",
        nargs="*",
        default=[],
        metavar="CONDITION",
        help="conditions on key numbers, e.g. 'permeability_mD_z > 1' '0.2 <= porosity <= 0.4'",
    )
    search.add_argument("--json", action="store_true")
    reg = cat_sub.add_parser("register", help="add a store written elsewhere")
    reg.add_argument("store")
    for c in (search, reg):
        c.set_defaults(func=_cmd_catalog)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ooc`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, **_overrides(args))
        if args.config:
            os.environ["OOC_CONFIG"] = args.config  # flows re-read the same file
        _prepare_prefect(settings, debug=args.debug)
        mark_verb()
        return args.func(args, settings)
    except (OocError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        if args.debug:
            raise
        print(f"ooc {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        if args.debug:
            raise
        hint = _EXTRAS.get((err.name or "").split(".")[0], "")
        print(f"ooc {args.command}: error: {err}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
