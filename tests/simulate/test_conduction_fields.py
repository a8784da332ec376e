"""Conduction with per-axis phase values and per-voxel conductivity fields."""

from __future__ import annotations

import numpy as np
import pytest

from ooc.simulate import conductivity

EXACT = {"dtype": np.float64, "rtol": 1e-10}


def test_diagonal_tensor_phase_gives_its_values():
    im = np.zeros((6, 7, 8), np.uint8)
    r = conductivity(im, {0: (1.0, 2.0, 3.0)}, **EXACT)
    assert r.effective == pytest.approx({"z": 1.0, "y": 2.0, "x": 3.0}, rel=1e-12)
    np.testing.assert_allclose(r.tensor, np.diag([1.0, 2.0, 3.0]), atol=1e-10)
    assert r.reference == 3.0
    assert r.phase_values == {0: (1.0, 2.0, 3.0)}


def test_field_equals_one_label_per_voxel():
    rng = np.random.default_rng(0)
    f = rng.uniform(0.2, 2.0, (5, 6, 7))
    a = conductivity(np.zeros(f.shape, np.uint8), {0: f}, **EXACT)
    lab = np.arange(f.size, dtype=np.int64).reshape(f.shape)
    b = conductivity(lab, {i: float(v) for i, v in enumerate(f.ravel())}, **EXACT)
    for d in "zyx":
        assert a[d].effective == pytest.approx(b[d].effective, rel=1e-10)
    assert "per-voxel field" in a.phase_values[0]


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_field_laminate_series_and_parallel(axis):
    k = np.array([1.0, 0.1, 7.0, 0.5, 2.0])
    sh = [1, 1, 1]
    sh[axis] = k.size
    shape = [4, 4, 4]
    shape[axis] = k.size
    field = np.broadcast_to(k.reshape(sh), shape).copy()
    im = np.zeros(shape, np.uint8)
    other = (axis + 1) % 3
    r = conductivity(im, {0: field}, direction=(axis, other), **EXACT)
    assert r["zyx"[axis]].effective == pytest.approx(k.size / np.sum(1 / k), rel=1e-9)
    assert r["zyx"[other]].effective == pytest.approx(k.mean(), rel=1e-9)


def _reference_solve(k: np.ndarray, axis: int) -> float:
    """Effective conductivity along ``axis`` by a direct sparse solve of the same finite
    volumes (unit voxels; ``k`` of shape (3, nz, ny, nx); insulating sides)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    shape = k.shape[1:]
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    b = np.zeros(n)
    for a in range(3):
        m = shape[a]
        lo = tuple(slice(0, m - 1) if c == a else slice(None) for c in range(3))
        hi = tuple(slice(1, m) if c == a else slice(None) for c in range(3))
        k1, k2 = k[a][lo], k[a][hi]
        g = np.where(k1 + k2 > 0, 2 * k1 * k2 / np.where(k1 + k2 > 0, k1 + k2, 1), 0).ravel()
        i, j = idx[lo].ravel(), idx[hi].ravel()
        rows += [i, j]
        cols += [j, i]
        vals += [-g, -g]
        np.add.at(diag, i, g)
        np.add.at(diag, j, g)
    first = tuple(slice(0, 1) if c == axis else slice(None) for c in range(3))
    last = tuple(slice(shape[axis] - 1, None) if c == axis else slice(None) for c in range(3))
    g_in, g_out = 2 * k[axis][first].ravel(), 2 * k[axis][last].ravel()
    np.add.at(diag, idx[first].ravel(), g_in)
    np.add.at(diag, idx[last].ravel(), g_out)
    b[idx[first].ravel()] += g_in
    A = coo_matrix(
        (
            np.concatenate([*vals, diag]),
            (np.concatenate([*rows, np.arange(n)]), np.concatenate([*cols, np.arange(n)])),
        ),
        shape=(n, n),
    ).tocsr()
    u = spsolve(A, b)
    flux = float(np.sum(g_in * (1 - u[idx[first].ravel()])))
    area = np.prod([shape[c] for c in range(3) if c != axis])
    return flux * shape[axis] / area


def test_per_axis_field_with_scalar_phases_against_a_direct_solve():
    rng = np.random.default_rng(2)
    im = (rng.random((5, 6, 7)) < 0.5).astype(np.uint8)
    f = rng.uniform(0.1, 1.0, (3, *im.shape))
    r = conductivity(im, {0: 2.0, 1: f}, **EXACT)
    k = np.where(im == 0, 2.0, f)
    for a, d in enumerate("zyx"):
        assert r[d].effective == pytest.approx(_reference_solve(k, a), rel=1e-8)
    # the isotropic limit: three equal axis fields are one scalar field
    iso = conductivity(im, {0: 2.0, 1: f[0]}, **EXACT)
    same = conductivity(im, {0: 2.0, 1: np.stack([f[0]] * 3)}, **EXACT)
    for d in "zyx":
        assert same[d].effective == pytest.approx(iso[d].effective, rel=1e-10)


def test_layered_with_zero_cross_conductance():
    # layers normal to y of an isotropic phase and a phase that does not conduct along y
    im = np.zeros((6, 6, 6), np.uint8)
    im[:, ::2, :] = 1
    r = conductivity(im, {0: 1.0, 1: (2.0, 0.0, 0.5)}, **EXACT)
    assert r["z"].effective == pytest.approx((3 * 1.0 + 3 * 2.0) / 6, rel=1e-9)
    assert r["x"].effective == pytest.approx((3 * 1.0 + 3 * 0.5) / 6, rel=1e-9)
    assert r["y"].effective == 0.0
    assert not r["y"].percolating


def test_stripes_joined_only_along_one_axis():
    # a phase conducting along z only: columns are separate conductors, each spans z
    im = np.ones((5, 4, 4), np.uint8)
    im[:, 1, 1] = 0
    r = conductivity(im, {0: 1.0, 1: (0.5, 0.0, 0.0)}, direction=("z", "x"), **EXACT)
    assert r["z"].effective == pytest.approx((1.0 + 15 * 0.5) / 16, rel=1e-9)
    assert r["x"].effective == 0.0


def test_bad_field_shapes_and_values_are_refused():
    im = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"phase_values\[0\].*shape"):
        conductivity(im, {0: np.ones((4, 4))})
    with pytest.raises(ValueError, match=r"phase_values\[0\].*>= 0"):
        conductivity(im, {0: -np.ones((4, 4, 4))})
    with pytest.raises(ValueError, match=r"phase_values\[0\].*>= 0"):
        conductivity(im, {0: (1.0, np.nan, 1.0)})
