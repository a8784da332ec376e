"""Class priors: a forest trained on scribbles learns the scribbles' class shares, not the scan's.

Scribbles are split about equally between classes, so a thin class (clay, 4% of a sandstone)
is given a quarter of the prior and over-predicted at its neighbours' expense. The scan's own
shares are estimated from the forest's probabilities alone, with no labels, by the EM of
Saerens, Latinne & Decaestecker (2002, Neural Computation 14:21), and the probabilities are
re-weighted by the ratio of the two priors (Bayes' rule with a changed prior).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["estimate_prior", "scan_prior", "shift_prior", "training_prior"]


def training_prior(model: Any) -> np.ndarray:
    """Class shares of the labelled voxels a forest was trained on, in ``model.classes`` order.

    From ``model.provenance`` (``labelled_voxels``); float64, sums to 1.
    """
    counts = model.provenance["parameters"]["labelled_voxels"]
    n = np.array([float(counts.get(c, counts.get(str(c), 0))) for c in model.classes])
    if not n.sum() > 0:
        raise ValueError("the model records no labelled voxels")
    return n / n.sum()


def shift_prior(proba: Any, train_prior: Sequence[float], prior: Sequence[float]) -> Any:
    """Probabilities re-weighted from the training prior to ``prior``: ``p_k * prior_k /
    train_prior_k``, normalised over classes.

    ``proba`` is ``(K, ...)`` (NumPy or Dask; lazily for Dask); returns float32 of its shape.
    """
    new, base = np.asarray(prior, dtype=np.float64), np.asarray(train_prior, dtype=np.float64)
    k = proba.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = new / base if new.shape == base.shape == (k,) else np.full(k, np.nan)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"need {proba.shape[0]} finite priors >= 0 and training priors > 0")
    w = w.astype(np.float32).reshape((-1,) + (1,) * (proba.ndim - 1))
    q = proba * w
    return (q / q.sum(axis=0, keepdims=True)).astype(np.float32)


def estimate_prior(
    proba: Any,
    train_prior: Sequence[float],
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> np.ndarray:
    """The class shares of a volume, estimated from a classifier's probabilities alone (EM).

    Parameters
    ----------
    proba
        ``(K, ...)`` class probabilities of the volume's voxels (or of a sample of them), as
        the classifier gives them under ``train_prior``; NumPy.
    train_prior
        Class shares of the training labels (:func:`training_prior`).
    max_iter, tol
        EM steps at most; stop when no share moves more than ``tol``.

    Returns
    -------
    numpy.ndarray
        float64 ``(K,)``, sums to 1: the prior under which the re-weighted probabilities
        (:func:`shift_prior`) average to that same prior.
    """
    p = np.asarray(proba, dtype=np.float64).reshape(proba.shape[0], -1)
    base = np.asarray(train_prior, dtype=np.float64)
    prior = base.copy()
    for _ in range(max_iter):
        q = p * (prior / base)[:, None]
        q /= q.sum(axis=0, keepdims=True)
        new = q.mean(axis=1)
        done = np.max(np.abs(new - prior)) < tol
        prior = new
        if done:
            break
    return prior


def scan_prior(
    proba: da.Array,
    train_prior: Sequence[float],
    *,
    fraction: float = 0.1,
    max_voxels: int = 2**22,
    progress: bool | None = None,
) -> np.ndarray:
    """The class shares of a whole volume from its lazy probabilities, estimated on a sample.

    ``fraction`` of the blocks of ``proba`` (``(K, ...)``, Dask, one block per prediction
    task), spread evenly over the volume, are computed on the active scheduler; each keeps a
    regular grid of its voxels so that at most about ``max_voxels`` enter the EM of
    :func:`estimate_prior`. Returns float64 ``(K,)`` summing to 1.
    """
    from ooc.cluster import run_tasks

    blocks = proba.rechunk({0: -1}).to_delayed().ravel()  # every class of a block together
    n = max(1, math.ceil(fraction * len(blocks)))
    picked = np.unique(np.linspace(0, len(blocks) - 1, n).round().astype(int))
    voxels_per_block = math.prod(proba.chunksize[1:])
    share = max(voxels_per_block * len(picked) / max_voxels, 1.0)
    step = max(1, math.ceil(share ** (1 / (proba.ndim - 1))))
    grid = (slice(None),) + (slice(None, None, step),) * (proba.ndim - 1)
    parts = run_tasks([blocks[i][grid] for i in picked], desc="class shares", progress=progress)
    k = proba.shape[0]
    return estimate_prior(np.concatenate([p.reshape(k, -1) for p in parts], axis=1), train_prior)
