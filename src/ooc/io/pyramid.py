"""Pyramid kernels: halve a block along every axis by mean (grey) or mode (labels)."""

from __future__ import annotations

import numpy as np

__all__ = ["downsample", "downsample_mean", "downsample_mode"]


def _blocks_of_eight(block: np.ndarray) -> np.ndarray:
    """(z, y, x) -> (z/2, y/2, x/2, 8); odd sizes are padded by repeating the last voxel."""
    pad = [(0, s % 2) for s in block.shape]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode="edge")
    z, y, x = (s // 2 for s in block.shape)
    return block.reshape(z, 2, y, 2, x, 2).transpose(0, 2, 4, 1, 3, 5).reshape(z, y, x, 8)


def downsample_mean(block: np.ndarray) -> np.ndarray:
    """Mean of each 2x2x2 cell, rounded to the input's integer type (or kept as float)."""
    cells = _blocks_of_eight(block)
    mean = cells.mean(axis=-1, dtype=np.float64)
    if np.issubdtype(block.dtype, np.integer):
        return np.rint(mean).astype(block.dtype)
    return mean.astype(block.dtype)


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
