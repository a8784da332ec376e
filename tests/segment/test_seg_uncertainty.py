"""Uncertainty maps and the list of regions to label next."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from ooc.segment import entropy, margin, uncertain_regions


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


def test_regions_rank_the_grid_cells_by_mean_uncertainty() -> None:
    u = np.zeros((40, 36, 20), dtype=np.float32)
    u[16:32, 16:32, 0:16] = 0.9  # the hottest whole cell
    u[32:40, 0:16, 16:20] = 0.5  # a partial cell at the far corner (8 x 16 x 4 voxels)
    u[0:16, 0:16, 0:16] = 0.2
    regions = uncertain_regions(
        da.from_array(u, chunks=(13, 36, 7)),
        region=16,
        top=3,
        voxel_size=(2.0, 1.0, 1.0),
        origin=(10.0, 0.0, 0.0),
    )
    assert [r["start"] for r in regions] == [[16, 16, 0], [32, 0, 16], [0, 0, 0]]
    assert regions[1]["stop"] == [40, 16, 20]
    assert [r["mean_uncertainty"] for r in regions] == pytest.approx([0.9, 0.5, 0.2])
    assert regions[0]["centre"] == [10.0 + 2.0 * 23.5, 23.5, 7.5]
    assert [r["rank"] for r in regions] == [1, 2, 3]
