"""Results groups written slab by slab (``write_dataset(desc=...)``) hold what one write holds."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from ooc.results import read_group, write_dataset


@pytest.mark.parametrize("z_chunks", [(10,), (4, 4, 2), (3, 3, 3, 1)])
def test_a_dataset_written_in_slabs_equals_one_written_whole(
    tmp_path: Path, z_chunks: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(1)
    values = rng.random((10, 6, 5)).astype(np.float32)
    ds = xr.Dataset(
        {
            "a": (("z", "y", "x"), da.from_array(values, chunks=(z_chunks, 6, 5))),
            "b": (("z", "y", "x"), da.from_array(2 * values, chunks=(z_chunks, 6, 5))),
            "per_y": (("y",), np.arange(6.0)),  # not along z: written with the metadata
        },
        coords={"z": np.arange(10) * 0.5, "y": np.arange(6), "x": np.arange(5)},
        attrs={"voxel_size": [0.5, 1, 1]},
    )
    url = str(tmp_path / "r.zarr")
    write_dataset(ds, url, group="whole", provenance={"step": "t"})
    write_dataset(ds, url, group="slabs", provenance={"step": "t"}, desc="t", progress=False)
    whole, slabs = read_group(url, "whole"), read_group(url, "slabs")
    xr.testing.assert_identical(slabs, whole)
    np.testing.assert_array_equal(slabs["a"].values, values)
