"""Exact distance transform across chunks; local thickness; size distribution."""

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ooc.measure import distance_transform, local_thickness, thickness_distribution
from ooc.measure.testing import ball_mask, cylinder_mask
from ooc.measure.thickness import local_thickness_kernel, thickness_radii


def _blobs(seed=0, shape=(40, 36, 44)):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 3) > 0.5


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    cz=st.integers(4, 40),
    cy=st.integers(4, 36),
    cx=st.integers(4, 44),
    h0=st.sampled_from([None, 1.0, 3.0]),
)
def test_edt_exact_any_chunking(seed, cz, cy, cx, h0):
    m = _blobs(seed)
    vs = (1.0, 0.8, 1.25)
    ref = ndi.distance_transform_edt(m, sampling=vs)
    d, mx = distance_transform(
        da.from_array(m, chunks=(cz, cy, cx)), voxel_size=vs, initial_halo=h0, return_max=True
    )
    np.testing.assert_array_equal(d.compute(), ref)
    assert mx == ref.max()


def test_edt_large_distance_small_chunks():
    # one big ball: distances up to 14 voxels with 6-voxel chunks (halo grows past a chunk)
    m = ball_mask((34, 34, 34), (16.6, 17.2, 16.9), 14.0)
    ref = ndi.distance_transform_edt(m)
    d = distance_transform(da.from_array(m, chunks=6), voxel_size=(1, 1, 1), initial_halo=2.0)
    np.testing.assert_array_equal(d.compute(), ref)


def test_edt_no_background_is_infinite():
    d = distance_transform(da.ones((6, 6, 6), dtype=bool, chunks=3), voxel_size=(1, 1, 1))
    assert np.isinf(d.compute()).all()


@pytest.mark.parametrize("chunks", [(9, 10, 11), (20, 18, 44)])
def test_local_thickness_equals_whole_array(chunks):
    m = _blobs(1)
    vs = (1.0, 1.0, 1.0)
    dist = ndi.distance_transform_edt(m)
    radii = thickness_radii(dist.max(), vs)
    ref = 2 * local_thickness_kernel(dist, radii, vs)
    lt, r = local_thickness(da.from_array(m, chunks=chunks), voxel_size=vs, return_radii=True)
    np.testing.assert_array_equal(lt.compute(), ref)
    np.testing.assert_array_equal(r, radii)


def test_local_thickness_ball_and_cylinder():
    # a ball of radius 9.6 voxels and a cylinder of radius 5.6: most of each has the local
    # thickness of its largest inscribed ball (integer radii: 9 and 5 voxels, strict <); the
    # outer shell (the last ~half voxel) is covered only by smaller balls
    shape = (40, 40, 60)
    m = ball_mask(shape, (19.5, 19.7, 15.2), 9.6) | cylinder_mask(shape, 2, (20.3, 19.8), 5.6)
    m[:, :, :26] = ball_mask(shape, (19.5, 19.7, 15.2), 9.6)[:, :, :26]
    lt = local_thickness(da.from_array(m, chunks=(13, 20, 21)), voxel_size=(0.5, 0.5, 0.5))
    lt = lt.compute()
    ball = lt[:, :, :20][m[:, :, :20]]
    cyl = lt[:, :, 40:][m[:, :, 40:]]
    # in µm, voxel 0.5: ball diameter 2 * 9 voxels * 0.5, cylinder 2 * 5 * 0.5
    assert np.mean(ball == 9.0) > 0.85
    assert np.mean(cyl == 5.0) > 0.8
    assert ball.max() == 9.0
    assert cyl.max() == 5.0
    ds = thickness_distribution(da.from_array(lt, chunks=20), voxel_size=(0.5, 0.5, 0.5), unit="µm")
    assert float(ds.cumulative_fraction[-1]) == pytest.approx(1.0)
    assert float(ds.phase_volume) == pytest.approx(m.sum() * 0.125)
    v_ball = np.count_nonzero(lt == 9.0)
    v_cyl = np.count_nonzero(lt == 5.0)
    assert v_cyl > 0.8 * np.count_nonzero(m[:, :, 40:])
    assert float(ds.volume_fraction.sel(diameter=9.0)) == pytest.approx(v_ball / m.sum())
    # D90 is the ball (most of the volume), D10 the cylinder or smaller
    assert float(ds.D90) == 9.0
    assert float(ds.D10) <= 5.0


def test_radii_choices():
    vs = (0.5, 0.5, 1.0)
    np.testing.assert_allclose(thickness_radii(2.2, vs), [2.0, 1.5, 1.0, 0.5])
    np.testing.assert_allclose(thickness_radii(2.2, vs, 2), [2.0, 0.5])
    np.testing.assert_allclose(thickness_radii(2.2, vs, [0.7, 1.4]), [1.4, 0.7])
    with pytest.raises(ValueError, match="sizes"):
        thickness_radii(2.2, vs, [-1.0])
