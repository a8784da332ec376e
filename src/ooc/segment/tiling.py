"""Overlapping tiles on a global grid, blended with a smooth window (no seams, no chunk effects).

Tiles sit on one grid anchored at the volume's origin (starts ``0, stride, 2*stride, ...``, the
last one flush with the far edge), whatever the Dask blocks are; each voxel's result is the
window-weighted mean of the results of every tile that covers it. A block computes the tiles
that meet it, reading ``tile - 1`` voxels of halo, so the blended result is the same for any
chunking, and the window (a raised cosine, small but non-zero at tile borders) fades each
tile out where zero padding inside a network makes it least reliable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["blend_tiles", "tile_starts", "tile_window"]


def tile_starts(n: int, tile: int, stride: int) -> list[int]:
    """Starts of the tiles covering ``[0, n)`` along one axis.

    ``0, stride, 2*stride, ...`` while a tile fits, then one flush with the end (``n - tile``);
    ``[0]`` when ``n <= tile`` (the caller pads that tile).
    """
    if tile < 1 or stride < 1 or stride > tile:
        raise ValueError(f"need 1 <= stride <= tile, got tile {tile}, stride {stride}")
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def tile_window(shape: Sequence[int], *, floor: float = 1e-3) -> np.ndarray:
    """Separable raised-cosine window ``prod_i sin²(pi (k_i + 0.5) / n_i)``, at least ``floor``.

    float32, ``shape``; peaks in the tile's middle and falls to about ``floor`` at its
    borders.
    """
    w = np.ones((), dtype=np.float64)
    for n in shape:
        k = np.arange(n)
        w1 = np.maximum(np.sin(np.pi * (k + 0.5) / n) ** 2, floor)
        w = np.multiply.outer(w, w1)
    return w.astype(np.float32)


def blend_tiles(
    padded: np.ndarray,
    crop: tuple[slice, ...],
    *,
    origin: Sequence[int],
    volume_shape: Sequence[int],
    tile: Sequence[int],
    stride: Sequence[int],
    predict: Callable[[np.ndarray], np.ndarray],
    n_out: int,
    window: np.ndarray | None = None,
) -> np.ndarray:
    """Blend tile predictions over one block.

    Parameters
    ----------
    padded
        The block with its halo (``tile - 1`` voxels where the volume goes on).
    crop
        Slices of ``padded`` that are the block.
    origin
        Global voxel index of ``padded[0, 0, 0]``.
    volume_shape
        Shape of the whole volume (fixes the global tile grid).
    tile, stride
        Tile shape and step, voxels per axis.
    predict
        ``(*tile) array -> (n_out, *tile)`` float array (e.g. class probabilities).
    n_out
        Output channels.
    window
        Blending weights of the tile's shape (default :func:`tile_window`).

    Returns
    -------
    numpy.ndarray
        float32 ``(n_out, *block.shape)``: the window-weighted mean over the covering tiles.
    """
    ndim = padded.ndim
    tile = [min(int(t), int(n)) for t, n in zip(tile, volume_shape, strict=True)]
    stride = [min(int(s), t) for s, t in zip(stride, tile, strict=True)]
    if window is None:
        window = tile_window(tile)
    lo = [int(o) + c.start for o, c in zip(origin, crop, strict=True)]
    hi = [int(o) + c.stop for o, c in zip(origin, crop, strict=True)]
    out = np.zeros((n_out, *(b - a for a, b in zip(lo, hi, strict=True))), dtype=np.float32)
    wsum = np.zeros(out.shape[1:], dtype=np.float32)
    per_axis = []
    for a in range(ndim):
        starts = tile_starts(int(volume_shape[a]), tile[a], stride[a])
        per_axis.append([s for s in starts if s < hi[a] and s + tile[a] > lo[a]])
    for starts in _product(per_axis):
        src = tuple(
            slice(s - int(o), s - int(o) + t) for s, o, t in zip(starts, origin, tile, strict=True)
        )
        for a, sl in enumerate(src):
            if sl.start < 0 or sl.stop > padded.shape[a]:
                raise ValueError("the block's halo does not hold a whole tile; use tile - 1")
        pred = np.asarray(predict(padded[src]), dtype=np.float32)
        # the part of the tile inside this block
        t0 = [max(s, a) for s, a in zip(starts, lo, strict=True)]
        t1 = [min(s + t, b) for s, t, b in zip(starts, tile, hi, strict=True)]
        in_tile = tuple(slice(a - s, b - s) for a, b, s in zip(t0, t1, starts, strict=True))
        in_out = tuple(slice(a - o, b - o) for a, b, o in zip(t0, t1, lo, strict=True))
        w = window[in_tile]
        out[(slice(None), *in_out)] += pred[(slice(None), *in_tile)] * w
        wsum[in_out] += w
    out /= wsum
    return out


def _product(lists: list[list[int]]) -> Any:
    if not lists:
        yield ()
        return
    for v in lists[0]:
        for rest in _product(lists[1:]):
            yield (v, *rest)


def padded_shape(shape: Sequence[int], multiple: int) -> tuple[int, ...]:
    """``shape`` rounded up to a multiple of ``multiple`` per axis."""
    return tuple(int(math.ceil(n / multiple) * multiple) for n in shape)
