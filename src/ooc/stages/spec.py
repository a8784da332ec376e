"""Pipeline specs: one sample, its scans, and the stages to run on each (``ooc run SPEC.yaml``).

A spec is YAML validated against ``schemas/pipeline.schema.json`` before any work. Relative
paths in it resolve against the spec file's folder, or, when the spec asks for the synthetic
sample (``synthesize``), against the folder the sample is written to. Outputs go to
``<output>/<sample>/<scan>/``: ``volume.zarr``, ``model/``, ``segmentation.zarr`` (with its
probabilities and uncertainty beside it), ``measure.zarr``, ``simulate.zarr``, ``upscale.zarr``.

The scale chain: a scan that ``represents: {scan: S, phase: P}`` is a finer scan standing for the
sub-resolution phase P of scan S (TEM -> FIB-SEM -> MicroCT, any depth). It is simulated with
what S's simulation needs from it (its ``D_eff/D0`` - the tortuosity solve, or the conduction
solve where it has finer scans of its own - and, when S computes permeability, its permeability),
upscaled into its ``upscale.zarr``, and S's simulation takes P's values from there (S is
simulated with its defaults when the spec gives it no ``simulate``). Scans run finest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ooc.errors import ConfigError
from ooc.metadata import validate
from ooc.synth import PHASES, SEGMENT_FILTERS, default_sample

__all__ = ["ScanPlan", "example_spec", "load_spec", "scan_plans"]

_PROPERTIES = ("tortuosity", "conductivity", "permeability")


@dataclass(frozen=True)
class ScanPlan:
    """What to do with one scan of a spec, with every path resolved."""

    name: str
    source: str
    metadata: dict[str, Any]
    reader: dict[str, Any]
    chunks: list[int] | None
    folder: str
    segment: dict[str, Any] | None
    measure: dict[str, Any] | None
    simulate: dict[str, Any] | None
    represents: dict[str, Any] | None = None
    """``scan``, ``phase`` (and the upscale stage's options) of the coarser scan this one stands
    for, or None."""
    upscaled: dict[str, str] = field(default_factory=dict)
    """Phase -> the upscale store of the finer scan that stands for it."""

    @property
    def upscale(self) -> str:
        """The store this scan's results are upscaled into (when it ``represents`` a phase)."""
        return f"{self.folder}/upscale.zarr"

    @property
    def volume(self) -> str:
        """The ingested scan's store."""
        return f"{self.folder}/volume.zarr"

    @property
    def labels(self) -> str:
        """The label volume measure and simulate read: the segmentation, or the scan itself."""
        return f"{self.folder}/segmentation.zarr" if self.segment else self.volume


def example_spec(seed: int = 0, shape: list[int] | None = None) -> str:
    """The main job as a spec (YAML text): the synthetic three-scale sample, MicroCT segmented
    from scribbles on 0.1% of its voxels, every scale measured, and the scale chain simulated
    finest first: TEM stands for FIB-SEM's nano-porous solid, FIB-SEM for MicroCT's micro-porous
    phase (their properties derived, not typed in).

    ``shape`` is MicroCT's (default 128³); the finer scans shrink with it (FIB-SEM 96³ and TEM
    64³ at the default, each edge scaled by MicroCT's over 128, at least 32 and 24)."""
    synthesize: dict[str, Any] = {"seed": seed, "shape": list(shape) if shape else None}
    if shape:
        for key, default, least in (("fibsem_shape", 96, 32), ("tem_shape", 64, 24)):
            synthesize[key] = [max(least, round(default * n / 128)) for n in shape]
    sizes = {k: tuple(v) for k, v in synthesize.items() if k != "seed" and v}
    sample = default_sample(seed=seed, **sizes)
    scans: dict[str, Any] = {}
    for scale in sample.scales:
        phases = {str(i): n for i, n in enumerate(PHASES[scale.modality])}
        scan: dict[str, Any] = {
            "source": f"{scale.modality}/grey",
            "modality": scale.modality,
            "voxel_size": list(scale.voxel_size),
            "unit": scale.unit,
        }
        if scale.modality == "MicroCT":
            scan["segment"] = {
                "annotations": "MicroCT/scribbles.tif",
                "train": {
                    "class_names": {str(int(k) + 1): v for k, v in phases.items()},
                    "filters": SEGMENT_FILTERS,
                    "n_estimators": 100,
                },
                "truth": "MicroCT/labels",
            }
            scan["measure"] = {"pore": "pore", "objects": "solid grain"}
            scan["simulate"] = {"pore": "pore"}
        else:
            # the finer scans are taken as segmented (their ground-truth labels)
            scan.update(source=f"{scale.modality}/labels", kind="labels", phases=phases)
            scan["measure"] = {"pore": "pore", "objects": "pore"}
            if scale.modality == "FIB-SEM":
                scan["represents"] = {"scan": "MicroCT", "phase": "micro-porous"}
                scan["simulate"] = {"pore": "pore", "properties": list(_PROPERTIES)}
            else:
                scan["represents"] = {"scan": "FIB-SEM", "phase": "nano-porous solid"}
                scan["simulate"] = {"pore": "pore", "properties": ["tortuosity", "permeability"]}
        scans[scale.modality] = scan
    doc = {
        "sample": f"synthetic-{seed}",
        "synthesize": {**synthesize, "scribbles": 0.001},
        "scans": scans,
    }
    header = (
        "# ooc pipeline spec (schemas/pipeline.schema.json); run it with: ooc run spec.yaml\n"
        "# The synthetic sample is written first; with real scans, drop 'synthesize' and give\n"
        "# each scan's source relative to this file (TIFF folder or file, .raw, .h5, .npy).\n"
        "# 'represents' chains the scales: a finer scan's simulation is upscaled into the\n"
        "# phase of the coarser scan it stands for, finest first.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def load_spec(path: str) -> dict[str, Any]:
    """Read and validate a spec file.

    Raises
    ------
    ConfigError, MetadataError
        One line naming the file and the offending field.
    """
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: spec file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with 'sample' and 'scans'")
    validate(doc, "pipeline", source=path)
    _chain(doc, path)
    return doc


def _resolve(path: str, base: Path) -> str:
    return path if "://" in path or Path(path).is_absolute() else str(base / path)


def _stage_options(scan: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """A stage's parameters (``{}``: its defaults), or None when absent or ``false``."""
    value = scan.get(stage)
    return None if value is None or value is False else dict(value)


def _phases(scan: dict[str, Any]) -> list[str] | None:
    """A scan's phase names as the spec gives them (a labels scan's ``phases``, a trained
    segmentation's class names), or None when only its store will tell."""
    if scan.get("phases"):
        return list(scan["phases"].values())
    names = ((scan.get("segment") or {}).get("train") or {}).get("class_names")
    return list(names.values()) if names else None


def _chain(
    spec: dict[str, Any], source: str
) -> tuple[dict[str, dict[str, Any] | None], dict[str, int]]:
    """Check the scale chain (``represents``); return each scan's simulate options (with the
    properties a finer scan needs added) and its depth (steps up the chain to a scan that stands
    for none). Raises a one-line :class:`ConfigError` naming the field."""
    scans: dict[str, dict[str, Any]] = spec["scans"]

    def fail(where: str, message: str) -> NoReturn:
        raise ConfigError(f"{source}: field 'scans/{where}': {message}")

    finers: dict[str, list[str]] = {name: [] for name in scans}
    taken: dict[tuple[str, str], str] = {}
    for name, scan in scans.items():
        rep = scan.get("represents")
        if not rep:
            continue
        coarse, phase = rep["scan"], rep["phase"]
        if coarse == name:
            fail(f"{name}/represents/scan", "a scan cannot stand for a phase of itself")
        if coarse not in scans:
            fail(
                f"{name}/represents/scan",
                f"{coarse!r} is not a scan of this spec (its scans: {', '.join(scans)})",
            )
        target = scans[coarse]
        known = _phases(target)
        if known is not None and phase not in known:
            fail(
                f"{name}/represents/phase",
                f"{phase!r} is not a phase of scan {coarse!r} (its phases: {', '.join(known)})",
            )
        pore = (target.get("simulate") or {}).get("pore", "pore")
        if phase == pore:
            fail(
                f"{name}/represents/phase",
                f"{phase!r} is the pore phase of scan {coarse!r}; a finer scan stands for a "
                "sub-resolution phase",
            )
        if (coarse, phase) in taken:
            fail(
                f"{name}/represents",
                f"scan {taken[coarse, phase]!r} already stands for {phase!r} of {coarse!r}",
            )
        taken[coarse, phase] = name
        finers[coarse].append(name)
        if target.get("simulate") is False:
            fail(
                f"{coarse}/simulate",
                f"is false, but scan {name!r} stands for its phase {phase!r} (the upscaled "
                "values are for its simulation)",
            )
        if scan.get("simulate") is False:
            fail(
                f"{name}/simulate",
                f"is false, but the scan stands for {phase!r} of {coarse!r} (its simulation is "
                "what is upscaled)",
            )
    depth: dict[str, int] = {}
    for name in scans:
        seen = [name]
        while rep := scans[seen[-1]].get("represents"):
            if rep["scan"] in seen:
                fail(f"{name}/represents", f"{' -> '.join([*seen, rep['scan']])} is a cycle")
            seen.append(rep["scan"])
        depth[name] = len(seen) - 1
    options = {name: _stage_options(scan, "simulate") for name, scan in scans.items()}
    for name in sorted(scans, key=depth.__getitem__):  # coarsest first: a finer scan's needs
        rep = scans[name].get("represents")
        if not rep:
            if finers[name] and options[name] is None:  # a coarsest scan others stand for
                options[name] = {}
            continue
        target = options[rep["scan"]] or {}
        coarse_wants = target.get("properties") or _PROPERTIES
        need = {"conductivity" if finers[name] else "tortuosity"}
        if "permeability" in coarse_wants:
            need.add("permeability")
        mine = options[name]
        if mine is None:
            options[name] = {"properties": [p for p in _PROPERTIES if p in need]}
        elif "properties" in mine and not need <= set(mine["properties"]):
            fail(
                f"{name}/simulate/properties",
                f"lacks {sorted(need - set(mine['properties']))}, which the simulation of "
                f"{rep['scan']!r} needs from this scan",
            )
    return options, depth


def scan_plans(
    spec: dict[str, Any], *, base: str, output: str, source: str = "spec"
) -> list[ScanPlan]:
    """One :class:`ScanPlan` per scan of ``spec``, finest scale first (a scan after those that
    stand for its phases); relative sources resolve against ``base``, outputs go under
    ``output/<sample>/<scan>``. The scale chain is checked first (``source`` names the spec in
    errors)."""
    simulate, depth = _chain(spec, source)
    root = Path(output) / spec["sample"]
    plans = {}
    for name, scan in spec["scans"].items():
        vs = scan["voxel_size"]
        metadata = {
            "sample_id": spec["sample"],
            "modality": scan["modality"],
            "kind": scan.get("kind", "grey"),
            "voxel_size": [float(vs)] * 3 if isinstance(vs, int | float) else vs,
            "unit": scan.get("unit", "micrometer"),
        }
        if scan.get("phases"):
            metadata["labels"] = scan["phases"]
        if metadata["kind"] == "labels" and scan.get("segment"):
            raise ConfigError(f"scans/{name}/segment: a labels scan is already segmented")
        segment = dict(scan["segment"]) if scan.get("segment") else None
        if segment:
            for key in ("annotations", "model", "truth"):
                if key in segment:
                    segment[key] = _resolve(segment[key], Path(base))
        plans[name] = ScanPlan(
            name=name,
            source=_resolve(scan["source"], Path(base)),
            metadata=metadata,
            reader=dict(scan.get("reader", {})),
            chunks=scan.get("chunks"),
            folder=str(root / name),
            segment=segment,
            measure=_stage_options(scan, "measure"),
            simulate=simulate[name],
            represents=dict(scan["represents"]) if scan.get("represents") else None,
        )
    for plan in plans.values():
        if plan.represents:
            coarse = plans[plan.represents["scan"]]
            coarse.upscaled[plan.represents["phase"]] = plan.upscale
    return sorted(plans.values(), key=lambda p: -depth[p.name])
