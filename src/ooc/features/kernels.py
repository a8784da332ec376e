"""Filter-bank kernels: pure functions on one in-memory block, NumPy or CuPy alike.

Every kernel takes a 2D or 3D array (any real dtype; computed in float32) and returns float32
arrays of the same shape on the same device. The array module is taken from the input
(:func:`~ooc.xp.get_array_module`), so a CuPy block runs on the GPU through
``cupyx.scipy.ndimage`` and a NumPy block on the CPU through ``scipy.ndimage``; nothing here
knows about Dask, files or chunks.

Conventions
-----------
sigma
    Gaussian scale in **voxels**, one number or one per axis (the chunked layer converts
    physical scales and anisotropic voxel sizes to per-axis voxel scales).
spacing
    Length of a voxel along each axis, in any unit (default 1): derivatives are taken per
    that unit, so gradients and Hessians of anisotropic volumes are rotationally consistent.
mode, truncate
    As in ``scipy.ndimage.gaussian_filter``: how the array is extended past its edges, and
    where the kernel is cut, in standard deviations. A kernel reaches
    :func:`gaussian_radius` voxels, which is what the chunked layer uses as its halo.

Derived scales follow ilastik: the difference of Gaussians is ``G(ratio*sigma) - G(sigma)``
with ``ratio=0.66``; the structure tensor uses inner scale ``sigma`` and outer scale
``0.5*sigma``. Eigenvalues are computed in closed form (no per-voxel ``eigh``) and returned in
descending order along a new leading axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ooc.xp import get_array_module, ndimage_module

__all__ = [
    "difference_of_gaussians",
    "gaussian_derivatives",
    "gaussian_radius",
    "gaussian_smoothing",
    "gradient_magnitude",
    "hessian_eigenvalues",
    "laplacian_of_gaussian",
    "local_entropy",
    "local_variance",
    "sobel_magnitude",
    "structure_tensor_eigenvalues",
    "symmetric_eigenvalues",
]

Sigma = float | Sequence[float]
_SIGMA_EPS = 1e-15  # scipy.ndimage skips axes whose sigma is at most this


def _per_axis(value: Sigma | None, ndim: int, name: str, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,) * ndim
    out = (
        (float(value),) * ndim  # type: ignore[arg-type]
        if np.ndim(value) == 0
        else tuple(float(v) for v in value)  # type: ignore[union-attr]
    )
    if len(out) != ndim:
        raise ValueError(f"{name} needs 1 or {ndim} values (one per axis), got {value!r}")
    if min(out) < 0 or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return out


def _float32(image: Any) -> Any:
    xp = get_array_module(image)
    a = xp.asarray(image)
    if a.ndim not in (2, 3):
        raise ValueError(f"kernels take 2D or 3D arrays, got shape {a.shape}")
    return a.astype(xp.float32, copy=False)


def gaussian_radius(sigma: float, truncate: float = 4.0) -> int:
    """Voxels a Gaussian (or its derivatives) of scale ``sigma`` reaches on each side.

    The radius ``scipy.ndimage`` uses, ``int(truncate * sigma + 0.5)``; 0 for ``sigma`` 0.
    """
    if sigma <= _SIGMA_EPS:
        return 0
    return int(truncate * float(sigma) + 0.5)


def gaussian_derivatives(
    image: Any,
    sigma: Sigma,
    orders: Sequence[tuple[int, ...]],
    *,
    spacing: Sigma | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> dict[tuple[int, ...], Any]:
    """Gaussian derivatives of several orders at one scale, sharing the separable passes.

    Parameters
    ----------
    image
        2D or 3D array (NumPy or CuPy).
    sigma
        Scale, voxels (one value or one per axis). An axis with scale 0 is not smoothed and
        cannot be differentiated.
    orders
        Derivative order per axis for each wanted output, e.g. ``(0, 0, 0)`` (smoothing) or
        ``(1, 0, 1)`` (d²/dz dx); orders up to 2.
    spacing
        Voxel length per axis (default 1): an order-``k`` derivative along axis ``i`` is
        divided by ``spacing[i] ** k``.
    mode, truncate
        As in ``scipy.ndimage.gaussian_filter``.

    Returns
    -------
    dict
        ``orders -> float32 array`` of the image's shape. ``(0,)*ndim`` equals
        ``scipy.ndimage.gaussian_filter(image.astype(float32), sigma, mode=mode,
        truncate=truncate)`` (same passes in the same order).
    """
    img = _float32(image)
    ndim = img.ndim
    sig = _per_axis(sigma, ndim, "sigma", 0.0)
    sp = _per_axis(spacing, ndim, "spacing", 1.0)
    if min(sp) <= 0:
        raise ValueError(f"spacing must be > 0, got {spacing!r}")
    wanted = [tuple(int(o) for o in order) for order in orders]
    for order in wanted:
        if len(order) != ndim or min(order) < 0 or max(order) > 2:
            raise ValueError(f"orders must be {ndim} integers in 0..2, got {order}")
        for axis, o in enumerate(order):
            if o and sig[axis] <= _SIGMA_EPS:
                raise ValueError(
                    f"a derivative along axis {axis} needs sigma > 0 there, got sigma {sig}"
                )
    ndi = ndimage_module(get_array_module(img))
    level: dict[tuple[int, ...], Any] = {(): img}
    for axis in range(ndim):
        needed = sorted({order[: axis + 1] for order in wanted})
        nxt: dict[tuple[int, ...], Any] = {}
        for prefix in needed:
            src = level[prefix[:-1]]
            o = prefix[-1]
            if sig[axis] <= _SIGMA_EPS:
                nxt[prefix] = src
                continue
            out = ndi.gaussian_filter1d(
                src, sig[axis], axis=axis, order=o, mode=mode, truncate=truncate
            )
            if o and sp[axis] != 1.0:
                out *= np.float32(1.0 / sp[axis] ** o)
            nxt[prefix] = out
        level = nxt
    return {order: level[order] for order in wanted}


def _unit(ndim: int, *axes: int) -> tuple[int, ...]:
    order = [0] * ndim
    for a in axes:
        order[a] += 1
    return tuple(order)


def gaussian_smoothing(
    image: Any, sigma: Sigma, *, mode: str = "reflect", truncate: float = 4.0
) -> Any:
    """Gaussian smoothing at scale ``sigma`` (voxels); float32, the image's shape.

    Equal to ``scipy.ndimage.gaussian_filter(image.astype(float32), sigma, ...)``; scale 0 on
    every axis returns the image as float32.
    """
    img = _float32(image)
    return gaussian_derivatives(img, sigma, [(0,) * img.ndim], mode=mode, truncate=truncate)[
        (0,) * img.ndim
    ]


def gradient_magnitude(
    image: Any,
    sigma: Sigma,
    *,
    spacing: Sigma | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Gradient magnitude of Gaussian, ``sqrt(sum_i (dG_sigma/dx_i * image)^2)``; float32.

    Derivatives are per unit of ``spacing``. With unit spacing it equals
    ``scipy.ndimage.gaussian_gradient_magnitude``.
    """
    img = _float32(image)
    xp = get_array_module(img)
    orders = [_unit(img.ndim, a) for a in range(img.ndim)]
    d = gaussian_derivatives(img, sigma, orders, spacing=spacing, mode=mode, truncate=truncate)
    out = d[orders[0]] ** 2
    for o in orders[1:]:
        out += d[o] ** 2
    return xp.sqrt(out, out=out)


def laplacian_of_gaussian(
    image: Any,
    sigma: Sigma,
    *,
    spacing: Sigma | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Laplacian of Gaussian, ``sum_i d²G_sigma/dx_i² * image``; float32, per unit of spacing²."""
    img = _float32(image)
    orders = [_unit(img.ndim, a, a) for a in range(img.ndim)]
    d = gaussian_derivatives(img, sigma, orders, spacing=spacing, mode=mode, truncate=truncate)
    out = d[orders[0]].copy()
    for o in orders[1:]:
        out += d[o]
    return out


def difference_of_gaussians(
    image: Any,
    sigma: Sigma,
    *,
    ratio: float = 0.66,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Difference of Gaussians ``G(ratio*sigma) - G(sigma)`` (ilastik's pair); float32.

    Positive on blobs brighter than their surroundings at scale ``sigma``.
    """
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0, got {ratio}")
    img = _float32(image)
    sig = _per_axis(sigma, img.ndim, "sigma", 0.0)
    fine = gaussian_smoothing(img, [s * ratio for s in sig], mode=mode, truncate=truncate)
    fine -= gaussian_smoothing(img, sig, mode=mode, truncate=truncate)
    return fine


def symmetric_eigenvalues(components: Sequence[Any]) -> Any:
    """Eigenvalues of symmetric 2x2 or 3x3 matrices given per voxel, in closed form.

    Parameters
    ----------
    components
        Upper-triangle entries, each an array of the same shape: ``(a00, a11, a01)`` for 2x2
        or ``(a00, a11, a22, a01, a02, a12)`` for 3x3.

    Returns
    -------
    array
        float32, shape ``(n, *shape)``, eigenvalues in descending order along axis 0. 3x3 uses
        the trigonometric solution of the characteristic cubic (Smith 1961) on the matrix
        shifted by its mean eigenvalue and scaled to unit size, so float32 suffices.
    """
    comps = [_float32_any(c) for c in components]
    xp = get_array_module(*comps)
    if len(comps) == 3:
        a, c, b = comps
        mean = (a + c) * np.float32(0.5)
        half = (a - c) * np.float32(0.5)
        d = xp.sqrt(half * half + b * b)
        return xp.stack([mean + d, mean - d])
    if len(comps) != 6:
        raise ValueError(f"need 3 (2x2) or 6 (3x3) components, got {len(comps)}")
    a00, a11, a22, a01, a02, a12 = comps
    q = (a00 + a11 + a22) / np.float32(3.0)
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p2 = b00 * b00 + b11 * b11 + b22 * b22 + np.float32(2.0) * (a01 * a01 + a02 * a02 + a12 * a12)
    p = xp.sqrt(p2 / np.float32(6.0))
    inv = xp.where(p > 0, np.float32(1.0) / xp.where(p > 0, p, np.float32(1.0)), np.float32(0))
    b00, b11, b22 = b00 * inv, b11 * inv, b22 * inv
    c01, c02, c12 = a01 * inv, a02 * inv, a12 * inv
    det = (
        b00 * (b11 * b22 - c12 * c12)
        - c01 * (c01 * b22 - c12 * c02)
        + c02 * (c01 * c12 - b11 * c02)
    )
    r = xp.clip(det * np.float32(0.5), np.float32(-1.0), np.float32(1.0))
    phi = xp.arccos(r) / np.float32(3.0)
    two_p = np.float32(2.0) * p
    l0 = q + two_p * xp.cos(phi)
    l2 = q + two_p * xp.cos(phi + np.float32(2.0 * math.pi / 3.0))
    l1 = np.float32(3.0) * q - l0 - l2
    return xp.stack([l0, l1, l2]).astype(xp.float32, copy=False)


def _float32_any(a: Any) -> Any:
    xp = get_array_module(a)
    return xp.asarray(a).astype(xp.float32, copy=False)


def _pairs(ndim: int) -> list[tuple[int, int]]:
    """Upper-triangle index pairs in the order :func:`symmetric_eigenvalues` expects."""
    return [(i, i) for i in range(ndim)] + [(i, j) for i in range(ndim) for j in range(i + 1, ndim)]


def hessian_eigenvalues(
    image: Any,
    sigma: Sigma,
    *,
    spacing: Sigma | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Eigenvalues of the Hessian of Gaussian at scale ``sigma``, descending; float32.

    Returns an array of shape ``(ndim, *image.shape)``; second derivatives per unit of
    ``spacing``².
    """
    img = _float32(image)
    orders = [_unit(img.ndim, i, j) for i, j in _pairs(img.ndim)]
    d = gaussian_derivatives(img, sigma, orders, spacing=spacing, mode=mode, truncate=truncate)
    return symmetric_eigenvalues([d[o] for o in orders])


def structure_tensor_eigenvalues(
    image: Any,
    sigma: Sigma,
    *,
    outer_ratio: float = 0.5,
    spacing: Sigma | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Eigenvalues of the structure tensor, descending; float32, shape ``(ndim, *shape)``.

    The gradient is taken with Gaussian derivatives at the inner scale ``sigma``; the tensor
    ``g g^T`` is averaged with a Gaussian at the outer scale ``outer_ratio * sigma``
    (ilastik: 0.5). It reaches ``gaussian_radius(sigma) + gaussian_radius(outer_ratio*sigma)``.
    """
    img = _float32(image)
    ndim = img.ndim
    sig = _per_axis(sigma, ndim, "sigma", 0.0)
    orders = [_unit(ndim, a) for a in range(ndim)]
    g = gaussian_derivatives(img, sig, orders, spacing=spacing, mode=mode, truncate=truncate)
    outer = [s * outer_ratio for s in sig]
    comps = []
    for i, j in _pairs(ndim):
        prod = g[orders[i]] * g[orders[j]]
        comps.append(gaussian_smoothing(prod, outer, mode=mode, truncate=truncate))
    del g
    return symmetric_eigenvalues(comps)


def sobel_magnitude(
    image: Any,
    sigma: Sigma = 0.0,
    *,
    spacing: Sigma | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Magnitude of the Sobel gradient, after Gaussian smoothing at ``sigma`` (0: none); float32.

    ``sqrt(sum_i (sobel(image, axis=i) / spacing_i)^2)`` with ``scipy.ndimage.sobel`` (the
    [1, 2, 1] smoothing across the other axes included); reaches one voxel past the smoothing.
    """
    img = gaussian_smoothing(image, sigma, mode=mode, truncate=truncate)
    xp = get_array_module(img)
    ndi = ndimage_module(xp)
    sp = _per_axis(spacing, img.ndim, "spacing", 1.0)
    out = None
    for axis in range(img.ndim):
        d = ndi.sobel(img, axis=axis, mode=mode)
        if sp[axis] != 1.0:
            d *= np.float32(1.0 / sp[axis])
        d *= d
        out = d if out is None else out + d
    return xp.sqrt(out, out=out)


def local_variance(
    image: Any, sigma: Sigma, *, mode: str = "reflect", truncate: float = 4.0
) -> Any:
    """Gaussian-weighted local variance ``G*(x²) - (G*x)²`` at scale ``sigma``; float32, >= 0.

    Accumulated in float64 (the difference of two large terms would lose the variance of a
    bright, flat region in float32), returned as float32.
    """
    img = _float32(image)
    xp = get_array_module(img)
    ndi = ndimage_module(xp)
    sig = _per_axis(sigma, img.ndim, "sigma", 0.0)
    if max(sig) <= _SIGMA_EPS:
        raise ValueError(f"local_variance needs sigma > 0, got {sigma!r}")
    x = img.astype(xp.float64)
    mean = ndi.gaussian_filter(x, sig, mode=mode, truncate=truncate)
    x *= x
    sq = ndi.gaussian_filter(x, sig, mode=mode, truncate=truncate)
    del x
    sq -= mean * mean
    return xp.maximum(sq, 0.0).astype(xp.float32)


def local_entropy(
    image: Any,
    sigma: Sigma,
    *,
    bins: int = 16,
    value_range: tuple[float, float] | None = None,
    mode: str = "reflect",
    truncate: float = 4.0,
) -> Any:
    """Shannon entropy (bits) of the grey-level histogram in a Gaussian window; float32.

    Grey values are quantised into ``bins`` equal bins over ``value_range`` (values outside
    go to the end bins); each bin's local share ``p_b`` is the Gaussian-weighted (scale
    ``sigma``) mean of its indicator, and the entropy is ``-sum_b p_b log2 p_b`` in
    ``[0, log2(bins)]``. ``value_range`` must be fixed for the whole volume for results not to
    depend on blocks; the default, the block's own min and max, is for single arrays only.
    """
    img = _float32(image)
    xp = get_array_module(img)
    sig = _per_axis(sigma, img.ndim, "sigma", 0.0)
    if max(sig) <= _SIGMA_EPS:
        raise ValueError(f"local_entropy needs sigma > 0, got {sigma!r}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    if value_range is None:
        value_range = (float(img.min()), float(img.max()))
    lo, hi = (float(v) for v in value_range)
    scale = bins / (hi - lo) if hi > lo else 0.0
    q = xp.floor((img - np.float32(lo)) * np.float32(scale))
    q = xp.clip(q, 0, bins - 1).astype(xp.int16 if bins < 32768 else xp.int32)
    out = xp.zeros(img.shape, dtype=xp.float32)
    for b in range(bins):
        ind = q == b
        if not bool(ind.any()):
            continue
        p = gaussian_smoothing(ind.astype(xp.float32), sig, mode=mode, truncate=truncate)
        pos = p > 0
        out -= xp.where(pos, p * xp.log2(xp.where(pos, p, np.float32(1.0))), np.float32(0.0))
    xp.maximum(out, np.float32(0.0), out=out)
    return out
