"""Phase fractions, porosity and per-block maps."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ooc.measure import phase_fractions


def _im():
    rng = np.random.default_rng(0)
    return rng.choice(np.array([0, 85, 170], dtype=np.uint8), size=(30, 26, 22), p=[0.5, 0.3, 0.2])


def test_fractions_and_map():
    im = _im()
    ds = phase_fractions(
        da.from_array(im, chunks=(7, 13, 22)),
        voxel_size=(2.0, 1.0, 0.5),
        unit="µm",
        phases={"pore": 0, "NMC": 85, "CBD": 170},
        block_shape=(10, 13, 11),
    )
    for name, v in (("pore", 0), ("NMC", 85), ("CBD", 170)):
        assert float(ds.fraction.sel(phase=name)) == np.count_nonzero(im == v) / im.size
        assert float(ds.volume.sel(phase=name)) == np.count_nonzero(im == v) * 1.0
    assert float(ds.porosity) == float(ds.fraction.sel(phase="pore"))
    assert ds.local_fraction.shape == (3, 3, 2, 2)
    blk = im[10:20, 13:26, 0:11]
    assert float(ds.local_fraction.sel(phase="NMC")[1, 1, 0]) == np.mean(blk == 85)
    # block centres in µm: voxel i at i * size
    np.testing.assert_allclose(ds.bz.values, [4.5 * 2, 14.5 * 2, 24.5 * 2])
    np.testing.assert_allclose(ds.bx.values, [5 * 0.5, 16 * 0.5])
    np.testing.assert_allclose(ds.local_fraction.sum("phase"), 1.0)


@settings(max_examples=10, deadline=None)
@given(cz=st.integers(2, 30), cy=st.integers(2, 26), cx=st.integers(2, 22))
def test_chunk_independent(cz, cy, cx):
    im = _im()
    ref = phase_fractions(da.from_array(im, chunks=im.shape), voxel_size=(1, 1, 1), unit="µm")
    ds = phase_fractions(da.from_array(im, chunks=(cz, cy, cx)), voxel_size=(1, 1, 1), unit="µm")
    np.testing.assert_array_equal(ds.fraction.values, ref.fraction.values)
    np.testing.assert_array_equal(ds.local_fraction.values, ref.local_fraction.values)


def test_bad_inputs():
    x = da.zeros((4, 4, 4), dtype=np.uint8, chunks=2)
    with pytest.raises(ValueError, match="voxel_size"):
        phase_fractions(x, voxel_size=(1, -1, 1), unit="µm")
    with pytest.raises(ValueError, match="3D"):
        phase_fractions(da.zeros((4, 4), chunks=2, dtype=np.uint8), voxel_size=(1, 1, 1), unit="µm")
    with pytest.raises(TypeError, match="integer"):
        phase_fractions(da.zeros((4, 4, 4), chunks=2), voxel_size=(1, 1, 1), unit="µm")
    with pytest.raises(ValueError, match="pore"):
        phase_fractions(x, voxel_size=(1, 1, 1), unit="µm", phases=[0], pore="air")
