"""Volume stores: Zarr v3 groups laid out as OME-Zarr (NGFF 0.5) multiscale images.

A store at ``url`` (a local path or an fsspec URL such as ``s3://bucket/scan.zarr``) holds::

    zarr.json            attributes: "ome" (multiscales), "ooc" (VolumeMetadata),
                         "ooc_store" (status and the write plan), "ooc_history" (provenance)
    0/, 1/, ...          the pyramid, level 0 at full resolution, each level halved per axis
    _progress/0, ...     while writing: one flag per region of a level, removed when complete

Writes are resumable: work is cut into chunk-aligned regions; a region's flag is set only after
all its chunks are stored, so a re-run skips it without reading its input. A region whose flag is
missing after a crash is compared chunk by chunk with what is stored, and only chunks that are
missing, torn or different are written again. ``status`` becomes "complete" only at the end.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BloscShuffle, BytesCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore

from ooc.errors import StoreError
from ooc.metadata import VolumeMetadata

__all__ = [
    "StoreError",
    "VolumeStore",
    "blosc_codec",
    "level_shapes",
    "region_grid",
]

Box = tuple[slice, slice, slice]
STATUS_COMPLETE = "complete"
STATUS_WRITING = "writing"


def blosc_codec(dtype: np.dtype, clevel: int = 3, cname: str = "zstd") -> BloscCodec:
    """Blosc with ``cname`` ("zstd" or "lz4"): byte shuffle for multi-byte types, bit shuffle
    for 1-byte labels."""
    shuffle = BloscShuffle.bitshuffle if np.dtype(dtype).itemsize == 1 else BloscShuffle.shuffle
    return BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle)


def level_shapes(
    shape: tuple[int, ...], chunks: tuple[int, ...], levels: int | None
) -> list[tuple[int, ...]]:
    """Shapes of the pyramid levels: each halves every axis (rounding up).

    With ``levels=None`` the pyramid stops at the first level that fits in one chunk.
    """
    shapes = [tuple(shape)]
    while (levels is None and any(s > c for s, c in zip(shapes[-1], chunks, strict=True))) or (
        levels is not None and len(shapes) < levels
    ):
        shapes.append(tuple(math.ceil(s / 2) for s in shapes[-1]))
    return shapes


def region_grid(
    shape: tuple[int, int, int], chunks: tuple[int, int, int], itemsize: int, max_bytes: int
) -> tuple[int, int, int]:
    """Region shape for writing: one chunk deep in z, as many whole chunk rows and columns as
    fit in ``max_bytes`` (x first, since slices are stored row by row), at least one chunk."""
    cz, cy, cx = chunks
    nx = max(1, min(math.ceil(shape[2] / cx), max_bytes // (cz * cy * cx * itemsize)))
    ny = max(1, min(math.ceil(shape[1] / cy), max_bytes // (cz * cy * nx * cx * itemsize)))
    return (cz, ny * cy, nx * cx)


def _boxes(shape: tuple[int, ...], step: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Box]]:
    ranges = [range(0, s, st) for s, st in zip(shape, step, strict=True)]
    for origin in itertools.product(*ranges):
        box = tuple(slice(o, min(o + st, s)) for o, st, s in zip(origin, step, shape, strict=True))
        yield tuple(o // st for o, st in zip(origin, step, strict=True)), box


# distinct colours for label values 1, 2, ... (value 0 is transparent background)
_LABEL_COLOURS = [
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66),
    (0, 114, 178), (213, 94, 0), (204, 121, 167), (120, 120, 120),
]  # fmt: skip


def _ome_attrs(
    meta: VolumeMetadata, shapes: list[tuple[int, ...]], name: str, channels: int | None
) -> dict[str, Any]:
    lead = [] if channels is None else [1.0]
    datasets = []
    for level in range(len(shapes)):
        factor = 2**level
        transforms: list[dict[str, Any]] = [
            {"type": "scale", "scale": [*lead, *(v * factor for v in meta.voxel_size)]}
        ]
        if level:
            # a coarse voxel's centre lies at the centre of the fine voxels it averages
            transforms.append(
                {
                    "type": "translation",
                    "translation": [
                        *([0.0] * len(lead)),
                        *(v * (factor - 1) / 2 for v in meta.voxel_size),
                    ],
                }
            )
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    axes = [{"name": a, "type": "space", "unit": meta.unit} for a in "zyx"]
    if channels is not None:
        axes.insert(0, {"name": "c", "type": "channel"})
    attrs: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": axes,
                "datasets": datasets,
                "type": "mode" if meta.kind == "labels" else "mean",
                "metadata": {
                    "description": "each level halves every axis: the most frequent label of"
                    " each 2x2x2 cell"
                    if meta.kind == "labels"
                    else "each level halves every axis: the mean of each 2x2x2 cell",
                    "method": "ooc.io.pyramid.downsample",
                },
            }
        ],
    }
    if meta.kind == "labels" and meta.labels:
        # NGFF image-label: viewers show the store as a label layer with these colours/names
        values = sorted(int(v) for v in meta.labels)
        attrs["image-label"] = {
            "version": "0.5",
            "colors": [
                {"label-value": v, "rgba": [*_LABEL_COLOURS[i % len(_LABEL_COLOURS)], 255]}
                for i, v in enumerate(values)
            ],
            "properties": [{"label-value": v, "class": meta.labels[str(v)]} for v in values],
        }
    return attrs


@dataclass
class VolumeStore:
    """An opened volume store; see the module docstring for its layout."""

    url: str
    storage_options: dict[str, Any]

    @property
    def group(self) -> zarr.Group:
        """The root Zarr group (re-opened on each access so attributes are current)."""
        return zarr.open_group(self.url, mode="r+", storage_options=self.storage_options or None)

    @property
    def attrs(self) -> dict[str, Any]:
        """The root group's attributes as a plain dict."""
        return dict(self.group.attrs)

    @property
    def metadata(self) -> VolumeMetadata:
        """The volume's validated metadata."""
        return VolumeMetadata.from_dict(self.attrs["ooc"], source=f"{self.url} (zarr.json 'ooc')")

    @property
    def status(self) -> str:
        """ "complete" once every level is written, else "writing"."""
        return self.attrs.get("ooc_store", {}).get("status", STATUS_WRITING)

    @property
    def plan(self) -> dict[str, Any]:
        """How the store is being written: shape, dtype, chunks, level shapes, regions, source."""
        return self.attrs["ooc_store"]["plan"]

    @property
    def channels(self) -> int | None:
        """Length of the leading channel axis, or None for a plain (z, y, x) volume."""
        return self.plan.get("channels")

    def array(self, level: int = 0) -> zarr.Array:
        """The Zarr array of pyramid ``level``."""
        return self.group[str(level)]

    @classmethod
    def open(cls, url: str, *, storage_options: dict[str, Any] | None = None) -> VolumeStore:
        """Open an existing store written by ooc."""
        try:
            group = zarr.open_group(url, mode="r", storage_options=storage_options or None)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            raise StoreError(f"{url}: no Zarr group found ({err})") from None
        if "ooc" not in group.attrs:
            raise StoreError(f"{url}: not an ooc volume store (no 'ooc' metadata in zarr.json)")
        return cls(url, storage_options or {})

    @classmethod
    def exists(cls, url: str, *, storage_options: dict[str, Any] | None = None) -> bool:
        """Whether a Zarr group exists at ``url``."""
        try:
            zarr.open_group(url, mode="r", storage_options=storage_options or None)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            return False
        return True

    @classmethod
    def create_or_resume(
        cls,
        url: str,
        *,
        shape: tuple[int, int, int],
        dtype: np.dtype,
        chunks: tuple[int, int, int],
        metadata: VolumeMetadata,
        plan_extra: dict[str, Any],
        levels: int | None = None,
        max_region_bytes: int = 64 * 2**20,
        clevel: int = 3,
        cname: str = "zstd",
        channels: int | None = None,
        regions: tuple[int, int, int] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> tuple[VolumeStore, bool]:
        """Create the store, or reopen an unfinished one written with the same plan.

        ``clevel`` and ``cname`` choose the Blosc compressor (see :func:`blosc_codec`).
        ``channels`` adds a leading channel axis ``c`` (e.g. one per class, for probabilities);
        ``shape`` and ``chunks`` stay the spatial (z, y, x) ones. ``regions`` fixes level 0's
        write-region shape (to write several stores region by region in step).

        Returns the store and whether it existed already (then its ``status`` tells whether
        anything is left to do). A store written with a different plan (other input, shape,
        dtype or chunks), complete or not, is refused with :class:`StoreError` and left untouched.
        """
        dtype = np.dtype(dtype)
        chunks = tuple(min(c, s) for c, s in zip(chunks, shape, strict=True))
        shapes = level_shapes(shape, chunks, levels)
        itemsize = dtype.itemsize * (channels or 1)
        # a coarser level's task reads 8x its output from the level above: budget / 8
        grids = [
            list(region_grid(s, chunks, itemsize, max_region_bytes // (8 if i else 1)))
            for i, s in enumerate(shapes)
        ]
        if regions is not None:
            grids[0] = list(regions)
        plan = {
            "shape": list(shape),
            "dtype": dtype.str,
            "chunks": list(chunks),
            "levels": [list(s) for s in shapes],
            "regions": grids,
            "clevel": clevel,
            **({"cname": cname} if cname != "zstd" else {}),
            **({"channels": channels} if channels is not None else {}),
            **plan_extra,
        }
        plan = _jsonable(plan)
        if cls.exists(url, storage_options=storage_options):
            store = cls.open(url, storage_options=storage_options)
            old = store.attrs.get("ooc_store", {}).get("plan") or {}
            if old != plan:
                diff = sorted(k for k in set(plan) | set(old) if old.get(k) != plan.get(k))
                what = (
                    "a complete store" if store.status == STATUS_COMPLETE else "an unfinished write"
                )
                raise StoreError(
                    f"{url}: holds {what} of a different input or layout (differs in {diff}); "
                    "an existing store is never overwritten: delete it or choose another output"
                )
            return store, True

        group = zarr.open_group(url, mode="w-", storage_options=storage_options or None)
        name = url.rstrip("/").rsplit("/", 1)[-1]
        group.attrs.update(
            {
                "ome": _ome_attrs(metadata, shapes, name, channels),
                "ooc": metadata.to_dict(),
                "ooc_store": {"status": STATUS_WRITING, "plan": plan},
                "ooc_history": [],
            }
        )
        codec = blosc_codec(dtype, clevel, cname)
        lead = () if channels is None else (channels,)
        for level, lshape in enumerate(shapes):
            group.create_array(
                str(level),
                shape=(*lead, *lshape),
                dtype=dtype,
                chunks=(*(1 for _ in lead), *chunks),
                compressors=codec,
                fill_value=0,
                dimension_names=(*("c" for _ in lead), "z", "y", "x"),
            )
        progress = group.create_group("_progress")
        for level, lshape in enumerate(shapes):
            grid = [math.ceil(s / r) for s, r in zip(lshape, plan["regions"][level], strict=True)]
            progress.create_array(
                str(level),
                shape=grid,
                dtype="uint8",
                chunks=(1, 1, 1),
                fill_value=0,
                compressors=None,
                dimension_names=("rz", "ry", "rx"),
            )
        return cls(url, storage_options or {}), False

    def regions(self, level: int) -> list[tuple[tuple[int, ...], Box]]:
        """The write regions of ``level``: (region index, box) pairs."""
        return list(_boxes(tuple(self.plan["levels"][level]), tuple(self.plan["regions"][level])))

    def pending_regions(self, level: int) -> list[tuple[tuple[int, ...], Box]]:
        """Regions of ``level`` whose completion flag is not set yet (none once complete)."""
        group = self.group
        if "_progress" not in group:  # finished: the flags were dropped with the last write
            return []
        done = np.asarray(group["_progress"][str(level)][...])
        return [(idx, box) for idx, box in self.regions(level) if not done[idx]]

    def write_region(
        self, level: int, index: tuple[int, ...], box: Box, data: np.ndarray, *, verify: bool
    ) -> dict[str, int]:
        """Store ``data`` (the voxels of ``box``; with channels first when the store has them)
        chunk by chunk, then flag the region done.

        With ``verify``, chunks already stored with equal content are left as they are (after
        a crash, only missing, torn or different chunks are written). Returns chunk counts.
        """
        arr = self.array(level)
        lead = () if self.channels is None else (slice(None),)
        chunks = arr.chunks[len(lead) :]
        written = kept = 0
        if not verify:
            codec = _plain_blosc(arr)
            if codec is None:
                arr[(*lead, *box)] = data
            else:
                _write_chunks(arr, codec, tuple(b.start for b in box), data)
            written = math.prod(
                math.ceil((b.stop - b.start) / c) for b, c in zip(box, chunks, strict=True)
            )
        else:
            local_shape = data.shape[len(lead) :]
            for _, local in _boxes(local_shape, chunks):
                target = (
                    *lead,
                    *(
                        slice(b.start + s.start, b.start + s.stop)
                        for b, s in zip(box, local, strict=True)
                    ),
                )
                block = data[(*lead, *local)]
                try:
                    same = np.array_equal(arr[target], block)
                except Exception:  # a torn or undecodable chunk is rewritten
                    same = False
                if same:
                    kept += 1
                else:
                    arr[target] = block
                    written += 1
        self.group["_progress"][str(level)][index] = 1
        return {"written": written, "kept": kept}

    def finish(self, history_record: dict[str, Any]) -> None:
        """Append the provenance record, drop the progress flags and mark the store complete."""
        group = self.group
        attrs = dict(group.attrs)
        state = dict(attrs["ooc_store"], status=STATUS_COMPLETE)
        group.attrs.update(
            {"ooc_history": [*attrs.get("ooc_history", []), history_record], "ooc_store": state}
        )
        if "_progress" in group:
            del group["_progress"]

    def add_history(self, record: dict[str, Any]) -> None:
        """Append a provenance record (e.g. when a later step registers or annotates the store)."""
        group = self.group
        group.attrs["ooc_history"] = [*group.attrs.get("ooc_history", []), record]


def _plain_blosc(arr: zarr.Array) -> Blosc | None:
    """The numcodecs Blosc that encodes a chunk of ``arr`` exactly as zarr does, when its codecs
    are only little-endian bytes and one Blosc and empty chunks are not written; else None."""
    serializer, compressors = arr.serializer, arr.compressors
    if (
        arr.filters
        or len(compressors) != 1
        or not isinstance(compressors[0], BloscCodec)
        or not isinstance(serializer, BytesCodec)
        or (serializer.endian is not None and serializer.endian.value != "little")
        or arr.metadata.zarr_format != 3
        or arr.config.write_empty_chunks
    ):
        return None
    c = compressors[0]
    shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c.shuffle.value]
    return Blosc(
        cname=c.cname.value,
        clevel=c.clevel,
        shuffle=shuffle,
        blocksize=c.blocksize,
        typesize=c.typesize,
    )


def _write_chunks(arr: zarr.Array, codec: Blosc, origin: tuple[int, ...], data: np.ndarray) -> None:
    """Encode and store the chunks of ``data`` (placed at ``origin`` of ``arr``, whose spatial
    start is chunk-aligned) one by one, in this thread.

    The bytes are those zarr writes: each chunk padded to the full chunk shape with the fill
    value, little-endian, Blosc-encoded; a chunk holding only the fill value is not stored. It
    spares zarr's per-call event-loop and thread hand-offs, which cost about as much as the
    compression itself on a 2-core machine (a local store's files are written directly).
    """
    chunks = arr.chunks
    lead = len(chunks) - len(origin)  # a channel axis is always whole in ``data``
    origin = (0,) * lead + origin
    fill = arr.fill_value
    store = arr.store_path.store
    prefix = f"{arr.store_path.path}/" if arr.store_path.path else ""
    prototype = default_buffer_prototype()
    root = Path(store.root) if isinstance(store, LocalStore) else None
    little = data.dtype.newbyteorder("<")
    ranges = [range(0, n, c) for n, c in zip(data.shape, chunks, strict=True)]
    for start in itertools.product(*ranges):
        local = tuple(
            slice(s, min(s + c, n)) for s, c, n in zip(start, chunks, data.shape, strict=True)
        )
        block = data[local]
        if block.shape != tuple(chunks):
            padded = np.full(chunks, fill, dtype=little)
            padded[tuple(slice(0, n) for n in block.shape)] = block
            block = padded
        block = np.ascontiguousarray(block, dtype=little)
        if not np.any(block != fill):
            continue
        coords = tuple((o + s) // c for o, s, c in zip(origin, start, chunks, strict=True))
        key = prefix + arr.metadata.encode_chunk_key(coords)
        encoded = codec.encode(block)
        if root is not None:
            _put_file(root / key, encoded)
        else:
            sync(store.set(key, prototype.buffer.from_bytes(encoded)))


def _put_file(path: Path, data: bytes) -> None:
    """Write ``path`` as zarr's local store does: to a temporary name, then renamed over it (a
    reader never sees a half-written chunk), but in this thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{uuid.uuid4().hex}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
