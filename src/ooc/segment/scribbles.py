"""Simulated scribbles: sparse, human-like training labels drawn from a ground truth.

For tests and benchmarks on data whose full labels are known (synthetic samples, hand-labelled
slices): short brush strokes inside each class, kept away from class boundaries as a person
drawing in ilastik would, with a budget of labelled voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ooc.segment.annotations import Annotations, _ball

__all__ = ["simulate_scribbles"]


def simulate_scribbles(
    truth: Any,
    *,
    fraction: float = 0.001,
    radius: float = 1.0,
    margin: float = 2.0,
    stroke_length: int = 12,
    classes: Sequence[int] | None = None,
    offset: int = 1,
    seed: int = 0,
) -> Annotations:
    """Brush strokes inside each class of a dense ground truth, at most ``fraction`` labelled.

    Parameters
    ----------
    truth
        Dense integer labels (2D or 3D NumPy array).
    fraction
        Budget of labelled voxels as a fraction of the volume, shared equally by the classes
        (never exceeded).
    radius
        Brush radius, voxels.
    margin
        Strokes keep at least this many voxels between the brush and the class boundary
        (relaxed for a class too thin to hold it).
    stroke_length
        Longest stroke, voxels: a straight line in a random direction from a random start,
        stopped where it would leave the class.
    classes
        Truth values to scribble (default: all present).
    offset
        Added to truth values to make label values (0 means unlabelled in annotations).
    seed
        Random seed.

    Returns
    -------
    Annotations
        Label values ``truth + offset``.
    """
    t = np.asarray(truth)
    rng = np.random.default_rng(seed)
    values = np.unique(t) if classes is None else np.asarray(list(classes))
    budget = int(fraction * t.size) // len(values)
    if budget < 1:
        raise ValueError(f"fraction {fraction} of {t.size} voxels leaves no voxel per class")
    r = np.full(t.ndim, float(radius))
    coords, labels = [], []
    for value in values:
        dist = ndimage.distance_transform_edt(t == value)
        for m in (margin + radius, radius, 0.5):
            ok = dist > m
            if ok.any():
                break
        cand = np.argwhere(ok)
        if len(cand) == 0:
            continue
        taken: dict[tuple[int, ...], None] = {}
        tries = 0
        while len(taken) < budget and tries < 10 * budget:
            tries += 1
            start = cand[rng.integers(len(cand))].astype(float)
            direction = rng.normal(size=t.ndim)
            direction /= np.linalg.norm(direction)
            for k in range(stroke_length):
                p = start + k * direction
                q = np.floor(p + 0.5).astype(int)
                if np.any(q < 0) or np.any(q >= t.shape) or not ok[tuple(q)]:
                    break
                for v in _ball(p, r):
                    if np.all(v >= 0) and np.all(v < t.shape) and t[tuple(v)] == value:
                        taken.setdefault(tuple(int(x) for x in v))
                        if len(taken) >= budget:
                            break
                if len(taken) >= budget:
                    break
        pts = np.array(list(taken), dtype=np.int64).reshape(-1, t.ndim)
        coords.append(pts)
        labels.append(np.full(len(pts), int(value) + offset))
    c = np.concatenate(coords)
    order = np.lexsort(c.T[::-1])
    return Annotations(
        c[order],
        np.concatenate(labels)[order],
        t.shape,
        source=f"simulated scribbles (seed {seed})",
    )
