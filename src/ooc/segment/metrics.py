"""Scores of a segmentation against ground truth, and the grey-threshold baseline."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

__all__ = ["confusion_matrix", "iou", "match_labels", "mean_iou", "multi_otsu"]


def confusion_matrix(pred: Any, truth: Any, labels: Sequence[int]) -> np.ndarray:
    """Counts ``M[i, j]`` of voxels with truth ``labels[i]`` predicted as ``labels[j]``.

    ``pred`` and ``truth`` are integer arrays of one shape (NumPy or Dask: counted block by
    block); voxels whose truth is not in ``labels`` are ignored.
    """
    labels = [int(v) for v in labels]
    k = len(labels)
    lut_size = max(labels) + 1

    def count(p: np.ndarray, t: np.ndarray) -> np.ndarray:
        p, t = np.asarray(p), np.asarray(t)
        top = max(lut_size, int(max(p.max(initial=0), t.max(initial=0))) + 1)
        lut = np.full(top, -1, dtype=np.int64)
        lut[labels] = np.arange(k)
        pi = np.where(p.ravel() >= 0, lut[np.clip(p.ravel(), 0, None)], -1)
        ti = np.where(t.ravel() >= 0, lut[np.clip(t.ravel(), 0, None)], -1)
        ok = (ti >= 0) & (pi >= 0)
        return np.bincount(ti[ok] * k + pi[ok], minlength=k * k).reshape(k, k)

    if isinstance(pred, da.Array) or isinstance(truth, da.Array):
        p = da.asarray(pred)
        t = da.asarray(truth).rechunk(p.chunks)
        tasks = [
            dask.delayed(count)(p.blocks[idx], t.blocks[idx]) for idx in np.ndindex(*p.numblocks)
        ]
        return np.sum(dask.compute(*tasks), axis=0)
    return count(np.asarray(pred), np.asarray(truth))


def iou(pred: Any, truth: Any, labels: Sequence[int] | None = None) -> dict[int, float]:
    """Intersection over union per label value: ``|P ∩ T| / |P ∪ T|``.

    Parameters
    ----------
    pred, truth
        Integer label arrays of one shape (NumPy or Dask).
    labels
        Label values to score (default: those present in ``truth``).

    Returns
    -------
    dict
        ``{label: IoU}``, NaN for a label absent from both.
    """
    if labels is None:
        labels = np.unique(np.asarray(truth)).tolist()
    m = confusion_matrix(pred, truth, labels).astype(float)
    inter = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
    return {int(v): float(s) for v, s in zip(labels, scores, strict=True)}


def mean_iou(pred: Any, truth: Any, labels: Sequence[int] | None = None) -> float:
    """Mean of :func:`iou` over the labels (NaNs skipped)."""
    return float(np.nanmean(list(iou(pred, truth, labels).values())))


def match_labels(pred: np.ndarray, truth: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """``pred`` with its label values permuted to maximise the mean IoU against ``truth``.

    For unsupervised results (a threshold's classes have no names): gives them the best
    possible naming, so a comparison is fair to them. Tries every permutation (few classes).
    """
    labels = [int(v) for v in labels]
    m = confusion_matrix(pred, truth, labels).astype(float)
    best, best_perm = -1.0, tuple(range(len(labels)))
    for perm in itertools.permutations(range(len(labels))):
        # predicted class j is renamed labels[perm[j]]
        inter = np.array([m[perm[j], j] for j in range(len(labels))])
        pred_n = m.sum(axis=0)
        truth_n = m.sum(axis=1)[list(perm)]
        score = np.mean(inter / np.maximum(pred_n + truth_n - inter, 1))
        if score > best:
            best, best_perm = score, perm
    lut = np.zeros(max(labels) + 1, dtype=np.asarray(pred).dtype)
    for j, v in enumerate(labels):
        lut[v] = labels[best_perm[j]]
    return lut[np.asarray(pred)]


def multi_otsu(grey: Any, classes: int, *, nbins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Multi-Otsu thresholding (the grey-level baseline), on a binned histogram.

    Parameters
    ----------
    grey
        Grey values (any shape).
    classes
        Number of classes.
    nbins
        Histogram bins (scikit-image uses one bin per integer value of integer images, which
        is slow for uint16).

    Returns
    -------
    labels : numpy.ndarray
        Class ``0 .. classes-1`` per voxel, darkest first (uint8).
    thresholds : numpy.ndarray
        The ``classes - 1`` thresholds, in grey units.
    """
    from skimage.filters import threshold_multiotsu

    g = np.asarray(grey)
    counts, edges = np.histogram(g, bins=nbins)
    centres = (edges[:-1] + edges[1:]) / 2
    thresholds = threshold_multiotsu(classes=classes, hist=(counts, centres))
    return np.digitize(g, thresholds).astype(np.uint8), thresholds
