"""Conduction/diffusion against exact and analytic answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ooc.simulate import ConvergenceWarning, conductivity, tortuosity

EXACT = {"dtype": np.float64, "rtol": 1e-10}


def _layers(n_along: int, thickness: list[int], labels: list[int], axis: int, width: int = 6):
    """Laminate: layers of the given thicknesses stacked along ``axis``."""
    assert sum(thickness) == n_along
    prof = np.concatenate(
        [np.full(t, lab, np.uint8) for t, lab in zip(thickness, labels, strict=True)]
    )
    shape = [width, width, width]
    shape[axis] = n_along
    sh = [1, 1, 1]
    sh[axis] = n_along
    return np.broadcast_to(prof.reshape(sh), shape).copy()


def test_uniform_block_is_exact():
    im = np.zeros((7, 5, 6), np.uint8)
    r = conductivity(im, {0: 2.5}, **EXACT)
    for d in "zyx":
        assert r[d].effective == pytest.approx(2.5, rel=1e-12)
        assert r[d].relative == pytest.approx(1.0, rel=1e-12)
        np.testing.assert_allclose(r[d].tensor_column, np.eye(3)["zyx".index(d)] * 2.5, atol=1e-9)
        assert r[d].info.converged
        assert r[d].percolating


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_laminate_in_series_is_exact(axis):
    ks = {1: 1.0, 2: 0.1, 3: 7.0}
    th = [3, 5, 4]
    im = _layers(12, th, [1, 2, 3], axis)
    r = conductivity(im, ks, direction=axis, **EXACT)
    exact = 12 / sum(t / ks[lab] for t, lab in zip(th, [1, 2, 3], strict=True))
    name = "zyx"[axis]
    assert r[name].effective == pytest.approx(exact, rel=1e-9)
    assert r[name].flux_in == pytest.approx(r[name].flux_out, rel=1e-9)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_laminate_in_parallel_is_exact(axis):
    ks = {1: 1.0, 2: 0.1, 3: 7.0}
    th = [3, 5, 4]
    im = _layers(12, th, [1, 2, 3], axis)
    drive = (axis + 1) % 3
    r = conductivity(im, ks, direction=drive, **EXACT)
    exact = sum(t * ks[lab] for t, lab in zip(th, [1, 2, 3], strict=True)) / 12
    assert r["zyx"[drive]].effective == pytest.approx(exact, rel=1e-9)


def test_three_phase_laminate_with_insulating_phase():
    ks = {0: 1.0, 1: 0.25, 2: 0.0}
    th = [4, 3, 5]
    im = _layers(12, th, [0, 1, 2], axis=1)
    r = conductivity(im, ks, direction=("z", "y", "x"), **EXACT)
    # parallel to the layers: arithmetic mean, the insulating layer counts as zero
    assert r["z"].effective == pytest.approx((4 * 1.0 + 3 * 0.25) / 12, rel=1e-9)
    assert r["x"].effective == pytest.approx((4 * 1.0 + 3 * 0.25) / 12, rel=1e-9)
    # across the layers: blocked by the insulator, flagged, not NaN
    assert r["y"].effective == 0.0
    assert not r["y"].percolating
    assert r["y"].info.converged


def test_si_units_and_relative():
    ks = {0: 5.8e7, 1: 1.0e-3}  # copper and a poor conductor, S/m
    im = _layers(10, [6, 4], [0, 1], axis=0)
    r = conductivity(im, ks, direction="y", **EXACT)
    expect = (6 * 5.8e7 + 4 * 1e-3) / 10
    assert r["y"].effective == pytest.approx(expect, rel=1e-9)
    assert r["y"].relative == pytest.approx(expect / 5.8e7, rel=1e-9)


def test_anisotropic_voxels_keep_laminates_exact():
    ks = {1: 1.0, 2: 0.2}
    im = _layers(8, [3, 5], [1, 2], axis=0)
    r = conductivity(im, ks, direction=("z", "x"), voxel_size=(2e-6, 1e-6, 0.5e-6), **EXACT)
    assert r["z"].effective == pytest.approx(8 / (3 / 1.0 + 5 / 0.2), rel=1e-9)
    assert r["x"].effective == pytest.approx((3 * 1.0 + 5 * 0.2) / 8, rel=1e-9)


def test_straight_channels_have_tau_one():
    im = np.ones((16, 12, 12), np.uint8)
    im[:, 2:5, 3:6] = 0
    im[:, 8:10, 7:11] = 0
    eps = float((im == 0).mean())
    r = tortuosity(im, 0, direction="z", **EXACT)
    assert r["z"].tortuosity == pytest.approx(1.0, rel=1e-9)
    assert r["z"].relative_diffusivity == pytest.approx(eps, rel=1e-9)
    assert r.porosity == pytest.approx(eps)
    # across the channels nothing percolates
    r2 = tortuosity(im, 0, direction="y")
    assert r2["y"].tortuosity == math.inf
    assert r2["y"].relative_diffusivity == 0.0
    assert not r2["y"].percolating


def test_dead_end_pore_carries_no_flux():
    # a pore open at the inlet but closed before the outlet: D_eff = 0, tau = inf, flagged
    im = np.ones((12, 8, 8), np.uint8)
    im[:9, 3:5, 3:5] = 0
    r = tortuosity(im, 0, direction="z")
    assert r["z"].relative_diffusivity == 0.0
    assert r["z"].tortuosity == math.inf
    assert not r["z"].percolating
    assert r["z"].info.converged


def test_dead_ends_and_isolated_pores_do_not_change_a_channel():
    ch = np.ones((14, 10, 10), np.uint8)
    ch[:, 4:6, 4:6] = 0
    ref = tortuosity(ch, 0, direction="z", **EXACT)["z"].relative_diffusivity
    im = ch.copy()
    im[5, 1:4, 4] = 0  # dead-end branch
    im[9, 6:9, 5] = 0  # another
    im[2:4, 8, 1:3] = 0  # isolated pore
    im[11, 1, 1] = 0  # isolated voxel
    r = tortuosity(im, 0, direction="z", **EXACT)["z"]
    eps = float((im == 0).mean())
    assert r.relative_diffusivity == pytest.approx(ref, rel=1e-9)
    assert r.tortuosity == pytest.approx(eps / ref, rel=1e-9)
    assert r.info.converged


def test_periodic_sides_join_a_channel_that_leaves_and_reenters():
    # the pore path shifts by one voxel in x every two planes and wraps around in x
    n = 16
    im = np.ones((n, 4, 6), np.uint8)
    for z in range(n):
        x0 = (z // 2) % 6
        im[z, 1:3, x0] = 0
        im[z, 1:3, (x0 + 1) % 6] = 0
    closed = tortuosity(im, 0, direction="z", periodic=False)["z"]
    wrapped = tortuosity(im, 0, direction="z", periodic=True)["z"]
    assert not closed.percolating
    assert wrapped.percolating
    assert wrapped.relative_diffusivity > 0


def test_tensor_column_of_a_tilted_laminate():
    # 45-degree laminate in (z, y), periodic in y.  Continuum answer:
    # sigma = k_par I + (k_ser - k_par) n n^T with n = (1, 1, 0)/sqrt(2); the voxel staircase
    # converges to it as the layers get thicker in voxels.
    k1, k2 = 1.0, 0.1
    k_par, k_ser = (k1 + k2) / 2, 2 / (1 / k1 + 1 / k2)
    diag, off = (k_par + k_ser) / 2, (k_ser - k_par) / 2
    errs = []
    for n, period in ((64, 8), (128, 16)):
        zz, yy = np.mgrid[:n, : period * 2]
        lam = (((zz + yy) // (period // 2)) % 2).astype(np.uint8)
        im = np.repeat(lam[:, :, None], 2, axis=2)
        r = conductivity(im, {0: k1, 1: k2}, direction=("z", "y"), periodic=True, **EXACT)
        cz, cy = r["z"].tensor_column, r["y"].tensor_column
        assert abs(cz[2]) < 1e-9
        assert abs(cy[2]) < 1e-9
        assert cz[1] < 0
        assert cy[0] < 0
        assert cz[1] == pytest.approx(cy[0], rel=0.1)  # nearly symmetric tensor
        errs.append((abs(cz[0] - diag) / diag, abs(cz[1] - off) / abs(off)))
        assert r.tensor[1, 0] == cz[1]
    assert errs[1][0] < errs[0][0]
    assert errs[1][1] < errs[0][1]
    assert errs[1][0] < 0.06
    assert errs[1][1] < 0.15


def test_fields_of_a_uniform_medium():
    im = np.zeros((10, 4, 5), np.uint8)
    im[:, 0, 0] = 1  # an insulating rod along z
    r = conductivity(im, {0: 2.0, 1: 0.0}, direction="z", return_fields=True, **EXACT)["z"]
    pot, flux = r.potential, r.flux
    assert pot.shape == im.shape
    assert flux.shape == (3, *im.shape)
    assert np.isnan(pot[:, 0, 0]).all()
    np.testing.assert_allclose(pot[:, 2, 2], 1 - (np.arange(10) + 0.5) / 10, atol=1e-9)
    np.testing.assert_allclose(flux[0][im == 0], 2.0 / 10, rtol=1e-9)
    np.testing.assert_allclose(flux[1:], 0.0, atol=1e-12)
    ds = conductivity(im, {0: 2.0, 1: 0.0}, direction="z", return_fields=True).to_dataset()
    assert ds["potential"].dims == ("direction", "z", "y", "x")


def test_convergence_record_and_warning():
    rng = np.random.default_rng(0)
    im = (rng.random((24, 24, 24)) < 0.3).astype(np.uint8)
    r = conductivity(im, {0: 1.0, 1: 0.05}, direction="x")
    info = r["x"].info
    assert info.converged
    assert info.flux_imbalance <= 1e-4
    assert info.iterations > 0
    assert info.time_s > 0
    assert info.residual < 1e-2
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        bad = conductivity(im, {0: 1.0, 1: 0.05}, direction="x", max_iter=1)
    assert not bad["x"].info.converged


def test_float32_and_float64_agree():
    rng = np.random.default_rng(1)
    im = rng.integers(0, 3, (20, 18, 16)).astype(np.uint8)
    ks = {0: 1.0, 1: 0.01, 2: 0.3}
    a = conductivity(im, ks, direction="z", dtype=np.float32, rtol=1e-6)["z"].effective
    b = conductivity(im, ks, direction="z", dtype=np.float64, rtol=1e-6)["z"].effective
    assert a == pytest.approx(b, rel=1e-5)


def test_bad_input_is_refused():
    im = np.zeros((4, 4, 4), np.uint8)
    im[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"labels \[7\] occur"):
        conductivity(im, {0: 1.0})
    with pytest.raises(ValueError, match="direction"):
        conductivity(im, {0: 1.0, 7: 1.0}, direction="w")
    with pytest.raises(ValueError, match="3D"):
        conductivity(im[0], {0: 1.0, 7: 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        conductivity(im, {0: 1.0, 7: -1.0})


def test_wide_integer_labels():
    im = np.full((6, 5, 4), 100000, np.int64)
    im[:, :, :2] = -3
    r = conductivity(im, {100000: 1.0, -3: 3.0}, direction="z", **EXACT)
    assert r["z"].effective == pytest.approx(2.0, rel=1e-9)
