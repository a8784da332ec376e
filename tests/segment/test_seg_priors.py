"""Class-prior shift: EM recovers a volume's class shares from probabilities alone (Saerens 2002)."""

from __future__ import annotations

from types import SimpleNamespace

import dask.array as da
import numpy as np
import pytest
from scipy.stats import norm

from ooc.segment import estimate_prior, scan_prior, shift_prior, training_prior


def _posteriors(x: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Exact class posteriors of two unit Gaussians at 0 and 2 under ``prior``: (2, N)."""
    lik = np.stack([norm.pdf(x, 0.0, 1.0), norm.pdf(x, 2.0, 1.0)])
    post = lik * prior[:, None]
    return post / post.sum(axis=0)


@pytest.mark.parametrize("share", [0.04, 0.2, 0.5])
def test_em_recovers_the_class_shares_and_the_shift_gives_bayes_posteriors(share: float) -> None:
    rng = np.random.default_rng(1)
    true = np.array([1.0 - share, share])
    n = 40_000
    labels = rng.random(n) < share
    x = np.where(labels, rng.normal(2.0, 1.0, n), rng.normal(0.0, 1.0, n))
    balanced = np.array([0.5, 0.5])  # a classifier trained on equal scribbles
    proba = _posteriors(x, balanced).astype(np.float32)
    est = estimate_prior(proba, balanced)
    assert est.sum() == pytest.approx(1.0)
    sampled = np.array([1.0 - labels.mean(), labels.mean()])
    np.testing.assert_allclose(est, sampled, atol=0.01)
    # re-weighting to the true prior is Bayes' rule under it, lazily for Dask too
    np.testing.assert_allclose(shift_prior(proba, balanced, true), _posteriors(x, true), atol=1e-5)
    lazy = shift_prior(da.from_array(proba, chunks=(2, 1000)), balanced, true)
    np.testing.assert_allclose(lazy.compute(), _posteriors(x, true), atol=1e-5)


def test_training_prior_from_the_models_label_counts() -> None:
    model = SimpleNamespace(
        classes=(1, 2, 3), provenance={"parameters": {"labelled_voxels": {1: 30, 2: 10, 3: 60}}}
    )
    np.testing.assert_allclose(training_prior(model), [0.3, 0.1, 0.6])
    with pytest.raises(ValueError, match="finite priors"):
        shift_prior(np.ones((3, 4), np.float32) / 3, [0.3, 0.1, 0.6], [0.5, 0.5])


@pytest.mark.parametrize(("fraction", "max_voxels"), [(1.0, 10**9), (0.25, 10**9), (0.5, 4096)])
def test_scan_prior_from_a_sample_of_blocks_matches_the_whole_volume(
    fraction: float, max_voxels: int
) -> None:
    """A volume whose thin class (6%) sits in one corner and elsewhere at random: the blocks
    sampled evenly (and thinned inside each) give the shares EM finds on every voxel."""
    rng = np.random.default_rng(3)
    shape = (32, 32, 32)
    labels = rng.random(shape) < 0.05
    labels[:8, :8, :8] = rng.random((8, 8, 8)) < 0.3
    x = np.where(labels, rng.normal(2.0, 1.0, shape), rng.normal(0.0, 1.0, shape))
    balanced = np.array([0.5, 0.5])
    proba = _posteriors(x.ravel(), balanced).reshape(2, *shape).astype(np.float32)
    whole = estimate_prior(proba, balanced)
    lazy = da.from_array(proba, chunks=(1, 8, 8, 8))  # classes split too: rejoined per block
    sampled = scan_prior(lazy, balanced, fraction=fraction, max_voxels=max_voxels)
    assert sampled.sum() == pytest.approx(1.0)
    if fraction == 1.0:
        np.testing.assert_allclose(sampled, whole, rtol=1e-6)
    else:
        np.testing.assert_allclose(sampled, whole, atol=0.015)
