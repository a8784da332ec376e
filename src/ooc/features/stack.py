"""The whole filter bank on one in-memory block (NumPy or CuPy), computed scale by scale.

Filters at one scale share their Gaussian derivatives (smoothing, gradient, Laplacian, Hessian
and the structure tensor's gradient come from one set of separable passes), and each feature is
cut to the wanted voxels as soon as it is made, so a block never holds the padded stack.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ooc.features import kernels
from ooc.features.spec import FILTERS, FeatureSpec
from ooc.xp import get_array_module

__all__ = ["feature_stack", "features_at", "iter_features"]

_DERIV = ("gaussian", "gradient", "laplacian", "hessian", "structure", "dog", "sobel")


def iter_features(
    block: Any, spec: FeatureSpec, *, voxel_size: Sequence[float] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield ``(first channel, features)`` for every filter and scale of ``spec``.

    ``features`` is a float32 array of shape ``(n, *block.shape)`` holding channels
    ``first .. first+n-1`` of :meth:`FeatureSpec.channel_names` order; ``voxel_size`` (one
    length per axis) converts scales and derivative units as :class:`FeatureSpec` says.
    """
    xp = get_array_module(block)
    img = xp.asarray(block).astype(xp.float32, copy=False)
    ndim = img.ndim
    sp = spec.spacing(voxel_size, ndim)
    kw = {"mode": spec.mode, "truncate": spec.truncate}
    pairs = [(i, i) for i in range(ndim)] + [
        (i, j) for i in range(ndim) for j in range(i + 1, ndim)
    ]

    def unit(*axes: int) -> tuple[int, ...]:
        o = [0] * ndim
        for a in axes:
            o[a] += 1
        return tuple(o)

    first: dict[tuple[str, float], int] = {}
    c = 0
    for name, scales in spec.filters:
        for s in scales:
            first[(name, s)] = c
            c += FILTERS[name] or ndim

    scales = sorted({s for _, ss in spec.filters for s in ss})
    wanted = {name: set(ss) for name, ss in spec.filters}
    for s in scales:
        sig = spec.voxel_sigma(s, voxel_size, ndim)
        here = [n for n in _DERIV if s in wanted.get(n, ())]
        orders: set[tuple[int, ...]] = set()
        if {"gaussian", "dog", "sobel"} & set(here):
            orders.add(unit())
        if {"gradient", "structure"} & set(here):
            orders.update(unit(a) for a in range(ndim))
        if "laplacian" in here:
            orders.update(unit(a, a) for a in range(ndim))
        if "hessian" in here:
            orders.update(unit(i, j) for i, j in pairs)
        jet = (
            kernels.gaussian_derivatives(img, sig, sorted(orders), spacing=sp, **kw)
            if orders
            else {}
        )
        for name in here:
            key = (name, s)
            if name == "gaussian":
                yield first[key], jet[unit()][None]
            elif name == "gradient":
                g = jet[unit(0)] ** 2
                for a in range(1, ndim):
                    g += jet[unit(a)] ** 2
                yield first[key], xp.sqrt(g, out=g)[None]
            elif name == "laplacian":
                lap = jet[unit(0, 0)].copy()
                for a in range(1, ndim):
                    lap += jet[unit(a, a)]
                yield first[key], lap[None]
            elif name == "hessian":
                yield first[key], kernels.symmetric_eigenvalues([jet[unit(i, j)] for i, j in pairs])
            elif name == "structure":
                outer = [v * spec.structure_outer for v in sig]
                comps = [
                    kernels.gaussian_smoothing(jet[unit(i)] * jet[unit(j)], outer, **kw)
                    for i, j in pairs
                ]
                yield first[key], kernels.symmetric_eigenvalues(comps)
            elif name == "dog":
                fine = kernels.gaussian_smoothing(img, [v * spec.dog_ratio for v in sig], **kw)
                fine -= jet[unit()]
                yield first[key], fine[None]
            elif name == "sobel":
                yield first[key], kernels.sobel_magnitude(jet[unit()], 0.0, spacing=sp, **kw)[None]
        del jet
        if s in wanted.get("variance", ()):
            yield first[("variance", s)], kernels.local_variance(img, sig, **kw)[None]
        if s in wanted.get("entropy", ()):
            ent = kernels.local_entropy(
                img, sig, bins=spec.entropy_bins, value_range=spec.value_range, **kw
            )
            yield first[("entropy", s)], ent[None]


def feature_stack(
    block: Any,
    spec: FeatureSpec,
    *,
    voxel_size: Sequence[float] | None = None,
    crop: tuple[slice, ...] | None = None,
    channels_last: bool = False,
) -> Any:
    """The filter bank of ``block``, cut to ``crop``.

    Parameters
    ----------
    block
        2D or 3D array (NumPy or CuPy), the region to filter including any halo.
    spec
        The filter bank.
    voxel_size
        Voxel length per axis (None: isotropic).
    crop
        Slices of ``block`` to keep (the block without its halo); None keeps all.
    channels_last
        Return ``(*shape, C)`` (C-contiguous, so ``reshape(-1, C)`` is a feature matrix)
        instead of ``(C, *shape)``.

    Returns
    -------
    array
        float32 features of the cropped shape, channels in :meth:`FeatureSpec.channel_names`
        order, on the block's device.
    """
    xp = get_array_module(block)
    ndim = np.ndim(block)
    crop = crop or tuple(slice(None) for _ in range(ndim))
    shape = tuple(len(range(*c.indices(n))) for c, n in zip(crop, np.shape(block), strict=True))
    C = spec.n_channels(ndim)
    out = xp.empty((*shape, C) if channels_last else (C, *shape), dtype=xp.float32)
    for c0, feats in iter_features(block, spec, voxel_size=voxel_size):
        for k in range(feats.shape[0]):
            if channels_last:
                out[..., c0 + k] = feats[k][crop]
            else:
                out[c0 + k] = feats[k][crop]
    return out


def features_at(
    block: Any,
    spec: FeatureSpec,
    points: tuple[Any, ...],
    *,
    voxel_size: Sequence[float] | None = None,
) -> Any:
    """Features at some voxels of ``block``: ``points`` is one index array per axis (N each).

    Returns a float32 ``(N, C)`` feature matrix (channels in
    :meth:`FeatureSpec.channel_names` order) without keeping the stack of the whole block.
    """
    xp = get_array_module(block)
    n = len(points[0])
    out = xp.empty((n, spec.n_channels(np.ndim(block))), dtype=xp.float32)
    for c0, feats in iter_features(block, spec, voxel_size=voxel_size):
        for k in range(feats.shape[0]):
            out[:, c0 + k] = feats[k][points]
    return out
