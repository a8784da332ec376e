"""Each kernel against scipy.ndimage or the formula, on small arrays (NumPy; CuPy when present)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from ooc.features import FeatureSpec, cupy_available, feature_stack, kernels

RNG = np.random.default_rng(7)
IMG = RNG.normal(1000.0, 200.0, size=(13, 17, 15)).astype(np.float32)


def _close(a: np.ndarray, b: np.ndarray, rel: float = 1e-5) -> None:
    scale = max(float(np.abs(b).max()), 1e-12)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


def test_gaussian_matches_scipy_with_per_axis_sigma() -> None:
    out = kernels.gaussian_smoothing(IMG, (0.5, 1.6, 2.2))
    assert out.dtype == np.float32
    ref = ndi.gaussian_filter(IMG.astype(np.float64), (0.5, 1.6, 2.2))
    _close(out, ref)
    # scale 0: the image itself
    np.testing.assert_array_equal(
        kernels.gaussian_smoothing(IMG.astype(np.uint16), 0.0), IMG.astype(np.uint16)
    )


def test_gradient_magnitude_matches_scipy() -> None:
    out = kernels.gradient_magnitude(IMG, 1.3)
    _close(out, ndi.gaussian_gradient_magnitude(IMG.astype(np.float64), 1.3))


def test_gradient_per_physical_unit_on_a_ramp() -> None:
    # f = 3 z_phys + 2 y_phys - x_phys on voxels of 2 x 1 x 1 units: |grad f| = sqrt(14)
    z, y, x = np.meshgrid(
        np.arange(20) * 2.0, np.arange(20) * 1.0, np.arange(20) * 1.0, indexing="ij"
    )
    f = (3 * z + 2 * y - x).astype(np.float32)
    out = kernels.gradient_magnitude(f, (1.0, 2.0, 2.0), spacing=(2.0, 1.0, 1.0))
    inner = out[5:-5, 9:-9, 9:-9]
    # the kernel cut at 4 sigma has a second moment 1.5e-4 short of sigma²
    np.testing.assert_allclose(inner, math.sqrt(14.0), rtol=5e-4)


def test_laplacian_matches_scipy_and_a_quadratic() -> None:
    _close(
        kernels.laplacian_of_gaussian(IMG, 1.1), ndi.gaussian_laplace(IMG.astype(np.float64), 1.1)
    )
    # centred, so the truncated kernel's tiny zeroth moment (1e-4 at sigma 1) meets small x²
    z, y, x = np.meshgrid(*(np.arange(24.0) - 11.5,) * 3, indexing="ij")
    f = (0.5 * z**2 + 2.0 * y**2 - 1.0 * x**2).astype(np.float32)
    out = kernels.laplacian_of_gaussian(f, 1.0)
    np.testing.assert_allclose(out[6:-6, 6:-6, 6:-6], 2 * (0.5 + 2.0 - 1.0), rtol=1e-2)


def test_difference_of_gaussians_is_two_scipy_gaussians() -> None:
    out = kernels.difference_of_gaussians(IMG, 1.6, ratio=0.66)
    ref = ndi.gaussian_filter(IMG.astype(np.float64), 1.6 * 0.66) - ndi.gaussian_filter(
        IMG.astype(np.float64), 1.6
    )
    _close(out, ref, rel=1e-4)


def _hessian_ref(img: np.ndarray, sigma: float) -> np.ndarray:
    x = img.astype(np.float64)
    n = img.ndim
    H = np.empty((*img.shape, n, n))
    for i, j in itertools.product(range(n), repeat=2):
        order = [0] * n
        order[i] += 1
        order[j] += 1
        H[..., i, j] = ndi.gaussian_filter(x, sigma, order=order)
    return np.moveaxis(np.linalg.eigvalsh(H)[..., ::-1], -1, 0)


@pytest.mark.parametrize("shape", [(13, 17, 15), (21, 19)])
def test_hessian_eigenvalues_match_eigvalsh(shape: tuple[int, ...]) -> None:
    img = RNG.normal(size=shape).astype(np.float32)
    out = kernels.hessian_eigenvalues(img, 1.2)
    assert out.shape == (len(shape), *shape)
    assert out.dtype == np.float32
    ref = _hessian_ref(img, 1.2)
    _close(out, ref, rel=2e-4)
    assert np.all(np.diff(out, axis=0) <= 1e-6)  # descending


def test_structure_tensor_eigenvalues_match_eigvalsh() -> None:
    sigma, outer = 1.0, 0.5
    out = kernels.structure_tensor_eigenvalues(IMG, sigma, outer_ratio=outer)
    x = IMG.astype(np.float64)
    g = [ndi.gaussian_filter(x, sigma, order=[int(a == i) for a in range(3)]) for i in range(3)]
    J = np.empty((*IMG.shape, 3, 3))
    for i, j in itertools.product(range(3), repeat=2):
        J[..., i, j] = ndi.gaussian_filter(g[i] * g[j], sigma * outer)
    ref = np.moveaxis(np.linalg.eigvalsh(J)[..., ::-1], -1, 0)
    _close(out, ref, rel=2e-4)
    assert out.min() >= -1e-3 * ref.max()  # positive semi-definite


_entry = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    diag=st.lists(_entry, min_size=3, max_size=3),
    off=st.lists(_entry, min_size=3, max_size=3),
    kind=st.sampled_from(["general", "diagonal", "repeated", "zero"]),
)
def test_closed_form_3x3_eigenvalues(diag: list[float], off: list[float], kind: str) -> None:
    if kind == "diagonal":
        off = [0.0, 0.0, 0.0]
    elif kind == "zero":
        diag, off = [0.0] * 3, [0.0] * 3
    A = np.array([[diag[0], off[0], off[1]], [off[0], diag[1], off[2]], [off[1], off[2], diag[2]]])
    if kind == "repeated":  # eigenvalues (a, a, b) in a random basis
        q, _ = np.linalg.qr(np.array([[1.0, 2, 3], [0.5, -1, 2], [3, 1, -1]]) + np.diag(off))
        A = q @ np.diag([diag[0], diag[0], diag[1]]) @ q.T
    comps = [A[0, 0], A[1, 1], A[2, 2], A[0, 1], A[0, 2], A[1, 2]]
    out = kernels.symmetric_eigenvalues([np.array([c], dtype=np.float32) for c in comps])[:, 0]
    ref = np.linalg.eigvalsh(A.astype(np.float32).astype(np.float64))[::-1]
    scale = max(np.abs(ref).max(), 1.0)
    np.testing.assert_allclose(out, ref, atol=2e-3 * scale)


def test_closed_form_2x2_eigenvalues() -> None:
    a, b, c = RNG.normal(size=(3, 50)).astype(np.float32)
    out = kernels.symmetric_eigenvalues([a, c, b])
    A = np.stack([np.stack([a, b], -1), np.stack([b, c], -1)], -2).astype(np.float64)
    np.testing.assert_allclose(out, np.linalg.eigvalsh(A)[:, ::-1].T, atol=1e-5)


def test_sobel_magnitude_is_the_formula() -> None:
    out = kernels.sobel_magnitude(IMG, 0.0, spacing=(2.0, 1.0, 1.0))
    x = IMG.astype(np.float64)
    ref = np.sqrt((ndi.sobel(x, 0) / 2) ** 2 + ndi.sobel(x, 1) ** 2 + ndi.sobel(x, 2) ** 2)
    _close(out, ref)


def _reflect(i: int, n: int) -> int:
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - i - 1
    return i


def _weights(sigma: float, truncate: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    r = int(truncate * sigma + 0.5)
    k = np.arange(-r, r + 1)
    w = np.exp(-0.5 * k**2 / sigma**2)
    return k, w / w.sum()


def _window(img: np.ndarray, v: tuple[int, ...], sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights of the Gaussian window about voxel v (reflect mode), brute force."""
    k, w = _weights(sigma)
    vals, wts = [], []
    for offs in itertools.product(range(len(k)), repeat=img.ndim):
        idx = tuple(_reflect(v[a] + k[o], img.shape[a]) for a, o in enumerate(offs))
        vals.append(float(img[idx]))
        wts.append(float(np.prod([w[o] for o in offs])))
    return np.array(vals), np.array(wts)


def test_local_variance_is_the_weighted_variance() -> None:
    img = (RNG.normal(size=(9, 10, 11)) * 50 + 40000).astype(np.float32)  # bright, low contrast
    out = kernels.local_variance(img, 1.0)
    for v in [(0, 0, 0), (4, 5, 5), (8, 9, 10), (2, 7, 1)]:
        vals, w = _window(img, v, 1.0)
        mean = np.sum(w * vals)
        ref = np.sum(w * (vals - mean) ** 2)
        assert out[v] == pytest.approx(ref, rel=1e-3)


def test_local_entropy_is_the_windowed_histogram_entropy() -> None:
    img = RNG.integers(0, 100, size=(9, 10, 11)).astype(np.float32)
    out = kernels.local_entropy(img, 0.8, bins=8, value_range=(0.0, 100.0))
    q = np.clip(np.floor(img / 100.0 * 8), 0, 7)
    for v in [(0, 0, 0), (4, 5, 5), (8, 9, 10)]:
        vals, w = _window(q, v, 0.8)
        p = np.array([w[vals == b].sum() for b in range(8)])
        p = p[p > 0]
        assert out[v] == pytest.approx(-np.sum(p * np.log2(p)), abs=1e-4)
    assert out.max() <= 3.0 + 1e-5
    assert out.min() >= 0.0
    # a uniform image has no entropy
    assert np.all(kernels.local_entropy(np.full((6, 6, 6), 5.0), 1.0, value_range=(0, 10)) == 0)


def test_stack_channels_equal_the_single_kernels_and_2d_works() -> None:
    spec = FeatureSpec(
        filters={
            "gaussian": [0.0, 1.0],
            "gradient": [1.0],
            "laplacian": [1.0],
            "dog": [1.6],
            "hessian": [1.0],
            "structure": [0.7],
            "sobel": [0.0],
            "variance": [1.0],
            "entropy": [1.0],
        },
        value_range=(0.0, 2000.0),
    )
    for img in (IMG, IMG[5]):
        stack = feature_stack(img, spec)
        names = spec.channel_names(img.ndim)
        assert stack.shape == (len(names), *img.shape)
        assert stack.dtype == np.float32
        ch = dict(zip(names, stack, strict=True))
        np.testing.assert_array_equal(ch["gaussian_s0"], img)
        np.testing.assert_array_equal(ch["gaussian_s1"], kernels.gaussian_smoothing(img, 1.0))
        np.testing.assert_allclose(
            ch["gradient_s1"], kernels.gradient_magnitude(img, 1.0), rtol=1e-6
        )
        np.testing.assert_allclose(
            ch["laplacian_s1"], kernels.laplacian_of_gaussian(img, 1.0), rtol=1e-5, atol=1e-3
        )
        np.testing.assert_allclose(
            ch["dog_s1.6"], kernels.difference_of_gaussians(img, 1.6), atol=1e-3
        )
        h = kernels.hessian_eigenvalues(img, 1.0)
        for k in range(img.ndim):
            np.testing.assert_allclose(ch[f"hessian_e{k}_s1"], h[k], atol=1e-3)
        np.testing.assert_allclose(
            ch["entropy_s1"], kernels.local_entropy(img, 1.0, value_range=(0, 2000)), atol=1e-6
        )
        np.testing.assert_allclose(ch["variance_s1"], kernels.local_variance(img, 1.0), rtol=1e-6)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="sigma"):
        kernels.gaussian_smoothing(IMG, (1.0, 2.0))
    with pytest.raises(ValueError, match="derivative"):
        kernels.gradient_magnitude(IMG, (0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="2D or 3D"):
        kernels.gaussian_smoothing(np.zeros(5), 1.0)
    with pytest.raises(ValueError, match="unknown filter"):
        FeatureSpec(filters={"median": [1.0]})
    with pytest.raises(ValueError, match="> 0"):
        FeatureSpec(filters={"hessian": [0.0]})


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_kernels_match_numpy() -> None:  # pragma: no cover - needs a GPU
    import cupy as cp

    spec = FeatureSpec(
        filters={
            "gaussian": [0.0, 1.0],
            "gradient": [1.0],
            "laplacian": [1.6],
            "dog": [1.0],
            "hessian": [1.0],
            "structure": [1.0],
            "sobel": [0.0],
            "variance": [1.0],
            "entropy": [1.0],
        },
        value_range=(0.0, 2000.0),
    )
    gpu = feature_stack(cp.asarray(IMG), spec)
    assert isinstance(gpu, cp.ndarray)
    cpu = feature_stack(IMG, spec)
    np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-4, atol=1e-2)
