"""Uncertainty maps and the list of regions to label next."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from ooc.segment import entropy, margin, uncertain_regions
from ooc.segment.uncertainty import format_regions


def test_entropy_and_margin_formulas() -> None:
    p = np.array([[1.0, 1 / 3, 0.5], [0.0, 1 / 3, 0.3], [0.0, 1 / 3, 0.2]], dtype=np.float32)
    h = entropy(p)
    assert h[0] == pytest.approx(0.0, abs=1e-6)
    assert h[1] == pytest.approx(1.0, abs=1e-6)
    ref = -(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2)) / np.log(3)
    assert h[2] == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(margin(p), [0.0, 1.0, 0.8], atol=1e-6)
    lazy = da.from_array(np.stack([p] * 4, axis=-1), chunks=(3, 2, 2))
    np.testing.assert_allclose(entropy(lazy).compute(), np.stack([h] * 4, axis=-1), atol=1e-6)
    np.testing.assert_allclose(margin(lazy).compute()[:, 0], [0.0, 1.0, 0.8], atol=1e-6)


def _reference_regions(
    u: np.ndarray, r: int
) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
    """Brute force: every cell (start, stop, mean) of the documented grid, most uncertain first."""
    bounds = []
    for n in u.shape:
        starts = list(range(0, n, r))
        if len(starts) > 1 and 2 * (n - starts[-1]) < r:
            starts.pop()  # a remainder under r/2 belongs to the cell before it
        bounds.append([(a, b) for a, b in zip(starts, [*starts[1:], n], strict=True)])
    cells = []
    for box in itertools.product(*bounds):
        sl = tuple(slice(a, b) for a, b in box)
        cells.append(
            (
                tuple(a for a, _ in box),
                tuple(b for _, b in box),
                float(u[sl].mean(dtype=np.float64)),
            )
        )
    return sorted(cells, key=lambda c: -c[2])


def test_regions_rank_the_grid_cells_by_mean_uncertainty() -> None:
    u = np.zeros((40, 36, 20), dtype=np.float32)
    u[16:32, 16:32, 0:20] = 0.9  # a whole cell (x: 20 voxels, the 4-voxel remainder merged)
    u[32:40, 0:16, :] = 0.5  # a half cell at the far z face: a cell of its own (8 >= 16/2)
    u[0:16, 0:16, :] = 0.2
    regions = uncertain_regions(
        da.from_array(u, chunks=(13, 36, 7)),
        region=16,
        top=3,
        voxel_size=(2.0, 1.0, 1.0),
        origin=(10.0, 0.0, 0.0),
    )
    assert [r["voxel_start"] for r in regions] == [[16, 16, 0], [32, 0, 0], [0, 0, 0]]
    assert [r["voxel_stop"] for r in regions] == [[32, 36, 20], [40, 16, 20], [16, 16, 20]]
    # the y cell [16, 36) holds 16 hot rows of 20: mean 0.9 * 16 / 20
    assert [r["mean_uncertainty"] for r in regions] == pytest.approx([0.72, 0.5, 0.2])
    assert regions[0]["centre"] == [10.0 + 2.0 * 23.5, 25.5, 9.5]
    assert regions[0]["size"] == [32.0, 20.0, 20.0]
    assert regions[1]["size"] == [16.0, 16.0, 20.0]
    assert [r["rank"] for r in regions] == [1, 2, 3]


def test_a_hot_border_sliver_does_not_lead() -> None:
    u = np.zeros((32, 32, 36), dtype=np.float32)
    u[:, :, 32:] = 1.0  # a 4-voxel sliver at the far x face, fully uncertain
    u[0:16, 0:16, 0:16] = 0.5  # a whole cell, half uncertain
    regions = uncertain_regions(u, region=16, top=2)
    assert regions[0]["voxel_start"] == [0, 0, 0]
    assert regions[0]["mean_uncertainty"] == pytest.approx(0.5)
    # the sliver joined its neighbour: a 16 x 16 x 20 cell, mean 4/20
    assert regions[1]["voxel_stop"][2] == 36
    assert regions[1]["size"] == [16.0, 16.0, 20.0]
    assert regions[1]["mean_uncertainty"] == pytest.approx(0.2)


@settings(max_examples=20, deadline=None)
@given(
    shape=st.tuples(*(st.integers(3, 29) for _ in range(3))),
    region=st.integers(2, 12),
    chunk=st.integers(3, 17),
    seed=st.integers(0, 2**16),
)
def test_regions_match_brute_force_and_tile_the_volume(
    shape: tuple[int, int, int], region: int, chunk: int, seed: int
) -> None:
    u = np.random.default_rng(seed).random(shape, dtype=np.float32)
    regions = uncertain_regions(da.from_array(u, chunks=chunk), region=region, top=10**6)
    ref = _reference_regions(u, region)
    assert [r["mean_uncertainty"] for r in regions] == pytest.approx([c[2] for c in ref], rel=1e-9)
    assert {(tuple(r["voxel_start"]), tuple(r["voxel_stop"])) for r in regions} == {
        (a, b) for a, b, _ in ref
    }
    cover = np.zeros(shape, dtype=int)
    for r in regions:
        cover[
            tuple(slice(a, b) for a, b in zip(r["voxel_start"], r["voxel_stop"], strict=True))
        ] += 1
        assert min(r["size"]) >= min(region / 2, min(shape))  # no slivers
    assert (cover == 1).all()


def test_regions_take_geometry_from_a_data_array_and_skip_cells_without_a_mean() -> None:
    u = np.full((8, 8, 8), 0.1, dtype=np.float32)
    u[4:, 4:, 4:] = np.nan
    u[:4, :4, 4:] = 0.3
    vol = xr.DataArray(
        u,
        dims=("z", "y", "x"),
        coords={d: 5.0 + 0.5 * np.arange(8) for d in "zyx"},
        attrs={"voxel_size": [0.5, 0.5, 0.5], "unit": "micrometer"},
    )
    regions = uncertain_regions(vol, region=4, top=100)
    assert len(regions) == 7  # the all-NaN cell has no mean
    assert regions[0]["centre"] == [5.75, 5.75, 7.75]
    assert regions[0]["size"] == [2.0, 2.0, 2.0]
    assert regions[0]["mean_uncertainty"] == pytest.approx(0.3)
    assert uncertain_regions(vol, region=4, top=0) == []


def test_format_regions_is_an_aligned_table_in_the_unit() -> None:
    regions = [
        {
            "rank": 1,
            "centre": [57.0, 23.5, 1250.25],
            "size": [32.0, 16.0, 16.0],
            "voxel_start": [16, 16, 0],
            "voxel_stop": [32, 32, 16],
            "mean_uncertainty": 0.91234,
        },
        {
            "rank": 2,
            "centre": [9.0, 7.5, 7.5],
            "size": [16.0, 16.0, 20.0],
            "voxel_start": [0, 0, 0],
            "voxel_stop": [16, 16, 20],
            "mean_uncertainty": 0.5,
        },
    ]
    assert format_regions(regions, "micrometer").splitlines() == [
        "rank  z (µm)  y (µm)   x (µm)  size z×y×x (µm)  mean uncertainty",
        "   1      57    23.5  1250.25         32×16×16             0.912",
        "   2       9     7.5      7.5         16×16×20             0.500",
    ]
    assert format_regions([], "nanometer") == "(no regions)"
