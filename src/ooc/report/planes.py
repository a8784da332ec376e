"""The three middle planes of a volume store, read from a pyramid level small enough to show.

Only the planes are read (``open_volume`` is lazy; a plane touches one layer of chunks), from
the finest level whose largest edge fits ``max_pixels``, so a report of a 2048³ scan reads a
few MB, not the scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
import zarr
from matplotlib import colormaps

from ooc.io import open_volume

__all__ = ["Planes", "middle_planes", "phase_colours"]

_AXES = ("z", "y", "x")


@dataclass(frozen=True)
class Planes:
    """Three orthogonal planes through a volume's middle: ``planes[d]`` is the plane normal to
    axis ``d`` ("z": dims (y, x); "y": (z, x); "x": (z, y)) with physical coordinates; ``level``
    the pyramid level read, ``shape`` the full (level 0) shape, ``attrs`` the volume's attrs."""

    planes: dict[str, xr.DataArray]
    level: int
    shape: tuple[int, ...]
    attrs: dict[str, Any]


def _level_shapes(url: str) -> list[tuple[int, ...]]:
    group = zarr.open_group(url, mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    return [tuple(group[d["path"]].shape) for d in datasets]


def middle_planes(url: str, *, max_pixels: int = 512) -> Planes:
    """The z, y and x middle planes of the volume store at ``url``.

    Parameters
    ----------
    url
        A volume store (grey or labels), as ``ooc.open_volume`` opens it.
    max_pixels
        The largest plane edge wanted, in pixels: the finest pyramid level whose largest edge
        is at most this is read (the coarsest level if none is).

    Returns
    -------
    Planes
        The planes as in-memory DataArrays, coordinates in the volume's unit.
    """
    shapes = _level_shapes(url)
    level = next((i for i, s in enumerate(shapes) if max(s[-3:]) <= max_pixels), len(shapes) - 1)
    volume = open_volume(url, level=level)
    planes = {d: volume.isel({d: volume.sizes[d] // 2}).compute() for d in _AXES}
    return Planes(planes, level, tuple(int(n) for n in shapes[0][-3:]), dict(volume.attrs))


def phase_colours(url: str) -> dict[int, tuple[float, ...]]:
    """Colour (RGB, 0-1) of each label value of the label store at ``url``: its NGFF
    ``image-label`` colours where it has them, else matplotlib's ``tab10`` in label order."""
    group = zarr.open_group(url, mode="r")
    named = (group.attrs.get("ooc") or {}).get("labels") or {}
    given = {
        int(c["label-value"]): tuple(float(v) / 255 for v in c["rgba"][:3])
        for c in ((group.attrs.get("ome") or {}).get("image-label") or {}).get("colors", [])
    }
    tab = colormaps["tab10"]
    values = sorted({int(v) for v in named} | set(given))
    return {
        v: given.get(v, tuple(float(c) for c in np.asarray(tab(i % 10))[:3]))
        for i, v in enumerate(values)
    }
