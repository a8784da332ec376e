"""Level regions written chunk by chunk by ``VolumeStore.write_region`` are byte for byte what
zarr itself writes (edge chunks padded with the fill value, empty chunks not stored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from ooc.io.store import VolumeStore
from ooc.metadata import VolumeMetadata

META = VolumeMetadata("w-1", "MicroCT", (1.0, 1.0, 1.0), "micrometer")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "0").rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize(
    ("dtype", "channels", "clevel", "cname"),
    [("uint16", None, 1, "zstd"), ("uint8", None, 3, "zstd"), ("float32", 2, 1, "lz4")],
)
def test_direct_chunk_writes_equal_zarr_writes(
    tmp_path: Path, dtype: str, channels: int | None, clevel: int, cname: str
) -> None:
    rng = np.random.default_rng(7)
    shape = (11, 13, 9)
    volume = (rng.random(((channels or 1), *shape)) * 200).astype(dtype)
    volume[:, :4, :4, :4] = 0  # one chunk holds only the fill value: not stored
    data = volume if channels else volume[0]
    stores = {}
    for name in ("direct", "zarr"):
        store, _ = VolumeStore.create_or_resume(
            str(tmp_path / f"{name}.zarr"),
            shape=shape,
            dtype=np.dtype(dtype),
            chunks=(4, 4, 4),
            metadata=META,
            plan_extra={},
            levels=1,
            clevel=clevel,
            cname=cname,
            channels=channels,
        )
        stores[name] = store
    box = tuple(slice(0, s) for s in shape)
    counts = stores["direct"].write_region(0, (0, 0, 0), box, data, verify=False)
    assert counts == {"written": 3 * 4 * 3, "kept": 0}
    stores["zarr"].array(0)[...] = data
    direct, reference = _files(tmp_path / "direct.zarr"), _files(tmp_path / "zarr.zarr")
    assert direct == reference
    assert len(direct) == (channels or 1) * (3 * 4 * 3 - 1)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "direct.zarr", path="0")[...], data)
