"""Objects: watershed separation across chunks, per-object table, statistics."""

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

from ooc.measure import label_components, object_statistics, object_table, separate_objects
from ooc.measure.objects import _ellipsoid_footprint, peaks_kernel, watershed_kernel
from ooc.measure.testing import random_spheres, spheres_mask

VS = (1.0, 1.0, 1.0)


def _pack():
    """Separated balls of radius 4-9 voxels, placed so chunk edges (every 16) cut them."""
    shape = (64, 64, 64)
    c, r = random_spheres(shape, 18, (4.0, 9.0), seed=5, gap=1.5, margin=1.5)
    return shape, c, r, spheres_mask(shape, c, r)


def _touching():
    shape = (56, 56, 56)
    c = np.array([[20.3, 20.1, 20.7], [20.3, 34.5, 20.2], [38.2, 38.6, 35.1], [38, 24, 42]])
    r = np.array([8.0, 7.0, 10.0, 6.5])  # 1-2, 3-4 overlap (touching particles)
    return shape, c, r, spheres_mask(shape, c, r)


def test_sphere_sizes_exact_count_and_diameters():
    _, c, r, m = _pack()
    assert len(r) == 18
    lab, n = separate_objects(da.from_array(m, chunks=16), voxel_size=VS)
    tab = object_table(lab, voxel_size=VS, unit="µm")
    assert n == len(r) == len(tab)
    # match objects to balls by centroid
    cen = tab[["centroid_z", "centroid_y", "centroid_x"]].to_numpy()
    k = np.argmin(np.linalg.norm(cen[:, None] - c[None], axis=2), axis=1)
    assert sorted(k) == list(range(len(r)))
    # voxelisation error of the equivalent diameter of a digital ball of radius 4-9:
    # |d_eq - 2r| < 0.25 voxel (the volume of the digital ball is within ~4 % of 4/3 pi r^3)
    np.testing.assert_array_less(np.abs(tab["equivalent_diameter"].to_numpy() - 2 * r[k]), 0.25)
    np.testing.assert_allclose(tab[["centroid_z", "centroid_y", "centroid_x"]], c[k], atol=0.1)
    # surface area (Crofton) within 3 %, sphericity 1 within 4 %, aspect ratios ~1
    np.testing.assert_allclose(tab["surface_area"], 4 * np.pi * r[k] ** 2, rtol=0.03)
    np.testing.assert_allclose(tab["sphericity"], 1.0, atol=0.04)
    assert (tab["aspect_minor_major"] > 0.9).all()
    np.testing.assert_allclose(tab["axis_major"], 2 * r[k], rtol=0.06)
    assert not tab["touches_border"].any()


def test_touching_spheres_separated_like_whole_array():
    _, c, r, m = _touching()
    # whole-array reference: same markers, skimage watershed on the full volume
    dist = ndi.distance_transform_edt(m)
    pk = peaks_kernel(dist, _ellipsoid_footprint(3.0, VS))
    markers = ndi.label(pk, ndi.generate_binary_structure(3, 3))[0]
    ref = watershed_kernel(dist, markers.astype(np.int32), m)
    for chunks in [(56, 56, 56), (14, 28, 19), (20, 20, 20)]:
        lab, n = separate_objects(da.from_array(m, chunks=chunks), voxel_size=VS)
        assert n == 4
        np.testing.assert_array_equal(lab.compute(), ref)
    tab = object_table(da.from_array(ref, chunks=15), voxel_size=VS, unit="µm")
    cen = tab[["centroid_z", "centroid_y", "centroid_x"]].to_numpy()
    k = np.argmin(np.linalg.norm(cen[:, None] - c[None], axis=2), axis=1)
    assert sorted(k) == [0, 1, 2, 3]
    # a split plane moves volume between touching balls: within half a voxel of diameter
    np.testing.assert_allclose(tab["equivalent_diameter"], 2 * r[k], atol=0.5)


def test_table_chunk_independent_and_border():
    rng = np.random.default_rng(0)
    m = ndi.binary_opening(rng.random((30, 28, 26)) < 0.55)
    lab = ndi.label(m)[0]
    ref = object_table(da.from_array(lab, chunks=lab.shape), voxel_size=(1.0, 0.5, 2.0), unit="nm")
    got = object_table(da.from_array(lab, chunks=(7, 9, 5)), voxel_size=(1.0, 0.5, 2.0), unit="nm")
    np.testing.assert_allclose(got.to_numpy(dtype=float), ref.to_numpy(dtype=float), rtol=1e-9)
    # volumes and border flags by hand
    counts = np.bincount(lab.ravel())[1:]
    np.testing.assert_array_equal(ref["voxels"], counts)
    border = set(
        np.unique(
            np.concatenate(
                [
                    lab[0].ravel(),
                    lab[-1].ravel(),
                    lab[:, 0].ravel(),
                    lab[:, -1].ravel(),
                    lab[:, :, 0].ravel(),
                    lab[:, :, -1].ravel(),
                ]
            )
        )
    ) - {0}
    assert set(ref.index[ref["touches_border"]]) == border


def test_statistics_number_and_volume_weighted():
    *_, m = _pack()
    lab, _ = label_components(da.from_array(m, chunks=20))
    tab = object_table(lab, voxel_size=VS, unit="µm")
    st = object_statistics(tab)
    d = tab["equivalent_diameter"].to_numpy()
    v = tab["volume"].to_numpy()
    s = st.sel(measure="equivalent_diameter")
    assert int(s["count"].sel(weighting="number")) == len(d)
    assert float(s["mean"].sel(weighting="number")) == pytest.approx(d.mean())
    assert float(s["std"].sel(weighting="number")) == pytest.approx(d.std())
    assert float(s["mean"].sel(weighting="volume")) == pytest.approx((d * v).sum() / v.sum())
    ds = np.sort(d)
    assert float(s["D50"].sel(weighting="number")) == ds[int(np.ceil(0.5 * len(d))) - 1]
    assert float(s["min"].sel(weighting="number")) == d.min()
    assert float(s["D90"].sel(weighting="volume")) >= float(s["D90"].sel(weighting="number"))
    # border objects are left out by default
    tab2 = tab.copy()
    tab2.loc[tab2.index[0], "touches_border"] = True
    assert int(object_statistics(tab2).n_objects) == len(d) - 1
    assert int(object_statistics(tab2, exclude_border=False).n_objects) == len(d)


def test_fragment_without_peak_is_its_own_object():
    m = np.zeros((20, 20, 20), dtype=bool)
    m[3:15, 3:15, 3:15] = True
    m[8, 17, 8] = True  # two voxels from the cube: the cube's maximum wins its footprint
    lab, n = separate_objects(da.from_array(m, chunks=7), voxel_size=VS)
    out = lab.compute()
    assert n == 2
    np.testing.assert_array_equal(out > 0, m)
    assert out[8, 17, 8] == 2


def test_label_points_equals_scipy():
    from ooc.measure.objects import label_points

    rng = np.random.default_rng(4)
    m = rng.random((15, 14, 13)) < 0.08
    ref = ndi.label(m, ndi.generate_binary_structure(3, 3))[0]
    pts = np.argwhere(m)[rng.permutation(int(m.sum()))]  # any order in
    p, lab, k = label_points(pts, m.shape)
    assert k == ref.max()
    np.testing.assert_array_equal(lab, ref[tuple(p.T)])
