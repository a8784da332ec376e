"""Stokes-Brinkman with unequal voxel edges against slit, duct and Brinkman-channel answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ooc.simulate import permeability

TIGHT = {"rtol": 1e-7}
UM = 1e-6


def _slit(h: int, plates: int) -> np.ndarray:
    """Fluid slit of ``h`` voxels between one-voxel plates normal to axis ``plates``."""
    shape = [4, 3, 5]
    shape[plates] = h + 2
    im = np.ones(shape, np.uint8)
    sl = [slice(None)] * 3
    sl[plates] = slice(1, -1)
    im[tuple(sl)] = 0
    return im


@pytest.mark.parametrize("voxel", [(3.0, 1.0, 2.0), (0.5, 2.0, 1.0)])
@pytest.mark.parametrize("plates", [0, 1, 2])
def test_slit_with_anisotropic_voxels(voxel, plates):
    # the finite-volume slit answer is phi H^2/12 (1 + 2/h^2) whatever the other edges are
    vs = tuple(v * UM for v in voxel)
    for h in (8, 16):
        gap = h * vs[plates]
        along = [a for a in range(3) if a != plates]
        r = permeability(_slit(h, plates), voxel_size=vs, direction=along, **TIGHT)
        exact = h / (h + 2) * gap * gap / 12
        for a in along:
            assert r["zyx"[a]].permeability_m2 / exact - 1 == pytest.approx(2 / h**2, abs=2e-6)
            assert r["zyx"[a]].info.converged
        assert r["zyx"[along[0]]].permeability_voxel2 == pytest.approx(
            r["zyx"[along[0]]].permeability_m2 / math.prod(vs) ** (2 / 3), rel=1e-12
        )


def _duct_mean_velocity(wy: float, wx: float) -> float:
    """Mean velocity of Poiseuille flow in a wy x wx rectangle (unit gradient and viscosity)."""
    a, b = sorted((wy / 2, wx / 2))
    s = sum(math.tanh(n * math.pi * b / (2 * a)) / n**5 for n in range(1, 400, 2))
    return a * a / 3 * (1 - 192 * a / (math.pi**5 * b) * s)


@pytest.mark.parametrize(("dy", "dx"), [(1.0, 2.0), (2.0, 1.0)])
def test_square_duct_drawn_with_rectangular_pixels(dy, dx):
    errs = []
    for m in (6, 12, 24):
        ny, nx = int(m * dx), int(m * dy)  # the same width along y and x
        im = np.ones((3, ny + 2, nx + 2), np.uint8)
        im[:, 1:-1, 1:-1] = 0
        vs = (1.5 * UM, dy * UM, dx * UM)
        r = permeability(im, voxel_size=vs, direction="z", drive="body_force", rtol=1e-6)["z"]
        exact = _duct_mean_velocity(ny * vs[1], nx * vs[2]) * ny * nx / ((ny + 2) * (nx + 2))
        errs.append(abs(r.permeability_m2 / exact - 1))
    # second order in the coarser pixel edge
    assert errs[2] < 0.005
    assert errs[0] / errs[1] > 3.5
    assert errs[1] / errs[2] > 3.5


@pytest.mark.parametrize("voxel", [(2.0, 1.0, 3.0), (1.0, 2.5, 1.0)])
def test_brinkman_channel_with_anisotropic_voxels(voxel):
    # porous medium (k_m) filling a channel of half-width H: k = k_m [1 - (d/H) tanh(H/d)]
    vs = tuple(v * UM for v in voxel)
    errs = []
    for H in (4, 8, 16):
        delta = H / 2
        im = np.ones((2, 2 * H + 2, 2), np.uint8)
        im[:, 1:-1, :] = 2
        km = (delta * vs[1]) ** 2
        r = permeability(im, porous_phases={2: km}, voxel_size=vs, direction=("z", "x"), **TIGHT)
        exact = km * (1 - (delta / H) * math.tanh(H / delta)) * (2 * H) / (2 * H + 2)
        for d in "zx":
            assert abs(r[d].permeability_m2 / exact - 1) <= 0.5 / H**2
        errs.append(abs(r["z"].permeability_m2 / exact - 1))
    assert errs[0] / errs[1] > 3.5
    assert errs[1] / errs[2] > 3.5


def test_anisotropic_voxels_change_only_the_geometry():
    # stretching every voxel edge by one factor scales k by its square
    rng = np.random.default_rng(3)
    im = (rng.random((10, 9, 8)) < 0.35).astype(np.uint8)
    vs = (2 * UM, 1 * UM, 1.5 * UM)
    a = permeability(im, voxel_size=vs, direction=("z", "y", "x"), rtol=1e-6)
    b = permeability(im, voxel_size=tuple(3 * v for v in vs), direction=("z", "y", "x"), rtol=1e-6)
    for d in "zyx":
        assert b[d].permeability_m2 == pytest.approx(9 * a[d].permeability_m2, rel=1e-4)


def test_velocity_of_an_anisotropic_slit_is_the_parabola():
    h = 8
    vs = (2 * UM, 1 * UM, 3 * UM)
    r = permeability(_slit(h, 1), voxel_size=vs, direction="z", return_velocity=True, **TIGHT)
    d = r["z"]
    h0 = math.prod(vs) ** (1 / 3)
    # velocity for a unit pressure drop over L (reference units): the parabola plus the
    # discrete wall's slip dy^2 / (8 L) (the ghost value sits half a voxel outside)
    L = 4 * vs[0] / h0
    dy = vs[1] / h0
    y = (np.arange(h) + 0.5) * dy
    expect = y * (h * dy - y) / (2 * L) + dy * dy / (8 * L)
    np.testing.assert_allclose(d.velocity[0, 2, 1:-1, 1], expect, rtol=1e-5)
    # no transverse flow, to the solver's relative residual: the stopping rule bounds the flow
    # rates and k (to rtol), not the transverse velocity (float64 stops at 2e-6 of the peak here)
    assert np.all(np.abs(d.velocity[1:]) < d.info.residual * expect.max())
