"""Array-module helpers shared by every NumPy/CuPy kernel: find CuPy without importing it."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["cupy_available", "get_array_module", "ndimage_module", "to_numpy"]


def get_array_module(*arrays: Any) -> ModuleType:
    """``cupy`` if any argument is a CuPy array, else ``numpy``.

    CuPy is looked up in ``sys.modules`` only: this never imports it (a CuPy array cannot exist
    unless CuPy was imported already).
    """
    cp = sys.modules.get("cupy")
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def ndimage_module(xp: ModuleType) -> ModuleType:
    """``scipy.ndimage`` for NumPy, ``cupyx.scipy.ndimage`` for CuPy."""
    if xp is np:
        import scipy.ndimage as ndi

        return ndi
    import cupyx.scipy.ndimage as cndi  # pragma: no cover - needs a GPU

    return cndi


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy array with the values of ``a`` (a NumPy or CuPy array; no copy for NumPy)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if get is not None:  # pragma: no cover - needs a GPU
        return get()
    return np.asarray(a)


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy as cp
    except Exception:
        return False
    try:  # pragma: no cover - needs a GPU
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover
        return False
