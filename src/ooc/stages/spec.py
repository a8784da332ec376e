"""Pipeline specs: one sample, its scans, and the stages to run on each (``ooc run SPEC.yaml``).

A spec is YAML validated against ``schemas/pipeline.schema.json`` before any work. Relative
paths in it resolve against the spec file's folder, or, when the spec asks for the synthetic
sample (``synthesize``), against the folder the sample is written to. Outputs go to
``<output>/<sample>/<scan>/``: ``volume.zarr``, ``model/``, ``segmentation.zarr`` (with its
probabilities and uncertainty beside it), ``measure.zarr``, ``simulate.zarr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ooc.errors import ConfigError
from ooc.metadata import validate
from ooc.synth import PHASES, default_sample

__all__ = ["ScanPlan", "example_spec", "load_spec", "scan_plans"]

# ilastik's filters up to 3.5 voxels: the synthetic sample's grains are 16-32 voxels across
_SYNTH_FILTERS = {
    "gaussian": [0.0, 0.7, 1.0, 1.6, 3.5],
    "gradient": [0.7, 1.0, 1.6],
    "laplacian": [0.7, 1.0, 1.6],
    "dog": [1.0, 1.6, 3.5],
    "hessian": [0.7, 1.0, 1.6],
    "structure": [0.7, 1.0],
}


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
    from scribbles on 0.1% of its voxels, every scale measured, MicroCT simulated."""
    sample = default_sample(seed=seed, shape=tuple(shape) if shape else None)
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
                    "filters": _SYNTH_FILTERS,
                    "n_estimators": 100,
                },
                "truth": "MicroCT/labels",
            }
            scan["measure"] = {"pore": "pore", "objects": "solid grain"}
            scan["simulate"] = {
                "pore": "pore",
                "phase_values": {"pore": 1.0, "micro-porous": 0.25},
                "porous_phases": {"micro-porous": 1.0e-15},
            }
        else:
            # the finer scans are taken as segmented (their ground-truth labels)
            scan.update(source=f"{scale.modality}/labels", kind="labels", phases=phases)
            scan["measure"] = {"pore": "pore", "objects": "pore"}
            scan["simulate"] = False
        scans[scale.modality] = scan
    doc = {
        "sample": f"synthetic-{seed}",
        "synthesize": {"seed": seed, "shape": list(shape) if shape else None, "scribbles": 0.001},
        "scans": scans,
    }
    header = (
        "# ooc pipeline spec (schemas/pipeline.schema.json); run it with: ooc run spec.yaml\n"
        "# The synthetic sample is written first; with real scans, drop 'synthesize' and give\n"
        "# each scan's source relative to this file (TIFF folder or file, .raw, .h5, .npy).\n"
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
    return doc


def _resolve(path: str, base: Path) -> str:
    return path if "://" in path or Path(path).is_absolute() else str(base / path)


def _stage_options(scan: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """A stage's parameters (``{}``: its defaults), or None when absent or ``false``."""
    value = scan.get(stage)
    return None if value is None or value is False else dict(value)


def scan_plans(spec: dict[str, Any], *, base: str, output: str) -> list[ScanPlan]:
    """One :class:`ScanPlan` per scan of ``spec``; relative sources resolve against ``base``,
    outputs go under ``output/<sample>/<scan>``."""
    root = Path(output) / spec["sample"]
    plans = []
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
        plans.append(
            ScanPlan(
                name=name,
                source=_resolve(scan["source"], Path(base)),
                metadata=metadata,
                reader=dict(scan.get("reader", {})),
                chunks=scan.get("chunks"),
                folder=str(root / name),
                segment=segment,
                measure=_stage_options(scan, "measure"),
                simulate=_stage_options(scan, "simulate"),
            )
        )
    return plans
