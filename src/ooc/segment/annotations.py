"""Sparse training labels: from label stores, TIFFs, arrays, JSON shapes or labelled 2D slices.

Whatever the source, labels become an :class:`Annotations`: the voxel coordinates of the
labelled voxels and their label values (integers >= 1; 0 means unlabelled in every dense
source). Dense sources are read chunk by chunk, so a sparse label store of any size loads in
bounded memory.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ooc.errors import InputError
from ooc.features.chunked import Volume, as_volume
from ooc.metadata import validate

__all__ = ["Annotations", "load_annotations", "rasterize"]

_AXES = ("z", "y", "x")


@dataclass
class Annotations:
    """Labelled voxels of a volume.

    Attributes
    ----------
    coords
        int64 ``(N, ndim)`` voxel indices (z, y, x), unique, in C order.
    labels
        ``(N,)`` label values (integers >= 1).
    shape
        Shape of the volume they label.
    class_names
        Optional names of label values.
    source
        Where they came from (a path, or a description), for provenance.
    """

    coords: np.ndarray
    labels: np.ndarray
    shape: tuple[int, ...]
    class_names: dict[int, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.int64).reshape(-1, len(self.shape))
        self.labels = np.asarray(self.labels).astype(np.int64, copy=False).ravel()
        self.shape = tuple(int(n) for n in self.shape)
        if len(self.coords) != len(self.labels):
            raise ValueError(f"{len(self.coords)} coordinates but {len(self.labels)} labels")
        if len(self.labels) and self.labels.min() < 1:
            raise ValueError("label values must be >= 1 (0 means unlabelled)")
        if len(self.coords) and (
            self.coords.min() < 0 or np.any(self.coords.max(axis=0) >= np.array(self.shape))
        ):
            raise ValueError(f"annotation coordinates fall outside the volume {self.shape}")

    @property
    def classes(self) -> np.ndarray:
        """Sorted distinct label values."""
        return np.unique(self.labels)

    @property
    def n_voxels(self) -> int:
        """Number of labelled voxels."""
        return len(self.labels)

    @property
    def fraction(self) -> float:
        """Labelled voxels as a fraction of the volume."""
        return self.n_voxels / math.prod(self.shape)

    def counts(self) -> dict[int, int]:
        """Labelled voxels per label value."""
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}

    def to_dense(
        self, region: tuple[slice, ...] | None = None, dtype: Any = np.uint16
    ) -> np.ndarray:
        """Dense labels of ``region`` (slices; None: the whole volume), 0 where unlabelled."""
        start, stop = _region(region, self.shape)
        out = np.zeros([b - a for a, b in zip(start, stop, strict=True)], dtype=dtype)
        inside = self._inside(start, stop)
        out[tuple((self.coords[inside] - np.array(start)).T)] = self.labels[inside]
        return out

    def _inside(self, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
        return np.all((self.coords >= np.array(start)) & (self.coords < np.array(stop)), axis=1)

    def subsample(self, max_per_class: int, *, seed: int = 0) -> Annotations:
        """At most ``max_per_class`` voxels of each label, chosen at random (reproducibly)."""
        rng = np.random.default_rng(seed)
        keep = []
        for value in self.classes:
            idx = np.flatnonzero(self.labels == value)
            if len(idx) > max_per_class:
                idx = np.sort(rng.choice(idx, max_per_class, replace=False))
            keep.append(idx)
        sel = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
        return Annotations(
            self.coords[sel], self.labels[sel], self.shape, dict(self.class_names), self.source
        )

    @classmethod
    def from_dense(
        cls,
        labels: Any,
        *,
        class_names: Mapping[int, str] | None = None,
        source: str = "array",
    ) -> Annotations:
        """Labelled voxels of a dense label array (NumPy or Dask; 0 = unlabelled).

        A Dask array is scanned chunk by chunk (on the active scheduler); only the labelled
        voxels are kept. A NumPy array is scanned where it is, never sent to a cluster.
        """
        arr = labels if isinstance(labels, da.Array) else np.asarray(labels)
        if arr.dtype.kind not in "iub":
            raise InputError(f"{source}: labels must be integers, got {arr.dtype}")

        def nonzero(block: np.ndarray, origin: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
            idx = np.nonzero(block)
            coords = np.stack(idx, axis=1).astype(np.int64) + np.array(origin, dtype=np.int64)
            return coords, np.asarray(block[idx]).astype(np.int64)

        if isinstance(arr, da.Array):
            offsets = [np.cumsum((0, *c[:-1])) for c in arr.chunks]
            tasks = []
            for index in np.ndindex(*arr.numblocks):
                origin = tuple(int(offsets[a][i]) for a, i in enumerate(index))
                tasks.append(dask.delayed(nonzero)(arr.blocks[index], origin))
            parts = dask.compute(*tasks)
        else:
            parts = (nonzero(arr, (0,) * arr.ndim),)
        coords = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, arr.ndim))
        values = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
        if len(values) and values.min() < 0:
            raise InputError(f"{source}: label values must be >= 0 (0 = unlabelled)")
        order = np.lexsort(coords.T[::-1]) if len(coords) else np.zeros(0, dtype=np.int64)
        return cls(coords[order], values[order], arr.shape, dict(class_names or {}), source)


def _region(
    region: tuple[slice, ...] | None, shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if region is None:
        return (0,) * len(shape), tuple(shape)
    start = tuple(0 if s.start is None else int(s.start) for s in region)
    stop = tuple(n if s.stop is None else int(s.stop) for s, n in zip(region, shape, strict=True))
    return start, stop


def _merge(
    parts: Iterable[tuple[np.ndarray, int]], shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Union of (coords, label) parts; where parts overlap, the later one wins."""
    coords, labels = [], []
    for c, value in parts:
        c = np.asarray(c, dtype=np.int64).reshape(-1, len(shape))
        ok = np.all((c >= 0) & (c < np.array(shape)), axis=1)
        coords.append(c[ok])
        labels.append(np.full(int(ok.sum()), value, dtype=np.int64))
    if not coords:
        return np.zeros((0, len(shape)), dtype=np.int64), np.zeros(0, dtype=np.int64)
    c = np.concatenate(coords)
    v = np.concatenate(labels)
    flat = np.ravel_multi_index(tuple(c.T), shape)
    # keep the last occurrence of each voxel: unique on the reversed order
    _, last = np.unique(flat[::-1], return_index=True)
    keep = len(flat) - 1 - last
    return c[keep], v[keep]


def _ball(centre: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Integer voxels within the ellipsoid of per-axis ``radius`` (voxels) about ``centre``.

    Radius 0, or a ball too thin to hold a voxel centre: the voxel nearest ``centre``.
    """
    nearest = np.floor(centre + 0.5).astype(np.int64)[None]
    if np.any(radius <= 0):
        return nearest
    lo = np.ceil(centre - radius).astype(np.int64)
    hi = np.floor(centre + radius).astype(np.int64)
    grids = np.meshgrid(*(np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)), indexing="ij")
    pts = np.stack([g.ravel() for g in grids], axis=1)
    inside = (((pts - centre) / radius) ** 2).sum(axis=1) <= 1.0 + 1e-9
    return pts[inside] if inside.any() else nearest


def rasterize(
    document: Mapping[str, Any],
    like: Any,
    *,
    base_dir: str | Path | None = None,
    source: str = "annotations",
) -> Annotations:
    """Voxels of a JSON annotation document (``schemas/annotations.schema.json``).

    Parameters
    ----------
    document
        The parsed JSON: boxes, points, strokes and labelled slices, each with a label value.
    like
        The volume they annotate (``xarray.DataArray``, Dask/NumPy array or
        :class:`~ooc.features.Volume`): its shape, voxel size and coordinates place physical
        coordinates.
    base_dir
        Folder that relative TIFF paths of slice annotations are relative to.
    source
        Name of the document, used in error messages.

    Returns
    -------
    Annotations
        Later shapes overwrite earlier ones where they overlap.
    """
    validate(dict(document), "annotations", source=source)
    vol = as_volume(like)
    shape = vol.shape
    ndim = len(shape)
    physical = document.get("units", "voxel") == "physical"
    vs = np.asarray(vol.voxel_size, dtype=float)
    origin = np.array([vol.coords[d][0] for d in vol.dims], dtype=float)

    def to_voxel(pos: Sequence[float], what: str) -> np.ndarray:
        p = np.asarray(pos, dtype=float)
        if len(p) != ndim:
            raise InputError(
                f"{source}: {what} has {len(p)} coordinates; the volume has {ndim} axes"
            )
        return (p - origin) / vs if physical else p

    def radius_of(r: float) -> np.ndarray:
        return np.full(ndim, float(r)) / (vs if physical else 1.0)

    parts: list[tuple[np.ndarray, int]] = []

    def add(coords: np.ndarray, label: int, what: str) -> None:
        inside = np.all((coords >= 0) & (coords < np.array(shape)), axis=1)
        if not inside.any():
            raise InputError(f"{source}: {what} lies outside the volume {shape}")
        parts.append((coords[inside], label))

    for k, item in enumerate(document["annotations"]):
        what = f"annotations/{k} ({item['type']})"
        label = int(item["label"]) if "label" in item else 0
        if item["type"] == "box":
            a, b = to_voxel(item["start"], what), to_voxel(item["stop"], what)
            if physical:  # centres within [start, stop]
                lo, hi = np.ceil(a - 1e-9), np.floor(b + 1e-9) + 1
            else:  # centres (i) within [start, stop)
                lo, hi = np.ceil(a), np.ceil(b)
            lo = np.clip(lo, 0, shape).astype(int)
            hi = np.clip(hi, 0, shape).astype(int)
            if np.any(hi <= lo):
                raise InputError(f"{source}: {what} lies outside the volume {shape} or is empty")
            grids = np.meshgrid(
                *(np.arange(x, y) for x, y in zip(lo, hi, strict=True)), indexing="ij"
            )
            add(np.stack([g.ravel() for g in grids], axis=1), label, what)
        elif item["type"] == "point":
            add(
                _ball(to_voxel(item["position"], what), radius_of(item.get("radius", 0))),
                label,
                what,
            )
        elif item["type"] == "stroke":
            r = radius_of(item.get("radius", 1))
            pts = [to_voxel(p, what) for p in item["points"]]
            step = max(0.25, 0.5 * float(min(r.min(), 1.0))) if r.max() > 0 else 0.25
            samples = [pts[0]]
            for p, q in itertools.pairwise(pts):
                n = max(1, math.ceil(float(np.linalg.norm(q - p)) / step))
                samples.extend(p + (q - p) * t for t in np.linspace(0, 1, n + 1)[1:])
            balls = np.concatenate([_ball(c, r) for c in samples])
            add(np.unique(balls, axis=0), label, what)
        else:  # slice
            if ndim != 3:
                raise InputError(f"{source}: {what}: slice annotations need a 3D volume")
            plane = item["labels"]
            if isinstance(plane, str):
                path = Path(plane) if base_dir is None else Path(base_dir) / plane
                plane = _read_tiff(path)
            parts.extend(
                _slice_parts(
                    np.asarray(plane), item["axis"], item["index"], shape, f"{source}: {what}"
                )
            )
    coords, labels = _merge(parts, shape)
    order = np.lexsort(coords.T[::-1]) if len(coords) else np.zeros(0, dtype=np.int64)
    names = {int(k): v for k, v in document.get("classes", {}).items()}
    return Annotations(coords[order], labels[order], shape, names, source)


def _slice_parts(
    plane: np.ndarray, axis_name: str, index: int, shape: tuple[int, ...], where: str
) -> list[tuple[np.ndarray, int]]:
    """(coords, label) parts of a labelled plane ``index`` along ``axis_name`` of a 3D volume."""
    if axis_name not in _AXES:
        raise InputError(f"{where}: plane axis must be one of {_AXES}, got {axis_name!r}")
    axis = _AXES.index(axis_name)
    want = tuple(n for a, n in enumerate(shape) if a != axis)
    if plane.shape != want:
        raise InputError(
            f"{where}: labels of shape {plane.shape}; a {axis_name} plane of the volume is {want}"
        )
    if not 0 <= int(index) < shape[axis]:
        raise InputError(f"{where}: plane index {index} outside 0..{shape[axis] - 1}")
    if plane.dtype.kind not in "iub" or (plane.size and plane.min() < 0):
        raise InputError(f"{where}: plane labels must be integers >= 0, got {plane.dtype}")
    idx = np.nonzero(plane)
    coords = np.insert(np.stack(idx, axis=1), axis, int(index), axis=1)
    values = plane[idx].astype(np.int64)
    return [(coords[values == v], int(v)) for v in np.unique(values)]


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path))
    except FileNotFoundError:
        raise InputError(f"{path}: label TIFF not found") from None
    except Exception as err:  # tifffile raises several kinds on bad files
        raise InputError(f"{path}: not a readable TIFF ({err})") from None


def _open_zarr_labels(url: str) -> tuple[da.Array, dict[int, str]]:
    import zarr

    try:
        node = zarr.open(url, mode="r")
    except Exception as err:
        raise InputError(f"{url}: no Zarr array or group found ({err})") from None
    names: dict[int, str] = {}
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        meta = attrs.get("ooc", {})
        names = {int(k): str(v) for k, v in meta.get("labels", {}).items() if str(k).isdigit()}
        if "0" not in node:
            raise InputError(f"{url}: a Zarr group without level '0'; give the labels array")
        node = node["0"]
    return da.from_zarr(node), names


def load_annotations(
    source: Any,
    like: Any,
    *,
    plane: tuple[str, int] | None = None,
    class_names: Mapping[int, str] | None = None,
) -> Annotations:
    """Sparse training labels of volume ``like`` from any supported source.

    Parameters
    ----------
    source
        One of: a JSON file path or an already parsed dict (boxes, points, strokes,
        labelled slices; ``schemas/annotations.schema.json``); a label TIFF (``.tif`` or
        ``.tiff``: a stack of the volume's shape, or one 2D image with ``plane``); a Zarr
        label store (an ooc volume store of kind "labels", or a plain Zarr array); a NumPy or
        Dask array or ``xarray.DataArray`` of labels; or an :class:`Annotations`. In dense
        sources 0 means unlabelled and values >= 1 are classes.
    like
        The volume to be segmented (``xarray.DataArray`` from :func:`ooc.open_volume`,
        Dask or NumPy array): shapes must match, and physical coordinates refer to its axes.
    plane
        For a 2D label image of a 3D volume: ``(axis, index)``, e.g. ``("z", 0)`` for a
        labelled top face (a mineral map used to classify the whole volume).
    class_names
        Names of label values (override those from the source).

    Returns
    -------
    Annotations
        The labelled voxels; nothing else is kept in memory.

    Raises
    ------
    InputError
        Naming the source, when it cannot be read or does not fit the volume.
    """
    vol = like if isinstance(like, Volume) else as_volume(like)
    shape = vol.shape
    names: dict[int, str] = {}
    if isinstance(source, Annotations):
        ann = source
    elif isinstance(source, Mapping):
        ann = rasterize(source, vol, source="annotations (dict)")
    elif isinstance(source, xr.DataArray | da.Array | np.ndarray):
        data = source.data if isinstance(source, xr.DataArray) else source
        ann = _dense(data, shape, plane, "labels array")
    else:
        path = str(source)
        low = path.lower().rstrip("/")
        if low.endswith(".json"):
            try:
                doc = json.loads(Path(path).read_text())
            except FileNotFoundError:
                raise InputError(f"{path}: annotation file not found") from None
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: not valid JSON: {err}") from None
            ann = rasterize(doc, vol, base_dir=Path(path).parent, source=path)
        elif low.endswith((".tif", ".tiff")):
            ann = _dense(_read_tiff(Path(path)), shape, plane, path)
        else:
            data, names = _open_zarr_labels(path)
            ann = _dense(data, shape, plane, path)
        ann.source = path
    if ann.shape != shape:
        raise InputError(f"{ann.source or 'annotations'}: shape {ann.shape}, volume {shape}")
    ann.class_names = {**ann.class_names, **names, **dict(class_names or {})}
    if ann.n_voxels == 0:
        raise InputError(f"{ann.source or 'annotations'}: no labelled voxels (all 0)")
    return ann


def _dense(
    data: Any, shape: tuple[int, ...], plane: tuple[str, int] | None, source: str
) -> Annotations:
    arr = data if isinstance(data, da.Array) else np.asarray(data)
    if plane is not None:
        if len(shape) != 3 or arr.ndim != 2:
            raise InputError(f"{source}: plane= takes a 2D label image of a 3D volume")
        parts = _slice_parts(np.asarray(arr), plane[0], plane[1], shape, source)
        coords, labels = _merge(parts, shape)
        order = np.lexsort(coords.T[::-1]) if len(coords) else np.zeros(0, dtype=np.int64)
        return Annotations(coords[order], labels[order], shape, {}, source)
    if tuple(arr.shape) != tuple(shape):
        raise InputError(
            f"{source}: labels of shape {tuple(arr.shape)} do not match the volume {tuple(shape)}"
            + (
                "; for a 2D label image of one plane pass plane=(axis, index)"
                if arr.ndim == 2
                else ""
            )
        )
    return Annotations.from_dense(arr, source=source)
