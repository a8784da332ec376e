"""Ingest into OME-Zarr volume stores: round trip, pyramid, metadata, refusal to overwrite,
resuming over torn chunks, and opening as a lazy DataArray."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

import ooc
from ooc.errors import MetadataError, StoreError
from ooc.io import ingest, open_reader
from ooc.io.pyramid import downsample_mean, downsample_mode
from ooc.metadata import VolumeMetadata

META = VolumeMetadata("rock-1", "MicroCT", (2.0, 2.0, 2.0), "micrometer", acquisition={"kV": 80})


def _ingest_npy(tmp_path: Path, volume: np.ndarray, meta: VolumeMetadata = META, **kw) -> str:
    tmp_path.mkdir(exist_ok=True)
    np.save(tmp_path / "in.npy", volume)
    out = str(tmp_path / "out.zarr")
    ingest(open_reader(tmp_path / "in.npy"), out, meta, progress=False, **kw)
    return out


def _chunk_files(store: str) -> dict[str, bytes]:
    root = Path(store)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize("chunks", [(16, 16, 16), (10, 20, 7), (64, 64, 64)])
def test_round_trip_any_chunking(tmp_path: Path, grey_volume: np.ndarray, chunks) -> None:
    out = _ingest_npy(tmp_path, grey_volume, chunks=chunks)
    arr = zarr.open_array(out, path="0", mode="r")
    assert arr.chunks == tuple(min(c, s) for c, s in zip(chunks, grey_volume.shape, strict=True))
    np.testing.assert_array_equal(arr[...], grey_volume)
    codec = arr.compressors[0]
    assert (codec.cname.value, codec.shuffle.value) == ("zstd", "shuffle")


def test_small_region_budget_gives_the_same_bytes(tmp_path: Path, grey_volume: np.ndarray) -> None:
    a = _ingest_npy(tmp_path / "a", grey_volume, chunks=(8, 8, 8))
    b = _ingest_npy(tmp_path / "b", grey_volume, chunks=(8, 8, 8), max_region_bytes=1)
    assert _chunk_files(a) == _chunk_files(b)


def test_pyramid_mean_for_grey_and_mode_for_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(33, 20, 17), dtype=np.uint8)
    meta = VolumeMetadata("rock-1", "MicroCT", (2.0, 2.0, 2.0), kind="labels", labels={"0": "pore"})
    out = _ingest_npy(tmp_path, labels, meta, chunks=(8, 8, 8))
    group = zarr.open_group(out, mode="r")
    # 33 -> 17 -> 9 -> 5: the pyramid stops at the first level that fits one 8^3 chunk
    assert sorted(group.array_keys()) == ["0", "1", "2", "3"]
    level1 = group["1"][...]
    assert level1.shape == (17, 10, 9)
    np.testing.assert_array_equal(level1, downsample_mode(labels))
    np.testing.assert_array_equal(group["2"][...], downsample_mode(level1))
    ms = group.attrs["ome"]["multiscales"][0]
    assert ms["type"] == "mode"
    grey = _ingest_npy(tmp_path / "g", labels.astype(np.uint16) * 1000, chunks=(8, 8, 8))
    np.testing.assert_array_equal(
        zarr.open_array(grey, path="1", mode="r")[...],
        downsample_mean(labels.astype(np.uint16) * 1000),
    )
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["datasets"][1]["coordinateTransformations"] == [
        {"type": "scale", "scale": [4.0, 4.0, 4.0]},
        {"type": "translation", "translation": [1.0, 1.0, 1.0]},
    ]


def test_mode_and_mean_kernels() -> None:
    cell = np.array([[[3, 3], [1, 1]], [[2, 2], [1, 7]]], dtype=np.uint8)
    assert downsample_mode(cell).item() == 1  # 1 occurs three times
    tie = np.array([[[5, 5], [2, 2]], [[9, 8], [7, 6]]], dtype=np.uint8)
    assert downsample_mode(tie).item() == 2  # 5 and 2 tie: the smaller wins
    grey = np.arange(8, dtype=np.uint16).reshape(2, 2, 2)
    assert downsample_mean(grey).item() == 4  # 3.5 rounds half up
    assert downsample_mean(grey + 1).item() == 5  # 4.5 too
    odd = np.ones((3, 3, 3), dtype=np.float32)
    assert downsample_mean(odd).shape == (2, 2, 2)


def test_open_volume_is_lazy_and_physical(tmp_path: Path, grey_volume: np.ndarray) -> None:
    out = _ingest_npy(tmp_path, grey_volume, chunks=(16, 16, 16))
    chunk = Path(out) / "0" / "c" / "1" / "1" / "1"
    assert chunk.is_file()
    chunk.unlink()  # nothing may be read when opening
    vol = ooc.open_volume(out)
    assert vol.dims == ("z", "y", "x")
    assert vol.attrs["modality"] == "MicroCT"
    assert vol.attrs["voxel_size"] == [2.0, 2.0, 2.0]
    assert vol.attrs["history"][0]["step"] == "ingest"
    assert vol.x.attrs["units"] == "micrometer"
    np.testing.assert_allclose(vol.z.values[:3], [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(vol[:16, :16, :16].values, grey_volume[:16, :16, :16])
    assert int(vol[16:32, 16:32, 16:32].max()) == 0  # the deleted chunk reads as fill
    coarse = ooc.open_volume(out, level=1)
    np.testing.assert_allclose(coarse.z.values[:2], [1.0, 5.0])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"modality": "XRM"}, "modality"),
        ({"voxel_size": (2.0, -1.0, 2.0)}, "voxel_size/1"),
        ({"unit": "furlong"}, "unit"),
        ({"sample_id": ""}, "sample_id"),
    ],
)
def test_bad_metadata_fails_before_writing(
    tmp_path: Path, grey_volume: np.ndarray, change, field
) -> None:
    meta = VolumeMetadata(**{**META.__dict__, **change})
    with pytest.raises(MetadataError, match=rf"field '{field}'"):
        _ingest_npy(tmp_path, grey_volume, meta)
    assert not (tmp_path / "out.zarr").exists()


def test_existing_store_of_other_input_is_refused_and_kept(
    tmp_path: Path, grey_volume: np.ndarray
) -> None:
    out = _ingest_npy(tmp_path, grey_volume)
    before = _chunk_files(out)
    np.save(tmp_path / "other.npy", grey_volume[:, :, :40])
    with pytest.raises(StoreError, match="holds a complete store of a different input or layout"):
        ingest(open_reader(tmp_path / "other.npy"), out, META, progress=False)
    assert _chunk_files(out) == before


def test_rerun_of_a_complete_ingest_does_nothing(tmp_path: Path, grey_volume: np.ndarray) -> None:
    out = _ingest_npy(tmp_path, grey_volume)
    report = ingest(open_reader(tmp_path / "in.npy"), out, META, progress=False)
    assert (report.chunks_written, report.resumed) == (0, True)


def test_resume_rewrites_only_torn_and_missing_chunks(
    tmp_path: Path, grey_volume: np.ndarray
) -> None:
    """An unfinished store (as a crash leaves it) is finished by rewriting only bad chunks."""
    ref = _ingest_npy(tmp_path / "ref", grey_volume, chunks=(8, 16, 16))
    out = _ingest_npy(tmp_path, grey_volume, chunks=(8, 16, 16))
    group = zarr.open_group(out, mode="r+")
    history = group.attrs["ooc_history"]
    # put the store back in the state of a crash during level 0: status writing, flags lost
    group.attrs["ooc_store"] = {
        **group.attrs["ooc_store"],
        "status": "writing",
        "plan": group.attrs["ooc_store"]["plan"],
    }
    group.attrs["ooc_history"] = []
    plan = group.attrs["ooc_store"]["plan"]
    progress = group.create_group("_progress")
    for level, shape in enumerate(plan["levels"]):
        grid = [-(-s // r) for s, r in zip(shape, plan["regions"][level], strict=True)]
        flags = progress.create_array(
            str(level),
            shape=grid,
            dtype="uint8",
            chunks=(1, 1, 1),
            fill_value=0,
            compressors=None,
            dimension_names=("rz", "ry", "rx"),
        )
        flags[...] = 0 if level == 0 else 1
    torn = Path(out) / "0" / "c" / "2" / "1" / "0"
    torn.write_bytes(torn.read_bytes()[:20])
    missing = Path(out) / "0" / "c" / "0" / "2" / "3"
    missing.unlink()
    stamps = {
        p: p.stat().st_mtime_ns
        for p in (Path(out) / "0").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    }

    report = ingest(open_reader(tmp_path / "in.npy"), out, META, chunks=(8, 16, 16), progress=False)

    assert report.resumed
    assert report.chunks_written == 2
    assert report.chunks_kept == sum(1 for p in stamps if p != torn)
    changed = {p for p, t in stamps.items() if p.stat().st_mtime_ns != t}
    assert changed == {torn}
    assert _chunk_files(out) == _chunk_files(ref)
    assert len(zarr.open_group(out, mode="r").attrs["ooc_history"]) == 1
    assert history[0]["inputs"] == zarr.open_group(out, mode="r").attrs["ooc_history"][0]["inputs"]


def test_provenance_records_the_input_checksum(tmp_path: Path, grey_volume: np.ndarray) -> None:
    import hashlib

    out = _ingest_npy(tmp_path, grey_volume)
    record = zarr.open_group(out, mode="r").attrs["ooc_history"][0]
    raw = (tmp_path / "in.npy").read_bytes()
    expected = hashlib.sha256(hashlib.sha256(raw).hexdigest().encode()).hexdigest()
    assert record["inputs"][0]["sha256_tree"] == expected
    assert record["inputs"][0]["bytes"] == len(raw)
    assert record["parameters"]["chunks"] == [37, 45, 51]  # the default 128^3, clipped
    assert {"time", "host", "ooc_version", "run_id"} <= set(record)
    json.dumps(record)


def test_input_is_never_modified(tmp_path: Path, grey_volume: np.ndarray) -> None:
    np.save(tmp_path / "in.npy", grey_volume)
    before = ((tmp_path / "in.npy").read_bytes(), os.stat(tmp_path / "in.npy").st_mtime_ns)
    ingest(open_reader(tmp_path / "in.npy"), str(tmp_path / "o.zarr"), META, progress=False)
    assert ((tmp_path / "in.npy").read_bytes(), os.stat(tmp_path / "in.npy").st_mtime_ns) == before


class _RecordingReader:
    """Wraps a reader and remembers the largest box it was asked for (bytes)."""

    def __init__(self, reader) -> None:
        self.reader = reader
        self.shape, self.dtype = reader.shape, reader.dtype
        self.largest = 0

    def read(self, box):
        data = self.reader.read(box)
        self.largest = max(self.largest, data.nbytes)
        return data

    def files(self):
        return self.reader.files()


@pytest.mark.parametrize("depth", [16, 64, 160])
def test_memory_per_task_does_not_grow_with_the_volume(tmp_path: Path, depth: int) -> None:
    """Each task reads at most the region budget, however large the volume is."""
    import dask

    volume = np.zeros((depth, 96, 200), dtype=np.uint16)
    np.save(tmp_path / "in.npy", volume)
    reader = _RecordingReader(open_reader(tmp_path / "in.npy"))
    budget = 16 * 16 * 64 * 2 * 2  # two chunk columns of 16 x 16 x 64 voxels
    with dask.config.set(scheduler="synchronous"):  # the wrapper must see the reads
        ingest(
            reader,
            str(tmp_path / "o.zarr"),
            META,
            chunks=(16, 16, 64),
            max_region_bytes=budget,
            progress=False,
        )
    assert 0 < reader.largest <= budget


def _write_stack(folder: Path, volume: np.ndarray) -> Path:
    import tifffile

    folder.mkdir(parents=True)
    for z, plane in enumerate(volume):
        tifffile.imwrite(folder / f"z{z:03d}.tif", plane)
    return folder


@pytest.mark.parametrize(
    ("chunks", "budget", "streamed", "fused"),
    [
        ((8, 16, 16), 2**30, True, True),  # whole slices per region: hashed while read
        ((8, 8, 8), 1, True, False),  # one chunk per region: files hashed apart
        ((5, 9, 7), 2**30, False, True),  # regions start at odd z: level 1 from the store
    ],
)
def test_stack_ingest_streams_the_pyramid_and_hashes_as_provenance_defines(
    tmp_path: Path, grey_volume: np.ndarray, chunks, budget, streamed, fused
) -> None:
    import dask

    from ooc.provenance import file_digest_tasks, input_digest

    stack = _write_stack(tmp_path / "stack", grey_volume)
    out = str(tmp_path / "out.zarr")
    report = ingest(
        open_reader(stack), out, META, chunks=chunks, max_region_bytes=budget, progress=False
    )
    group = zarr.open_group(out, mode="r")
    expected = grey_volume
    for level in range(report.levels):
        np.testing.assert_array_equal(group[str(level)][...], expected)
        expected = downsample_mean(expected)
    assert ("pyramid from store" in report.phases) == (not streamed)
    assert ("hash (separate pass)" in report.phases) == (not fused)
    files = open_reader(stack).files()
    digest = input_digest(files, dask.compute(*file_digest_tasks(files)))
    assert report.input_sha256 == digest["sha256_tree"]
    assert group.attrs["ooc_history"][0]["inputs"][0]["sha256_tree"] == digest["sha256_tree"]


def test_resume_after_a_crash_mid_stream(
    tmp_path: Path, grey_volume: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after some regions: the re-run skips them, builds the coarse regions that needed
    them from the store, hashes their files apart, and ends byte-identical."""
    import importlib

    import dask

    ingest_module = importlib.import_module("ooc.io.ingest")  # the package exports the function
    stack = _write_stack(tmp_path / "stack", grey_volume)
    kw = {"chunks": (8, 16, 16), "progress": False}
    reference = ingest(open_reader(stack), str(tmp_path / "ref.zarr"), META, **kw)
    real = ingest_module._ingest_region
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    out = str(tmp_path / "out.zarr")
    monkeypatch.setattr(ingest_module, "_ingest_region", crash_on_third)
    with dask.config.set(scheduler="synchronous"), pytest.raises(RuntimeError, match="simulated"):
        ingest(open_reader(stack), out, META, **kw)
    monkeypatch.undo()
    report = ingest(open_reader(stack), out, META, **kw)
    assert report.resumed
    assert report.regions_skipped == 2
    assert "pyramid from store" in report.phases
    assert "hash (separate pass)" in report.phases
    assert report.input_sha256 == reference.input_sha256
    assert _chunk_files(out) == _chunk_files(str(tmp_path / "ref.zarr"))
