"""Ingest a raw scan into a volume store in one streaming pass, resumable after a crash.

The input is read in chunk-aligned regions (one chunk deep in z, as wide as the region budget
allows: whole slices for common scans), so peak memory is a few regions per worker, whatever
the volume's depth. Each region makes one pass: read (a TIFF slice is read whole, once, and
hashed from the same bytes), compress and write level 0, and halve it in memory for level 1.
The driver gathers the halved blocks into level 1's regions and writes each as soon as it is
whole, halving it again for level 2, and so on: no level is read back from the store. Work runs
on the active scheduler (a ``distributed.Client``, else a thread pool, or inline with Dask's
synchronous scheduler). Regions already written by an interrupted run are skipped; a coarser
region that would need them is then built from the store (:func:`build_pyramid`).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
from tqdm.auto import tqdm

from ooc.cluster import progress_enabled, run_tasks
from ooc.io.pyramid import downsample
from ooc.io.readers import InputError, TiffStackReader, VolumeReader
from ooc.io.store import STATUS_COMPLETE, Box, VolumeStore
from ooc.metadata import VolumeMetadata
from ooc.provenance import SEGMENT, input_digest, make_record, segment_digest

__all__ = ["IngestReport", "build_pyramid", "fingerprint", "ingest"]

Index = tuple[int, ...]


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: the store, its layout, chunk counts, time (seconds) and where it went.

    ``phases``: seconds per phase summed over all tasks ("read", "hash", "decode",
    "encode+write", "downsample"; "hash (separate pass)" for input not hashed while read,
    "pyramid from store" for coarse regions rebuilt from the store after a resume). With several
    workers they overlap, so they add up to more than ``seconds``.
    """

    url: str
    shape: tuple[int, int, int]
    dtype: str
    chunks: tuple[int, int, int]
    levels: int
    resumed: bool
    chunks_written: int
    chunks_kept: int
    regions_skipped: int
    seconds: float
    input_sha256: str
    phases: dict[str, float] = field(default_factory=dict)


def _add(total: dict[str, float], part: dict[str, float]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value


def _write_and_halve(
    store: VolumeStore,
    level: int,
    index: Index,
    box: Box,
    data: np.ndarray,
    *,
    verify: bool,
    halve: str | None,
    times: dict[str, float],
) -> dict[str, Any]:
    start = time.perf_counter()
    counts = store.write_region(level, index, box, data, verify=verify)
    written = time.perf_counter()
    down = downsample(data, halve) if halve else None
    times["encode+write"] = times.get("encode+write", 0.0) + written - start
    if halve:
        times["downsample"] = times.get("downsample", 0.0) + time.perf_counter() - written
    return {**counts, "level": level, "index": index, "down": down, "times": times}


class _Buffers:
    """Region-sized arrays passed from one task to the next within a process: a fresh large
    array costs page faults (and huge-page compaction) on first touch, a reused one does not."""

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []
        self.lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        with self.lock:
            for i, array in enumerate(self.free):
                if array.shape == shape and array.dtype == dtype:
                    return self.free.pop(i)
        return np.empty(shape, dtype=dtype)

    def give(self, array: np.ndarray) -> None:
        with self.lock:
            self.free.append(array)


def _ingest_region(
    reader: VolumeReader,
    url: str,
    options: dict[str, Any],
    index: Index,
    box: Box,
    *,
    verify: bool,
    hashed: bool,
    halve: str | None,
    buffers: _Buffers | None,
) -> dict[str, Any]:
    """Read one level-0 region (hashing its slice files when ``hashed``), write it, and halve it
    (mean or mode, ``halve``) for level 1. ``buffers``: arrays to reuse (threads only)."""
    times: dict[str, float] = {}
    digests: list[str] = []
    if hashed:
        assert isinstance(reader, TiffStackReader)
        shape = tuple(b.stop - b.start for b in box)
        out = buffers.take(shape, reader.dtype) if buffers is not None else None
        data, digests = reader.read_hashed(box, out=out, timer=times)
    else:
        start = time.perf_counter()
        data = reader.read(box)
        times["read"] = time.perf_counter() - start
    result = _write_and_halve(
        VolumeStore(url, options), 0, index, box, data, verify=verify, halve=halve, times=times
    )
    if buffers is not None and hashed:
        buffers.give(data)
    return {**result, "digests": digests}


def _write_coarse(
    url: str,
    options: dict[str, Any],
    level: int,
    index: Index,
    box: Box,
    data: np.ndarray,
    *,
    verify: bool,
    halve: str | None,
) -> dict[str, Any]:
    """Write one region of a coarser level gathered in memory, and halve it for the next."""
    store = VolumeStore(url, options)
    return _write_and_halve(store, level, index, box, data, verify=verify, halve=halve, times={})


def _hash_segment(path: str, start: int, length: int) -> dict[str, Any]:
    begin = time.perf_counter()
    digest = segment_digest(path, start, length)
    return {
        "segment": (path, start),
        "digest": digest,
        "times": {"hash (separate pass)": time.perf_counter() - begin},
    }


class _Runner:
    """Runs calls on the active scheduler and hands back their results as they finish.

    A ``distributed`` client if one is active; else inline under Dask's synchronous scheduler;
    else a thread pool of Dask's ``num_workers`` (default: the CPU count) threads.
    """

    def __init__(self) -> None:
        try:
            from distributed import get_client

            self.client: Any = get_client()
        except (ImportError, ValueError):
            self.client = None
        self.pool: ThreadPoolExecutor | None = None
        self.queue: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self.futures: set[Any] = set()
        if self.client is not None:
            self.workers = max(1, sum(self.client.nthreads().values()))
        elif dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded"):
            self.workers = 1
        else:
            self.workers = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ooc-ingest")

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self.client is not None:
            self.futures.add(self.client.submit(fn, *args, pure=False, **kwargs))
        elif self.pool is not None:
            self.futures.add(self.pool.submit(fn, *args, **kwargs))
        else:
            self.queue.append((fn, args, kwargs))

    def busy(self) -> int:
        """Calls submitted and not yet handed back."""
        return len(self.futures) + len(self.queue)

    def next(self) -> Any:
        """The result of a call that has finished (waiting for one if none has)."""
        if self.queue:
            fn, args, kwargs = self.queue.popleft()
            return fn(*args, **kwargs)
        if self.client is not None:
            from distributed import wait as wait_distributed

            done = wait_distributed(list(self.futures), return_when="FIRST_COMPLETED").done
        else:
            done = wait(self.futures, return_when=FIRST_COMPLETED).done
        future = next(iter(done))
        self.futures.discard(future)
        return future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _halvable(regions: list[tuple[Index, Box]]) -> bool:
    """Whether every region starts at an even voxel on every axis (so halving each region
    gives exactly its part of the next level)."""
    return all(b.start % 2 == 0 for _, box in regions for b in box)


def _contributors(box: Box, step: tuple[int, ...], finer_shape: tuple[int, ...]) -> list[Index]:
    """Indices of the finer level's regions (of shape ``step``) that a coarse ``box`` halves."""
    ranges = [
        range(2 * b.start // r, math.ceil(min(2 * b.stop, s) / r))
        for b, r, s in zip(box, step, finer_shape, strict=True)
    ]
    return list(itertools.product(*ranges))


class _Gather:
    """Coarse regions gathered in memory from halved finer regions, level by level.

    ``streamed[level]``: the regions of ``level`` made in this pass (level 0: those pending; a
    coarser region: when pending and every finer region it halves is streamed). A region whose
    buffer is full is handed back by :meth:`add` to be written.
    """

    def __init__(self, store: VolumeStore, kind: str) -> None:
        plan = store.plan
        self.shapes = [tuple(s) for s in plan["levels"]]
        self.steps = [tuple(r) for r in plan["regions"]]
        self.dtype = np.dtype(plan["dtype"])
        self.kind = kind
        self.boxes = [dict(store.regions(level)) for level in range(len(self.shapes))]
        pending = [dict(store.pending_regions(level)) for level in range(len(self.shapes))]
        self.streamed: list[set[Index]] = [set(pending[0])]
        for level in range(1, len(self.shapes)):
            finer = self.streamed[-1]
            if not finer or not _halvable(store.regions(level - 1)):
                self.streamed.append(set())
                continue
            self.streamed.append(
                {
                    idx
                    for idx, box in pending[level].items()
                    if all(
                        c in finer
                        for c in _contributors(box, self.steps[level - 1], self.shapes[level - 1])
                    )
                }
            )
        self.buffers: dict[tuple[int, Index], tuple[np.ndarray, list[int]]] = {}

    def halve(self, level: int) -> str | None:
        """How to halve the regions of ``level`` for the next level ("grey" or "labels"), or
        None when the next level is not made in this pass."""
        if level + 1 >= len(self.shapes) or not self.streamed[level + 1]:
            return None
        return self.kind

    def add(
        self, level: int, index: Index, down: np.ndarray
    ) -> list[tuple[Index, Box, np.ndarray]]:
        """Place the halved region ``index`` of ``level``; returns the regions of ``level + 1``
        that are now whole (index, box, voxels)."""
        box = self.boxes[level][index]
        origin = [b.start // 2 for b in box]
        coarse = level + 1
        step = self.steps[coarse]
        first = [o // r for o, r in zip(origin, step, strict=True)]
        last = [(o + n - 1) // r for o, n, r in zip(origin, down.shape, step, strict=True)]
        whole = []
        for idx in np.ndindex(*(b - a + 1 for a, b in zip(first, last, strict=True))):
            target = tuple(a + i for a, i in zip(first, idx, strict=True))
            if target not in self.streamed[coarse]:
                continue
            tbox = self.boxes[coarse][target]
            lo = [max(t.start, o) for t, o in zip(tbox, origin, strict=True)]
            hi = [min(t.stop, o + n) for t, o, n in zip(tbox, origin, down.shape, strict=True)]
            key = (coarse, target)
            if key not in self.buffers:
                self.buffers[key] = (
                    np.empty([t.stop - t.start for t in tbox], dtype=self.dtype),
                    [0],
                )
            buffer, filled = self.buffers[key]
            buffer[
                tuple(slice(a - t.start, b - t.start) for a, b, t in zip(lo, hi, tbox, strict=True))
            ] = down[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin, strict=True))]
            filled[0] += math.prod(b - a for a, b in zip(lo, hi, strict=True))
            if filled[0] == buffer.size:
                del self.buffers[key]
                whole.append((target, tbox, buffer))
        return whole


def _downsample_region(
    url: str,
    options: dict[str, Any],
    level: int,
    index: Index,
    box: Box,
    kind: str,
    verify: bool,
) -> dict[str, int]:
    store = VolumeStore(url, options)
    parent = store.array(level - 1)
    lead = () if store.channels is None else (slice(None),)
    src = tuple(
        slice(2 * b.start, min(2 * b.stop, s))
        for b, s in zip(box, parent.shape[len(lead) :], strict=True)
    )
    data = np.asarray(parent[(*lead, *src)])
    block = downsample(data, kind) if not lead else np.stack([downsample(c, kind) for c in data])
    return store.write_region(level, index, box, block, verify=verify)


def build_pyramid(
    store: VolumeStore, kind: str, *, verify: bool, progress: bool | None = None
) -> dict[str, int]:
    """Write every coarser level of ``store`` from the one above it (mean for "grey", mode for
    "labels"), region by region, skipping regions already flagged; returns chunk counts."""
    counts = {"written": 0, "kept": 0, "skipped": 0}
    name = store.url.rstrip("/").rsplit("/", 1)[-1]
    for level in range(1, len(store.plan["levels"])):
        pending = store.pending_regions(level)
        counts["skipped"] += len(store.regions(level)) - len(pending)
        tasks = [
            dask.delayed(_downsample_region, pure=False)(
                store.url, store.storage_options, level, idx, box, kind, verify
            )
            for idx, box in pending
        ]
        for r in run_tasks(tasks, desc=f"{name} pyramid level {level}", progress=progress):
            counts["written"] += r["written"]
            counts["kept"] += r["kept"]
    return counts


def fingerprint(reader: VolumeReader) -> list[list[Any]]:
    """Cheap identity of the input (names, sizes, modification times) for resuming safely."""
    out = []
    for path in reader.files():
        stat = Path(path).stat()
        out.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return out


def _fused_hash(reader: VolumeReader, box: Box) -> bool:
    """Whether a region's read can hash its input too: whole TIFF slices, each one segment."""
    return (
        isinstance(reader, TiffStackReader)
        and all((b.start, b.stop) == (0, s) for b, s in zip(box[1:], reader.shape[1:], strict=True))
        and all(p.stat().st_size <= SEGMENT for p in reader.paths[box[0]])
    )


def _stream(
    reader: VolumeReader,
    store: VolumeStore,
    kind: str,
    *,
    resumed: bool,
    progress: bool | None,
) -> tuple[dict[str, int], list[str], dict[str, float]]:
    """Write every pending level-0 region, and the coarser regions gathered from them, in one
    pass; hash the input on the way. Returns chunk counts, the input's segment digests (in the
    order :func:`ooc.provenance.input_digest` takes) and the seconds of each phase."""
    gather = _Gather(store, kind)
    pending = [(idx, box) for idx, box in store.regions(0) if idx in gather.streamed[0]]
    fused = {idx for idx, box in pending if _fused_hash(reader, box)}
    files = [str(p) for p in reader.files()]
    sizes = [Path(p).stat().st_size for p in files]
    hashed_in_regions = {
        z for idx in fused for z in range(*gather.boxes[0][idx][0].indices(len(files)))
    }
    segments = [
        (files[z], start, min(SEGMENT, sizes[z] - start))
        for z in range(len(files))
        if z not in hashed_in_regions
        for start in range(0, max(sizes[z], 1), SEGMENT)
    ]
    counts = {"written": 0, "kept": 0}
    digests: dict[tuple[str, int], str] = {}
    phases: dict[str, float] = {}
    runner = _Runner()
    buffers = _Buffers() if runner.client is None else None
    todo = deque(pending)
    bar = tqdm(
        total=len(segments) + sum(len(s) for s in gather.streamed),
        desc=f"ingest {store.url.rstrip('/').rsplit('/', 1)[-1]}",
        unit="task",
        disable=not (progress_enabled() if progress is None else progress),
        leave=False,
    )
    try:
        for segment in segments:
            runner.submit(_hash_segment, *segment)
        window = 2 * runner.workers  # regions in flight: bounds memory, keeps workers busy
        while todo or runner.busy():
            while todo and runner.busy() < window:
                idx, box = todo.popleft()
                runner.submit(
                    _ingest_region,
                    reader,
                    store.url,
                    store.storage_options,
                    idx,
                    box,
                    verify=resumed,
                    hashed=idx in fused,
                    halve=gather.halve(0),
                    buffers=buffers,
                )
            result = runner.next()
            bar.update(1)
            _add(phases, result["times"])
            if "segment" in result:
                digests[result["segment"]] = result["digest"]
                continue
            counts["written"] += result["written"]
            counts["kept"] += result["kept"]
            level, idx = result["level"], result["index"]
            if level == 0:
                for z, digest in zip(
                    range(*gather.boxes[0][idx][0].indices(len(files))),
                    result["digests"],
                    strict=False,
                ):
                    digests[(files[z], 0)] = digest
            if result["down"] is None:
                continue
            start = time.perf_counter()
            whole = gather.add(level, idx, result["down"])
            _add(phases, {"gather": time.perf_counter() - start})
            for coarse_idx, coarse_box, data in whole:
                runner.submit(
                    _write_coarse,
                    store.url,
                    store.storage_options,
                    level + 1,
                    coarse_idx,
                    coarse_box,
                    data,
                    verify=resumed,
                    halve=gather.halve(level + 1),
                )
    finally:
        bar.close()
        runner.close()
    ordered = [
        digests[(path, start)]
        for path, size in zip(files, sizes, strict=True)
        for start in range(0, max(size, 1), SEGMENT)
    ]
    return counts, ordered, phases


def ingest(
    reader: VolumeReader,
    url: str,
    metadata: VolumeMetadata,
    *,
    chunks: tuple[int, int, int] = (128, 128, 128),
    levels: int | None = None,
    max_region_bytes: int = 256 * 2**20,
    clevel: int = 1,
    cname: str = "zstd",
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
    parameters: dict[str, Any] | None = None,
    progress: bool | None = None,
    plan_extra: dict[str, Any] | None = None,
) -> IngestReport:
    """Write the scan read by ``reader`` to a volume store at ``url``, or finish an unfinished one.

    Parameters
    ----------
    reader
        The input (see :func:`ooc.io.readers.open_reader`); it is validated already.
    url
        Output store: a local path or an fsspec URL (``s3://bucket/scan.zarr``).
    metadata
        Voxel size, unit, modality, sample id; validated against ``volume.schema.json``.
    chunks
        Chunk shape (z, y, x) of every level.
    levels
        Pyramid levels including full resolution; default until a level fits in one chunk.
    max_region_bytes
        Budget for one task's input region; bounds peak memory per worker. The default holds
        128 whole 1024 x 1024 uint16 slices, so each slice file is read once.
    clevel, cname
        Blosc compressor: zstd level 1 by default (see ``benchmarks/ingest.py`` for the
        measured trade-off against lz4 and zstd 3).
    run_id
        The orchestrator's run id (e.g. a Prefect flow run), recorded in the provenance.
    parameters
        Extra parameters to record in the provenance (e.g. the reader's options).
    plan_extra
        Entries added to the store's write plan (a resumed write must match them).

    Runs on the active scheduler: a ``distributed.Client`` if one is active, else a thread
    pool (Dask's ``num_workers``), or inline under Dask's synchronous scheduler.
    """
    source = ", ".join(str(p) for p in reader.files()[:1]) + (
        " ..." if len(reader.files()) > 1 else ""
    )
    metadata.validated(source=f"metadata for {source}")
    if metadata.kind == "labels" and not np.issubdtype(reader.dtype, np.integer):
        raise InputError(f"{source}: labels must be integers; the input is {reader.dtype}")
    if len(chunks) != 3 or min(chunks) < 1:
        raise InputError(f"chunks {chunks}: expected three positive sizes (z, y, x)")
    started = time.perf_counter()
    store, resumed = VolumeStore.create_or_resume(
        url,
        shape=reader.shape,
        dtype=reader.dtype,
        chunks=chunks,
        metadata=metadata,
        plan_extra={"source": fingerprint(reader), **(plan_extra or {})},
        levels=levels,
        max_region_bytes=max_region_bytes,
        clevel=clevel,
        cname=cname,
        storage_options=storage_options,
    )
    plan = store.plan
    n_levels = len(plan["levels"])
    if store.status == STATUS_COMPLETE:
        return IngestReport(
            url=url,
            shape=tuple(reader.shape),
            dtype=np.dtype(reader.dtype).str,
            chunks=tuple(plan["chunks"]),
            levels=n_levels,
            resumed=True,
            chunks_written=0,
            chunks_kept=0,
            regions_skipped=sum(len(store.regions(lv)) for lv in range(n_levels)),
            seconds=time.perf_counter() - started,
            input_sha256=store.attrs["ooc_history"][0]["inputs"][0]["sha256_tree"],
        )
    skipped = sum(len(store.regions(lv)) - len(store.pending_regions(lv)) for lv in range(n_levels))
    counts, segment_digests, phases = _stream(
        reader, store, metadata.kind, resumed=resumed, progress=progress
    )
    digest = input_digest(reader.files(), segment_digests)

    start = time.perf_counter()
    pyramid = build_pyramid(store, metadata.kind, verify=resumed, progress=progress)
    if pyramid["written"] or pyramid["kept"]:
        phases["pyramid from store"] = time.perf_counter() - start
    counts["written"] += pyramid["written"]
    counts["kept"] += pyramid["kept"]

    record = make_record(
        "ingest",
        parameters={
            "chunks": list(plan["chunks"]),
            "levels": n_levels,
            "clevel": clevel,
            "codec": f"blosc-{cname}",
            **(parameters or {}),
        },
        inputs=[{"source": source, "reader": type(reader).__name__, **digest}],
        run_id=run_id,
    )
    store.finish(record)
    return IngestReport(
        url=url,
        shape=tuple(reader.shape),
        dtype=np.dtype(reader.dtype).str,
        chunks=tuple(plan["chunks"]),
        levels=n_levels,
        resumed=resumed,
        chunks_written=counts["written"],
        chunks_kept=counts["kept"],
        regions_skipped=skipped,
        seconds=time.perf_counter() - started,
        input_sha256=digest["sha256_tree"],
        phases=phases,
    )
