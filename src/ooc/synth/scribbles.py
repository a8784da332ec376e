"""Scribbles for a synthetic scan: a label TIFF of sparse strokes drawn inside its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ooc.segment.scribbles import simulate_scribbles

__all__ = ["write_scribbles"]


def write_scribbles(
    sample_dir: str | Path, *, scale: str = "MicroCT", fraction: float = 0.001, seed: int = 0
) -> Path:
    """Write ``<sample_dir>/<scale>/scribbles.tif``: strokes on ``fraction`` of the voxels,
    kept inside each phase of the scale's ground truth as a person would draw them.

    Values are the phase index + 1 (0 = unlabelled), as ``ooc train`` takes them; the phase
    names are in ``sample.json`` (``scales/<scale>/phases``).
    """
    folder = Path(sample_dir) / scale
    truth = tifffile.imread(sorted((folder / "labels").glob("*.tif")))
    marks = simulate_scribbles(truth, fraction=fraction, seed=seed)
    painted = np.zeros(truth.shape, dtype=np.uint8)
    painted[tuple(marks.coords.T)] = marks.labels
    path = folder / "scribbles.tif"
    tifffile.imwrite(path, painted)
    return path
