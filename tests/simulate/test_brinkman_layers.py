"""Stokes-Brinkman on layered media against the exact one-dimensional solutions (within 2 %),
and per-voxel / per-axis permeability fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ooc.simulate import permeability

UM = 1e-6
TIGHT = {"rtol": 1e-7}


def layered_channel_exact(thickness: list[float], k: list[float], *, walls: bool) -> float:
    """Mean velocity of ``u'' - u / k(y) = -1`` across layers (``k = inf``: free fluid).

    ``walls``: no-slip at both ends, else periodic.  The solution is ``k + A cosh(s/d) +
    B sinh(s/d)`` in a porous layer (``d = sqrt(k)``) and ``-s^2/2 + A s + B`` in free fluid,
    with ``u`` and ``u'`` continuous; the 2n coefficients solve a linear system.
    """
    n = len(thickness)

    def basis(i: int, s: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(coefficient row of u, of u', particular u, particular u') at local s of layer i."""
        ru, rd = np.zeros(2 * n), np.zeros(2 * n)
        if math.isinf(k[i]):
            ru[2 * i], ru[2 * i + 1] = s, 1.0
            rd[2 * i] = 1.0
            return ru, rd, -s * s / 2, -s
        d = math.sqrt(k[i])
        ru[2 * i], ru[2 * i + 1] = math.cosh(s / d), math.sinh(s / d)
        rd[2 * i], rd[2 * i + 1] = math.sinh(s / d) / d, math.cosh(s / d) / d
        return ru, rd, k[i], 0.0

    rows, rhs = [], []
    for i in range(n - 1):
        u1, d1, p1, q1 = basis(i, thickness[i])
        u2, d2, p2, q2 = basis(i + 1, 0.0)
        rows += [u1 - u2, d1 - d2]
        rhs += [p2 - p1, q2 - q1]
    ua, da, pa, qa = basis(0, 0.0)
    ub, db, pb, qb = basis(n - 1, thickness[-1])
    if walls:
        rows += [ua, ub]
        rhs += [-pa, -pb]
    else:
        rows += [ua - ub, da - db]
        rhs += [pb - pa, qb - qa]
    c = np.linalg.solve(np.array(rows), np.array(rhs))
    total = 0.0
    for i, (t, ki) in enumerate(zip(thickness, k, strict=True)):
        a, b = c[2 * i], c[2 * i + 1]
        if math.isinf(ki):
            total += -(t**3) / 6 + a * t * t / 2 + b * t
        else:
            d = math.sqrt(ki)
            total += ki * t + a * d * math.sinh(t / d) + b * d * (math.cosh(t / d) - 1)
    return total / sum(thickness)


def _stack(thickness: list[int], labels: list[int], axis: int, width: int = 3) -> np.ndarray:
    prof = np.concatenate(
        [np.full(t, lab, np.uint8) for t, lab in zip(thickness, labels, strict=True)]
    )
    shape = [width] * 3
    shape[axis] = prof.size
    sh = [1, 1, 1]
    sh[axis] = prof.size
    return np.broadcast_to(prof.reshape(sh), shape).copy()


def test_exact_solution_reduces_to_known_channels():
    # free slit between walls: h^2 / 12; porous channel: k [1 - (d/H) tanh(H/d)]
    assert layered_channel_exact([8.0], [math.inf], walls=True) == pytest.approx(64 / 12)
    km, H = 4.0, 5.0
    exact = km * (1 - math.sqrt(km) / H * math.tanh(H / math.sqrt(km)))
    assert layered_channel_exact([2 * H], [km], walls=True) == pytest.approx(exact)
    # one periodic porous medium: Darcy
    assert layered_channel_exact([3.0, 4.0], [2.0, 2.0], walls=False) == pytest.approx(2.0)


@pytest.mark.parametrize(("free", "porous", "delta"), [(12, 12, 3.0), (16, 8, 2.0)])
def test_free_fluid_beside_a_brinkman_layer_between_walls(free, porous, delta):
    h = 1 * UM
    km = (delta * h) ** 2
    im = _stack([1, porous, free, 1], [1, 2, 0, 1], axis=1)
    r = permeability(im, porous_phases={2: km}, voxel_size=h, direction="z", **TIGHT)["z"]
    u = layered_channel_exact([porous, free], [delta**2, math.inf], walls=True)
    exact = u * h * h * (porous + free) / (porous + free + 2)
    assert r.permeability_m2 == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.5)])
def test_periodic_brinkman_layers_along_the_flow(voxel):
    vs = tuple(v * UM for v in voxel)
    hy = vs[1]
    # layers stacked along y: porous k1, free fluid, porous k2 (delta = 3 and 2 voxels)
    th = [14, 10, 12]
    ks = [(3 * hy) ** 2, math.inf, (2 * hy) ** 2]
    im = _stack(th, [2, 0, 3], axis=1)
    r = permeability(
        im,
        porous_phases={2: ks[0], 3: ks[2]},
        voxel_size=vs,
        direction=("z", "x"),
        periodic=True,
        **TIGHT,
    )
    exact = layered_channel_exact([t * hy for t in th], ks, walls=False)
    for d in "zx":
        assert r[d].permeability_m2 == pytest.approx(exact, rel=0.02)


def test_periodic_brinkman_layers_across_the_flow():
    # flow through porous layers in series (free fluid between them adds no resistance)
    h = 1 * UM
    th, labs = [5, 7, 4, 8], [2, 0, 3, 2]
    ks = {2: 3e-13, 3: 5e-14}
    im = _stack(th, labs, axis=0)
    r = permeability(im, porous_phases=ks, voxel_size=h, direction="z", periodic=True, **TIGHT)
    resist = sum(t / ks[lab] for t, lab in zip(th, labs, strict=True) if lab in ks)
    assert r["z"].permeability_m2 == pytest.approx(sum(th) / resist, rel=1e-5)


def test_per_voxel_permeability_field_equals_the_phase_constant():
    rng = np.random.default_rng(1)
    im = np.where(rng.random((8, 7, 6)) < 0.4, 0, 2).astype(np.uint8)
    const = permeability(im, porous_phases={2: 4e-14}, voxel_size=UM, direction="y", **TIGHT)
    field = np.full(im.shape, 4e-14)
    field[im == 0] = np.nan  # never read: only voxels labelled 2 use the field
    r = permeability(im, porous_phases={2: field}, voxel_size=UM, direction="y", **TIGHT)
    assert r["y"].permeability_m2 == pytest.approx(const["y"].permeability_m2, rel=1e-6)


def test_darcy_field_in_series_is_the_harmonic_mean():
    k = np.array([1e-14, 4e-14, 2e-15, 8e-14, 3e-14, 1e-14])
    field = np.broadcast_to(k[:, None, None], (6, 4, 5)).copy()
    im = np.full(field.shape, 1, np.uint8)
    r = permeability(im, porous_phases={1: field}, voxel_size=UM, direction="z", **TIGHT)
    assert r["z"].permeability_m2 == pytest.approx(len(k) / np.sum(1 / k), rel=1e-6)


def test_per_axis_permeability_of_a_porous_block():
    im = np.full((6, 5, 7), 1, np.uint8)
    kz, ky, kx = 3e-14, 1e-14, 5e-15
    r = permeability(im, porous_phases={1: (kz, ky, kx)}, voxel_size=UM, **TIGHT)
    assert r.k_m2["z"] == pytest.approx(kz, rel=1e-6)
    assert r.k_m2["y"] == pytest.approx(ky, rel=1e-6)
    assert r.k_m2["x"] == pytest.approx(kx, rel=1e-6)
    per_axis = np.stack([np.full(im.shape, v) for v in (kz, ky, kx)])
    r2 = permeability(im, porous_phases={1: per_axis}, voxel_size=UM, **TIGHT)
    for d in "zyx":
        assert r2.k_m2[d] == pytest.approx(r.k_m2[d], rel=1e-6)
