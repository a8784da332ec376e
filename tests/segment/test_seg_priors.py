"""Class-prior shift: EM recovers a volume's class shares from probabilities alone (Saerens 2002)."""

from __future__ import annotations

from types import SimpleNamespace

import dask.array as da
import numpy as np
import pytest
from scipy.stats import norm

from ooc.segment import estimate_prior, shift_prior, training_prior


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
