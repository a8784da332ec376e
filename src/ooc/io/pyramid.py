"""Pyramid kernels: halve a block along every axis by mean (grey) or mode (labels)."""

from __future__ import annotations

import numpy as np

__all__ = ["downsample", "downsample_mean", "downsample_mode"]


def _even(block: np.ndarray) -> np.ndarray:
    """Pad odd sizes by repeating the last voxel, so every axis splits into pairs."""
    pad = [(0, s % 2) for s in block.shape]
    return np.pad(block, pad, mode="edge") if any(p for _, p in pad) else block


def _blocks_of_eight(block: np.ndarray) -> np.ndarray:
    """(z, y, x) -> (z/2, y/2, x/2, 8), odd sizes padded (see :func:`_even`)."""
    block = _even(block)
    z, y, x = (s // 2 for s in block.shape)
    return block.reshape(z, 2, y, 2, x, 2).transpose(0, 2, 4, 1, 3, 5).reshape(z, y, x, 8)


def downsample_mean(block: np.ndarray) -> np.ndarray:
    """Mean of each 2x2x2 cell; integers are rounded half up, floats keep their type."""
    block = _even(block)
    if np.issubdtype(block.dtype, np.integer):
        # pairwise sums in a wide type, axis by axis, one output slice at a time: exact, and
        # the temporaries stay small (they fit the cache; no fresh pages for a large block)
        wide = np.int64 if block.dtype.itemsize > 2 or block.dtype.kind == "i" else np.uint32
        out = np.empty([s // 2 for s in block.shape], dtype=block.dtype)
        for k in range(out.shape[0]):
            total = block[2 * k].astype(wide)
            total += block[2 * k + 1]
            total = total[0::2] + total[1::2]
            total = total[:, 0::2] + total[:, 1::2]
            total += 4
            total >>= 3  # floor division by 8 (an arithmetic shift for signed types too)
            out[k] = total
        return out
    z, y, x = (s // 2 for s in block.shape)
    return (
        block.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5), dtype=np.float64).astype(block.dtype)
    )


def downsample_mode(block: np.ndarray) -> np.ndarray:
    """Most frequent label of each 2x2x2 cell; ties go to the smallest label."""
    cells = np.sort(_blocks_of_eight(block), axis=-1)
    counts = (cells[..., :, None] == cells[..., None, :]).sum(axis=-1)
    # sorted ascending, so argmax's first maximum is the smallest of the tied labels
    pick = counts.argmax(axis=-1)[..., None]
    return np.take_along_axis(cells, pick, axis=-1)[..., 0]


def downsample(block: np.ndarray, kind: str) -> np.ndarray:
    """Halve ``block`` for a "grey" (mean) or "labels" (mode) volume."""
    return downsample_mode(block) if kind == "labels" else downsample_mean(block)
