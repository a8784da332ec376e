"""Grey-level porosity of a sub-resolution phase: exact mixing, noise, and the synthetic MicroCT."""

from __future__ import annotations

import numpy as np
import pytest

from ooc.upscale import GreyLevels, grey_levels, grey_porosity, shrink_porosity
from ooc.upscale.testing import two_scale_case


def _three_phase(n: int = 24) -> np.ndarray:
    lab = np.full((n, n, n), 2, np.uint8)
    lab[:, :, : n // 3] = 0
    lab[:, :, -n // 3 :] = 1
    return lab


def test_levels_are_robust_centres_with_the_noise_level():
    rng = np.random.default_rng(0)
    lab = _three_phase()
    grey = np.select([lab == 0, lab == 1], [1000.0, 5000.0], 3000.0)
    grey += rng.normal(0, 200.0, grey.shape)
    lv = grey_levels(grey.astype(np.float32), lab, pore_label=0, solid_label=1)
    assert lv.pore == pytest.approx(1000.0, abs=10)
    assert lv.solid == pytest.approx(5000.0, abs=10)
    assert lv.pore_sigma == pytest.approx(200.0, rel=0.05)
    assert lv.porosity_noise == pytest.approx(200.0 / 4000.0, rel=0.05)
    assert lv.pore_count < (lab == 0).sum()  # eroded away from the boundary


def test_levels_skip_blurred_boundaries():
    from scipy import ndimage

    lab = _three_phase(30)
    grey = ndimage.gaussian_filter(np.select([lab == 0, lab == 1], [0.0, 100.0], 50.0), 1.0)
    lv = grey_levels(grey, lab, erode=3)
    assert lv.pore == pytest.approx(0.0, abs=1e-3)
    assert lv.solid == pytest.approx(100.0, abs=1e-3)


def test_levels_errors():
    lab = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="solid label"):
        grey_levels(np.zeros(lab.shape), lab)
    with pytest.raises(ValueError, match="pore label 5"):
        grey_levels(np.zeros(lab.shape), lab, pore_label=5)
    with pytest.raises(ValueError, match="same shape"):
        grey_levels(np.zeros((4, 4, 3)), lab)


def test_linear_mixing_is_inverted_exactly():
    rng = np.random.default_rng(1)
    lab = _three_phase()
    phi = rng.uniform(0, 1, lab.shape).astype(np.float32)
    lv = GreyLevels(1000.0, 5000.0, 0.0, 0.0, 1, 1)
    grey = phi * 1000.0 + (1 - phi) * 5000.0
    out = grey_porosity(grey, lab, lv, phase=2)
    np.testing.assert_allclose(out[lab == 2], phi[lab == 2], atol=1e-5)
    assert (out[lab == 0] == 1).all()
    assert (out[lab == 1] == 0).all()
    # grey outside the two levels is clipped
    out = grey_porosity(np.full(lab.shape, 7000.0), lab, lv, phase=2)
    assert (out[lab == 2] == 0).all()
    # both sub-resolution labels at once
    out = grey_porosity(grey, lab, lv, phase=(1, 2))
    np.testing.assert_allclose(out[lab == 1], phi[lab == 1], atol=1e-5)


def test_smoothing_cuts_noise_without_leaking_other_phases():
    rng = np.random.default_rng(2)
    lab = _three_phase(30)
    lv = GreyLevels(0.0, 100.0, 0.0, 0.0, 1, 1)
    grey = np.select([lab == 0, lab == 1], [0.0, 100.0], 40.0) + rng.normal(0, 10, lab.shape)
    raw = grey_porosity(grey, lab, lv, phase=2)[lab == 2]
    smooth = grey_porosity(grey, lab, lv, phase=2, sigma=1.5)[lab == 2]
    assert raw.std() == pytest.approx(0.1, rel=0.1)
    assert smooth.std() < 0.35 * raw.std()
    # next to pore (grey 0) and solid (grey 100) the phase's porosity stays 0.6
    assert smooth.mean() == pytest.approx(0.6, abs=0.01)
    with pytest.raises(ValueError, match="sigma"):
        grey_porosity(grey, lab, lv, phase=2, sigma=-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grey_porosity_of_the_synthetic_microct_against_truth(seed):
    """Per-voxel porosity from the partial-volume grey of the synthetic MicroCT vs the truth.

    Noise sigma is 10 % of the pore-solid contrast, so one voxel's grey porosity carries about
    0.1 of noise; the mean error stays near 0 and the per-voxel estimate beats one constant.
    """
    case = two_scale_case(
        seed,
        12,
        grey=True,
        noise=0.1,
        macro_fraction=0.2,
        grain_fraction=0.3,
        grain_radius=(2.0, 4.0),
    )
    lab = case.coarse_labels
    # no blur in this imaging model: every labelled voxel counts
    lv = grey_levels(case.grey, lab, pore_label=0, solid_label=1, erode=0)
    assert lv.pore == pytest.approx(14_000.0, abs=900)  # 3 % of the contrast
    assert lv.solid == pytest.approx(44_000.0, abs=900)
    m = lab == 2
    truth = case.true_porosity[m]
    est = grey_porosity(case.grey, lab, lv, phase=2)[m]
    err = est - truth
    corr = float(np.corrcoef(est, truth)[0, 1])
    rms_voxel = float(np.sqrt(np.mean(err**2)))
    rms_constant = float(np.sqrt(np.mean((truth - est.mean()) ** 2)))
    assert abs(err.mean()) < 0.03
    assert corr > 0.6
    assert rms_voxel < rms_constant
    # smoothing inside the phase trades the noise for resolution: the mean stays
    smooth = grey_porosity(case.grey, lab, lv, phase=2, sigma=0.7)[m]
    assert abs(smooth.mean() - truth.mean()) < 0.03


@pytest.mark.parametrize("noise", [0.05, 0.1, 0.2])
def test_shrinking_removes_the_noise_spread_and_keeps_the_mean(noise):
    """True porosity with spread 0.1 plus independent noise: the shrunk estimate keeps the mean,
    has a smaller error than the noisy porosity, and its factor is the least-squares slope of
    true on observed porosity (its spread is that factor times the true spread)."""
    rng = np.random.default_rng(1)
    lab = _three_phase(30)
    m = lab == 2
    true = np.clip(0.5 + 0.1 * rng.standard_normal(lab.shape), 0, 1).astype(np.float32)
    obs = np.where(m, true + noise * rng.standard_normal(lab.shape), 0.0).astype(np.float32)
    obs[lab == 0] = 1.0
    est = shrink_porosity(obs, lab, phase=2, noise=noise)
    assert est[m].mean() == pytest.approx(obs[m].mean(), abs=1e-5)
    lam = (obs[m].var() - noise**2) / obs[m].var()
    assert est[m].std() == pytest.approx(lam * obs[m].std(), rel=1e-4)
    assert np.mean((est - true)[m] ** 2) < np.mean((obs - true)[m] ** 2)
    np.testing.assert_array_equal(est[~m], obs[~m])
    slope = np.cov(obs[m], true[m])[0, 1] / obs[m].var()
    assert slope == pytest.approx(lam, abs=0.03)


def test_shrinking_without_noise_changes_nothing():
    lab = _three_phase(12)
    phi = np.random.default_rng(2).random(lab.shape).astype(np.float32)
    np.testing.assert_array_equal(shrink_porosity(phi, lab, phase=2, noise=0.0), phi)
    with pytest.raises(ValueError, match="noise"):
        shrink_porosity(phi, lab, phase=2, noise=-1.0)
