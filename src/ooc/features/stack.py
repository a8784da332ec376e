"""The whole filter bank on one in-memory block (NumPy or CuPy), computed scale by scale.

Filters at one scale share their Gaussian derivatives (smoothing, gradient, Laplacian, Hessian
and the structure tensor's gradient come from one set of separable passes), and each feature is
cut to the wanted voxels as soon as it is made, so a block never holds the padded stack. With a
crop, each scale filters only the crop plus that scale's own halo, not the whole padded block
(the block's halo is the largest scale's; a small scale on a 64³ block with the 14-voxel halo
of scale 3.5 would otherwise filter 2.2x the voxels it needs).
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


def _scale_window(
    crop: tuple[slice, ...], shape: tuple[int, ...], halo: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The part of a block one scale must filter for ``crop`` to be exact (``crop`` grown by
    ``halo``, within the block), and ``crop`` in that part's coordinates."""
    window, inner = [], []
    for c, n, h in zip(crop, shape, halo, strict=True):
        start, stop, _ = c.indices(n)
        lo, hi = max(start - h, 0), min(stop + h, n)
        window.append(slice(lo, hi))
        inner.append(slice(start - lo, stop - lo))
    return tuple(window), tuple(inner)


def iter_features(
    block: Any,
    spec: FeatureSpec,
    *,
    voxel_size: Sequence[float] | None = None,
    crop: tuple[slice, ...] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(first channel, features)`` for every filter and scale of ``spec``.

    ``features`` is a float32 array of shape ``(n, *shape)`` holding channels
    ``first .. first+n-1`` of :meth:`FeatureSpec.channel_names` order, where ``shape`` is the
    block's, or ``crop``'s when given (then each scale filters only ``crop`` grown by its own
    halo, :meth:`FeatureSpec.filter_halo`, and the values are those of the whole block);
    ``voxel_size`` (one length per axis) converts scales and derivative units as
    :class:`FeatureSpec` says.
    """
    xp = get_array_module(block)
    full = xp.asarray(block).astype(xp.float32, copy=False)
    ndim = full.ndim
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
        if crop is None:
            img, cut = full, (slice(None),) * ndim
        else:
            halo = [0] * ndim
            for name, ss in spec.filters:
                if s in ss:
                    h = spec.filter_halo(name, s, voxel_size, ndim)
                    halo = [max(a, b) for a, b in zip(halo, h, strict=True)]
            window, cut = _scale_window(crop, full.shape, halo)
            img = full[window]
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
                yield first[key], jet[unit()][cut][None]
            elif name == "gradient":
                g = jet[unit(0)] ** 2
                for a in range(1, ndim):
                    g += jet[unit(a)] ** 2
                yield first[key], xp.sqrt(g, out=g)[cut][None]
            elif name == "laplacian":
                lap = jet[unit(0, 0)].copy()
                for a in range(1, ndim):
                    lap += jet[unit(a, a)]
                yield first[key], lap[cut][None]
            elif name == "hessian":
                yield (
                    first[key],
                    kernels.symmetric_eigenvalues([jet[unit(i, j)][cut] for i, j in pairs]),
                )
            elif name == "structure":
                outer = [v * spec.structure_outer for v in sig]
                comps = [
                    kernels.gaussian_smoothing(jet[unit(i)] * jet[unit(j)], outer, **kw)[cut]
                    for i, j in pairs
                ]
                yield first[key], kernels.symmetric_eigenvalues(comps)
            elif name == "dog":
                fine = kernels.gaussian_smoothing(img, [v * spec.dog_ratio for v in sig], **kw)
                fine -= jet[unit()]
                yield first[key], fine[cut][None]
            elif name == "sobel":
                yield (
                    first[key],
                    kernels.sobel_magnitude(jet[unit()], 0.0, spacing=sp, **kw)[cut][None],
                )
        del jet
        if s in wanted.get("variance", ()):
            yield first[("variance", s)], kernels.local_variance(img, sig, **kw)[cut][None]
        if s in wanted.get("entropy", ()):
            ent = kernels.local_entropy(
                img, sig, bins=spec.entropy_bins, value_range=spec.value_range, **kw
            )
            yield first[("entropy", s)], ent[cut][None]


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
    for c0, feats in iter_features(block, spec, voxel_size=voxel_size, crop=crop):
        for k in range(feats.shape[0]):
            if channels_last:
                out[..., c0 + k] = feats[k]
            else:
                out[c0 + k] = feats[k]
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
