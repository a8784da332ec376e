"""Two small samples made with the stages themselves, registered in a private catalog.

``rep-a`` at two scales: MicroCT (grey scan -> forest -> segmentation -> measure + simulate)
and FIB-SEM (a label scan -> measure); ``rep-b``: MicroCT only, its labels ingested as such ->
measure + simulate (no permeability). 32³ volumes, a 10-tree forest: about 15 s in all, most of
it importing skops (for the forest) and the permeability solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ooc.config import load_settings
from ooc.segment import simulate_scribbles
from ooc.stages import run_ingest, run_measure, run_segment, run_simulate, run_train
from ooc.synth import default_sample, render_scan

SHAPE = (32, 32, 32)
PHASES = {"1": "pore", "2": "grain", "3": "micro-porous"}  # label values of the MicroCT scans
FIB_PHASES = {"0": "pore", "1": "solid"}
SIMULATE = {
    "pore": "pore",
    "phase_values": {"pore": 1.0, "micro-porous": 0.25},
    "porous_phases": {"micro-porous": 1e-15},
}


@dataclass(frozen=True)
class Samples:
    """Where the samples are: the catalog and each sample's stores by (scale, name)."""

    root: Path
    catalog_url: str
    stores: dict[tuple[str, str, str], str]  # (sample, scale, name) -> URL


def _meta(sample: str, scale: str, kind: str, voxel: list[float], unit: str) -> dict:
    return {"sample_id": sample, "modality": scale, "kind": kind, "voxel_size": voxel, "unit": unit}


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Builds both samples once per test session."""
    root = tmp_path_factory.mktemp("report")
    settings = load_settings(data_dir=str(root / "data"))
    stores: dict[tuple[str, str, str], str] = {}

    def put(sample: str, scale: str, name: str) -> str:
        stores[(sample, scale, name)] = str(root / sample / scale / name)
        return stores[(sample, scale, name)]

    # rep-a, MicroCT: grey -> forest -> segmentation -> measure, simulate
    truth, grey = render_scan(default_sample(seed=5, shape=SHAPE), "MicroCT")
    (root / "in").mkdir()
    np.save(root / "in" / "a-grey.npy", grey)
    ann = simulate_scribbles(truth, fraction=0.02, seed=0)
    painted = np.zeros(SHAPE, np.uint8)
    painted[tuple(ann.coords.T)] = ann.labels
    tifffile.imwrite(root / "in" / "a-scribbles.tif", painted)
    micro = ([2.0, 2.0, 2.0], "um")
    volume = put("rep-a", "MicroCT", "volume.zarr")
    run_ingest(
        str(root / "in" / "a-grey.npy"),
        volume,
        metadata=_meta("rep-a", "MicroCT", "grey", *micro),
        settings=settings,
        chunks=(16, 16, 16),
    )
    model = put("rep-a", "MicroCT", "model")
    run_train(
        volume,
        str(root / "in" / "a-scribbles.tif"),
        model,
        settings=settings,
        filters={"gaussian": [0.0, 1.0], "hessian": [1.0]},
        class_names=PHASES,
        n_estimators=10,
    )
    seg = put("rep-a", "MicroCT", "segmentation.zarr")
    run_segment(volume, model, seg, settings=settings, progress=False)
    run_measure(
        seg,
        put("rep-a", "MicroCT", "measure.zarr"),
        settings=settings,
        pore="pore",
        objects="grain",
        progress=False,
    )
    run_simulate(seg, put("rep-a", "MicroCT", "simulate.zarr"), settings=settings, **SIMULATE)

    # rep-a, FIB-SEM: a label scan, measured
    spec = default_sample(seed=5, shape=SHAPE, fibsem_shape=SHAPE)
    fib_truth, _ = render_scan(spec, "FIB-SEM")
    np.save(root / "in" / "a-fib.npy", (fib_truth > 0).astype(np.uint8))
    fib = put("rep-a", "FIB-SEM", "volume.zarr")
    run_ingest(
        str(root / "in" / "a-fib.npy"),
        fib,
        metadata={
            **_meta("rep-a", "FIB-SEM", "labels", [30.0, 20.0, 20.0], "nm"),
            "labels": FIB_PHASES,
        },
        settings=settings,
    )
    run_measure(
        fib,
        put("rep-a", "FIB-SEM", "measure.zarr"),
        settings=settings,
        pore="pore",
        objects="pore",
        progress=False,
    )

    # rep-b, MicroCT: its labels as ingested -> measure, simulate
    truth_b, _ = render_scan(default_sample(seed=6, shape=SHAPE), "MicroCT")
    np.save(root / "in" / "b-labels.npy", (truth_b + 1).astype(np.uint8))
    labels_b = put("rep-b", "MicroCT", "volume.zarr")
    run_ingest(
        str(root / "in" / "b-labels.npy"),
        labels_b,
        metadata={**_meta("rep-b", "MicroCT", "labels", *micro), "labels": PHASES},
        settings=settings,
    )
    run_measure(
        labels_b,
        put("rep-b", "MicroCT", "measure.zarr"),
        settings=settings,
        pore="pore",
        objects="grain",
        progress=False,
    )
    run_simulate(
        labels_b,
        put("rep-b", "MicroCT", "simulate.zarr"),
        settings=settings,
        properties=["tortuosity", "conductivity"],  # permeability (4 s here) only for rep-a
        **SIMULATE,
    )
    return Samples(root, settings.resolved_catalog_url, stores)


@pytest.fixture(scope="session")
def report(samples: Samples) -> Path:
    """The HTML report of ``rep-a``, written once per test session."""
    from ooc.report import write_report

    return write_report("rep-a", samples.root / "rep-a.html", catalog_url=samples.catalog_url)
