"""Sub-voxel interface reconstruction of a coarse segmentation (ooc.upscale.interface)."""

from __future__ import annotations

import numpy as np
import pytest

from ooc.simulate import conductivity
from ooc.upscale import part_porosity, refine_field, refine_labels


def _repeat(a: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(np.repeat(a, f, -3), f, -2), f, -1)


def _sphere(n: int, radius: float) -> np.ndarray:
    """1 inside a sphere of ``radius`` voxels centred in an n³ grid (voxel centres), else 0."""
    c = (np.arange(n) + 0.5) - n / 2
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    return (r2 < radius**2).astype(np.uint8)


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("order", [1, 3])
def test_planar_interfaces_stay_on_the_voxel_faces(factor, order):
    lab = np.zeros((6, 5, 7), np.uint8)
    lab[3:] = 1
    lab[:, :, 4:] = 2
    np.testing.assert_array_equal(refine_labels(lab, factor, order=order), _repeat(lab, factor))


@pytest.mark.parametrize("radius", [2.6, 3.4, 4.2])
def test_a_sphere_is_closer_to_round_than_its_staircase(radius):
    n, f = 12, 4
    truth = _sphere(n * f, radius * f)
    coarse = _sphere(n, radius)
    stair = np.mean(_repeat(coarse, f) != truth)
    smooth = np.mean(refine_labels(coarse, f) != truth)
    assert smooth < 0.75 * stair, (smooth, stair)


def test_labels_not_reconstructed_keep_theirs():
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[2:] = 1
    lab[0, 0, 0] = 7
    out = refine_labels(lab, 2, phases=[0, 1])
    np.testing.assert_array_equal(out[:2, :2, :2], 7)
    assert set(np.unique(out)) == {0, 1, 7}


def test_insulating_spheres_conduct_as_when_resolved():
    """A cubic array of insulating spheres (radius 0.35 of the cell): one cell of 8³ voxels,
    closed sides (mirror symmetry: the periodic answer).  The reference is the same cell at 64³
    voxels; the staircase of the 8³ cell is off by 3.8 %, its 4x reconstruction by 1.4 %."""
    n, f, rad = 8, 8, 0.35
    ref = conductivity(_sphere(n * f, rad * n * f), {0: 1.0, 1: 0.0}, direction="z")["z"]
    coarse = _sphere(n, rad * n)
    stair = conductivity(coarse, {0: 1.0, 1: 0.0}, direction="z")["z"].relative
    smooth = conductivity(refine_labels(coarse, 4), {0: 1.0, 1: 0.0}, direction="z")["z"].relative
    err_stair, err_smooth = abs(stair / ref.relative - 1), abs(smooth / ref.relative - 1)
    assert err_stair > 0.02
    assert err_smooth < err_stair / 2, (err_smooth, err_stair)


def test_refine_field_takes_the_nearest_value_of_the_phase():
    lab = np.array([[[2, 2, 1, 1]]], np.uint8)
    field = np.array([[[0.3, 0.5, 9.0, 9.0]]])
    out = refine_field(field, lab, 2, 2)
    assert out.shape == (2, 2, 8)
    np.testing.assert_array_equal(out[0, 0], [0.3, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    per_axis = refine_field(np.stack([field, 2 * field, 3 * field]), lab, 2, 2)
    assert per_axis.shape == (3, 2, 2, 8)
    np.testing.assert_array_equal(per_axis[2, 1, 1], 3 * out[1, 1])


@pytest.mark.parametrize("bad", [0, 1.5, -2])
def test_bad_factor_is_refused(bad):
    with pytest.raises(ValueError, match="factor"):
        refine_labels(np.zeros((2, 2, 2), np.uint8), bad)


def test_refine_field_needs_the_phase():
    with pytest.raises(ValueError, match="no voxel of phase 3"):
        refine_field(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.uint8), 3, 2)


def test_part_porosity_is_that_of_the_phase_share():
    """A voxel half grain (label 1), half matrix of porosity 0.6, next to resolved pore (0): its
    grey porosity 0.3 becomes 0.6 once the refined grid gives the grain its half."""
    lab = np.array([[[0, 2, 2, 1]]], np.uint8)
    refined = np.repeat(np.repeat(np.repeat(lab, 2, 0), 2, 1), 2, 2)
    refined[:, :, 5] = 1  # the second matrix voxel: half grain on the refined grid
    refined[0, :, 2] = 0  # the first: a quarter pore
    phi = np.array([[[1.0, 0.25 + 0.75 * 0.6, 0.3, 0.0]]], np.float32)
    out = part_porosity(phi, lab, refined, phase=2)
    np.testing.assert_allclose(out, [[[1.0, 0.6, 0.6, 0.0]]], rtol=1e-6)
    with pytest.raises(ValueError, match="times one factor"):
        part_porosity(phi, lab, refined[:, :, :7], phase=2)
