"""Chunked filter bank: equal to the whole-array result for any chunking; halos; physical scales."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ooc.features import (
    FILTERS,
    FeatureSpec,
    compute_features,
    cupy_available,
    feature,
    feature_stack,
    kernels,
)

_ALL = list(FILTERS)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...], FeatureSpec, tuple[float, ...]]:
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(7, 22 if ndim == 3 else 40)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    names = draw(st.lists(st.sampled_from(_ALL), min_size=1, max_size=3, unique=True))
    filters = {}
    for n in names:
        low = 0.0 if n in ("gaussian", "sobel") else 0.3
        filters[n] = draw(st.lists(st.sampled_from([low, 0.7, 1.0, 1.6]), min_size=1, max_size=2))
    voxel = tuple(draw(st.sampled_from([1.0, 1.5, 3.0])) for _ in range(ndim))
    unit = draw(st.sampled_from(["voxel", "physical"]))
    spec = FeatureSpec(filters=filters, sigma_unit=unit, value_range=(0.0, 4000.0))
    seed = draw(st.integers(0, 2**16))
    img = np.random.default_rng(seed).integers(0, 4000, size=shape).astype(np.uint16)
    return img, chunks, spec, voxel


@settings(max_examples=25, deadline=None)
@given(case=_cases())
def test_chunked_equals_whole_for_any_chunking(case: tuple) -> None:
    img, chunks, spec, voxel = case
    whole = feature_stack(img, spec, voxel_size=voxel)
    lazy = compute_features(da.from_array(img, chunks=chunks), spec, voxel_size=voxel)
    assert lazy.shape == whole.shape
    assert lazy.dtype == np.float32
    got = lazy.compute()
    scale = np.abs(whole).max(axis=tuple(range(1, whole.ndim)), keepdims=True) + 1e-6
    np.testing.assert_allclose(got / scale, whole / scale, rtol=0, atol=1e-6)


def test_default_spec_is_ilastiks_matrix() -> None:
    spec = FeatureSpec()
    assert spec.n_channels(3) == 7 * (1 + 1 + 1 + 1 + 3 + 3) == 70
    assert spec.n_channels(2) == 7 * (1 + 1 + 1 + 1 + 2 + 2)
    assert dict(spec.filters)["hessian"] == (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
    # round trip through JSON form
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    sub = FeatureSpec.ilastik(sigmas=(1.0, 3.5), filters=("gaussian", "structure"))
    assert sub.channel_names(3)[:2] == ["gaussian_s1", "gaussian_s3.5"]


def test_halo_follows_each_filters_parameters() -> None:
    # gaussian: int(4 * 2 + 0.5) = 8; structure: 8 + int(4 * 1 + 0.5) = 12; sobel: 1 more
    assert FeatureSpec(filters={"gaussian": [2.0]}).halo() == (8, 8, 8)
    assert FeatureSpec(filters={"structure": [2.0]}).halo() == (12, 12, 12)
    assert FeatureSpec(filters={"sobel": [0.0]}).halo() == (1, 1, 1)
    assert FeatureSpec(filters={"gaussian": [2.0]}, truncate=3.0).halo() == (6, 6, 6)
    # anisotropic voxels: a 2-voxel scale (finest axis) is 2/3 voxel along a 3x coarser z
    spec = FeatureSpec(filters={"gaussian": [2.0]})
    assert spec.voxel_sigma(2.0, (3.0, 1.0, 1.0), 3) == pytest.approx((2 / 3, 2.0, 2.0))
    assert spec.halo((3.0, 1.0, 1.0)) == (3, 8, 8)
    phys = FeatureSpec(filters={"gaussian": [6.0]}, sigma_unit="physical")
    assert phys.voxel_sigma(6.0, (3.0, 2.0, 2.0), 3) == pytest.approx((2.0, 3.0, 3.0))


def test_physical_sigmas_follow_the_voxel_size_of_an_xarray_volume() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(size=(16, 20, 18)).astype(np.float32)
    vol = xr.DataArray(
        da.from_array(img, chunks=(5, 7, 6)),
        dims=("z", "y", "x"),
        coords={
            d: np.arange(n) * v for d, n, v in zip("zyx", img.shape, (3.0, 1.0, 1.0), strict=True)
        },
        attrs={"voxel_size": [3.0, 1.0, 1.0], "unit": "nanometer"},
    )
    spec = FeatureSpec(filters={"gaussian": [3.0]}, sigma_unit="physical")
    got = compute_features(vol, spec).compute()[0]
    np.testing.assert_allclose(
        got, ndi.gaussian_filter(img.astype(np.float64), (1.0, 3.0, 3.0)), atol=1e-5
    )


def test_thin_chunks_are_merged_and_results_keep_the_volume_shape() -> None:
    img = np.random.default_rng(0).normal(size=(30, 11, 13)).astype(np.float32)
    spec = FeatureSpec(filters={"gaussian": [3.5], "hessian": [1.6]})
    lazy = compute_features(da.from_array(img, chunks=(2, 11, 13)), spec)  # halo 14 > chunk 2
    assert lazy.shape == (4, 30, 11, 13)
    np.testing.assert_allclose(lazy.compute(), feature_stack(img, spec), rtol=0, atol=1e-4)


def test_one_feature_as_a_dataset_with_coordinates() -> None:
    img = np.random.default_rng(1).normal(size=(12, 14, 10)).astype(np.float32)
    vol = xr.DataArray(
        da.from_array(img, chunks=5),
        dims=("z", "y", "x"),
        coords={d: np.arange(n) * 0.5 for d, n in zip("zyx", img.shape, strict=True)},
        attrs={"voxel_size": [0.5, 0.5, 0.5], "unit": "micrometer"},
    )
    ds = feature(vol, filter="hessian", sigma=1.0)
    assert sorted(ds.data_vars) == ["hessian_e0_s1", "hessian_e1_s1", "hessian_e2_s1"]
    ref = kernels.hessian_eigenvalues(img, 1.0)  # sigma in voxels (the default sigma_unit)
    np.testing.assert_allclose(ds["hessian_e0_s1"].values, ref[0], atol=1e-5)
    assert ds["x"].attrs["units"] == "micrometer"


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_chunked_cupy_stack_matches_numpy() -> None:  # pragma: no cover - needs a GPU
    import cupy as cp

    from ooc.features import to_device

    img = np.random.default_rng(2).integers(0, 4000, size=(20, 21, 22)).astype(np.uint16)
    spec = FeatureSpec(filters={"gaussian": [1.0], "hessian": [1.6], "structure": [1.0]})
    gpu = compute_features(to_device(da.from_array(img, chunks=9), "gpu"), spec)
    out = gpu.compute()
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(out), feature_stack(img, spec), rtol=1e-4, atol=1e-2)
