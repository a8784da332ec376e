"""One volume convention: a Dask array with its geometry, from whatever the user has.

Every public function that takes a volume (features, segmentation, measurements, simulations)
accepts the ``xarray.DataArray`` that :func:`ooc.open_volume` returns (geometry from its
coordinates and attrs), or a NumPy/Dask array with ``voxel_size`` and ``unit`` given as
keywords, and turns it into a :class:`Volume` with :func:`as_volume`. Units convert here:
:attr:`Volume.voxel_size_m` is the voxel size in metres whatever unit the volume uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ooc.errors import ConfigError
from ooc.units import metres_per_unit

__all__ = ["DEFAULT_CHUNK", "Volume", "as_volume", "in_metres"]

DEFAULT_CHUNK = 64
"""Chunk edge used when an in-memory NumPy volume is wrapped into Dask."""


@dataclass
class Volume:
    """A volume as a Dask array with its geometry (what every chunked operator works on).

    ``voxel_size`` is per axis in ``unit``; ``coords`` maps dim name to voxel-centre
    coordinates (``z``, ``y``, ``x`` for 3D, ``y``, ``x`` for 2D); ``attrs`` are the source's.
    """

    data: da.Array
    voxel_size: tuple[float, ...]
    unit: str = "voxel"
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> tuple[str, ...]:
        """Dimension names, ``("z", "y", "x")`` or ``("y", "x")``."""
        return ("z", "y", "x")[-self.data.ndim :]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape in voxels."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def voxel_size_m(self) -> tuple[float, ...]:
        """Voxel size in metres (the solvers' unit).

        Raises
        ------
        ConfigError
            When the volume's unit is not a length (e.g. plain voxels): give ``unit``.
        """
        metres = metres_per_unit(self.unit)
        if metres is None:
            raise ConfigError(
                f"volume unit {self.unit!r} is not a length; give voxel_size with unit= "
                "('nm', 'um', 'mm', 'm' or the long names)"
            )
        return tuple(v * metres for v in self.voxel_size)


def _per_axis(voxel_size: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    if np.ndim(voxel_size) == 0:
        return (float(voxel_size),) * ndim  # type: ignore[arg-type]
    return tuple(float(v) for v in voxel_size)  # type: ignore[union-attr]


def as_volume(
    volume: Any,
    *,
    voxel_size: Sequence[float] | float | None = None,
    unit: str | None = None,
    chunks: int | Sequence[int] | None = None,
) -> Volume:
    """Wrap ``volume`` (an ``xarray.DataArray`` from :func:`ooc.open_volume`, a Dask or NumPy
    array, or a :class:`Volume`) as a :class:`Volume`.

    ``voxel_size`` (one value or one per axis) and ``unit`` override the source's (xarray
    ``attrs["voxel_size"]``/``attrs["unit"]``, else the coordinate steps and units, else 1
    "voxel" per axis); ``chunks`` rechunks (a NumPy array defaults to
    :data:`DEFAULT_CHUNK`-voxel chunks).

    Raises
    ------
    ValueError
        For a volume that is not 2D/3D, (z, y, x)-ordered, or has non-positive voxel sizes.
    """
    if isinstance(volume, Volume):
        vol = Volume(volume.data, volume.voxel_size, volume.unit, volume.coords, volume.attrs)
    elif isinstance(volume, xr.DataArray):
        data = (
            volume.data
            if isinstance(volume.data, da.Array)
            else da.from_array(np.asarray(volume.data), chunks=chunks or DEFAULT_CHUNK)
        )
        dims = ("z", "y", "x")[-volume.ndim :]
        if tuple(volume.dims) != dims:
            raise ValueError(f"a volume's dims must be {dims}, got {volume.dims}")
        attrs = dict(volume.attrs)
        coords = {d: np.asarray(volume[d].values, dtype=float) for d in dims if d in volume.coords}
        vs = attrs.get("voxel_size") or [
            float(coords[d][1] - coords[d][0]) if d in coords and len(coords[d]) > 1 else 1.0
            for d in dims
        ]
        found = attrs.get("unit") or next(
            (volume[d].attrs.get("units") for d in dims if d in volume.coords), "voxel"
        )
        vol = Volume(data, tuple(float(v) for v in vs)[-volume.ndim :], str(found), coords, attrs)
    else:
        data = (
            volume
            if isinstance(volume, da.Array)
            else da.from_array(np.asarray(volume), chunks=chunks or DEFAULT_CHUNK)
        )
        vol = Volume(data, (1.0,) * data.ndim, "voxel")
    if vol.data.ndim not in (2, 3):
        raise ValueError(f"volumes must be 2D or 3D, got shape {vol.data.shape}")
    if voxel_size is not None:
        vol.voxel_size = _per_axis(voxel_size, vol.data.ndim)
        vol.coords = {}
    if unit is not None:
        vol.unit = unit
    if len(vol.voxel_size) != vol.data.ndim or min(vol.voxel_size) <= 0:
        raise ValueError(f"voxel_size needs {vol.data.ndim} positive values, got {vol.voxel_size}")
    if not vol.coords:
        vol.coords = {
            d: (np.arange(n) * v).astype(float)
            for d, n, v in zip(vol.dims, vol.shape, vol.voxel_size, strict=True)
        }
    if chunks is not None and not isinstance(volume, np.ndarray):
        vol.data = vol.data.rechunk(chunks)
    return vol


def in_metres(
    volume: Any, voxel_size: Sequence[float] | float | None = None, *, lazy: bool = False
) -> tuple[Any, Any]:
    """What the solvers take: the volume's array and its voxel size in metres.

    A ``DataArray`` from :func:`ooc.open_volume` (or a :class:`Volume`) gives its own voxel
    size, converted from its unit (``voxel_size`` given here, in metres, wins) and its values
    (read into memory unless ``lazy``); any other array is returned as it is, with
    ``voxel_size`` (metres, or None for voxel units).
    """
    if not isinstance(volume, xr.DataArray | Volume):
        return volume, voxel_size
    vol = as_volume(volume)
    data = vol.data if lazy else np.asarray(vol.data)
    return data, voxel_size if voxel_size is not None else vol.voxel_size_m
