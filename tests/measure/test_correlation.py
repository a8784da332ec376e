"""Two-point correlation and chord lengths: against brute force, chunk independence."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ooc.measure import chord_length_distribution, two_point_correlation


def _brute_s2(im, v, lag):
    a = im == v
    s1 = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(lag, im.shape, strict=True))
    s2 = tuple(slice(max(0, d), n + min(0, d)) for d, n in zip(lag, im.shape, strict=True))
    return (a[s1] & a[s2]).mean()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cz=st.integers(4, 20), cy=st.integers(4, 17), cx=st.integers(4, 23))
def test_s2_exact_any_chunking(cz, cy, cx):
    rng = np.random.default_rng(0)
    im = rng.integers(0, 3, (20, 17, 23)).astype(np.uint8)
    vs = (1.0, 2.0, 1.5)
    ds = two_point_correlation(
        da.from_array(im, chunks=(cz, cy, cx)),
        voxel_size=vs,
        unit="µm",
        phases=[0, 1, 2],
        max_lag=6.0,
    )
    s = ds.s2_axis.sel(phase="1")
    for a in range(3):
        for k in range(int(6.0 // vs[a]) + 1):
            lag = [0, 0, 0]
            lag[a] = k
            assert float(s[a, k]) == pytest.approx(_brute_s2(im, 1, lag), rel=1e-12)
        np.testing.assert_allclose(ds.lag_axis[a, 1], vs[a])
    np.testing.assert_allclose(ds.fraction.values, [np.mean(im == v) for v in (0, 1, 2)])


def test_s2_layers_known_answer():
    # layers of period 8 along z (4 on, 4 off): S2 along z is a triangle wave
    z = np.arange(64)
    im = np.broadcast_to(((z // 4) % 2).astype(np.uint8)[:, None, None], (64, 8, 8)).copy()
    ds = two_point_correlation(
        da.from_array(im, chunks=(16, 8, 8)),
        voxel_size=(0.5, 1, 1),
        unit="µm",
        phases=[1],
        max_lag=4.0,
    )
    s = ds.s2_axis.sel(phase="1", axis="z").values
    expect = [_brute_s2(im, 1, (k, 0, 0)) for k in range(9)]
    np.testing.assert_allclose(s[:9], expect)
    assert s[0] == 0.5
    assert s[4] == pytest.approx(0.0)  # half a period apart
    np.testing.assert_allclose(ds.s2_axis.sel(phase="1", axis="x")[:5], 0.5)
    # radial lag coordinate in µm with bins of the smallest voxel size
    assert float(ds.lag[1]) == 0.5
    assert float(ds.s2.sel(phase="1")[0]) == 0.5


@pytest.mark.parametrize("exclude_border", [True, False])
def test_chords_against_brute_force(exclude_border):
    rng = np.random.default_rng(1)
    im = rng.integers(0, 3, (14, 11, 17)).astype(np.uint8)
    ds = chord_length_distribution(
        da.from_array(im, chunks=(5, 4, 6)),
        voxel_size=(1.0, 2.0, 0.5),
        unit="µm",
        phases=[0, 1, 2],
        exclude_border=exclude_border,
    )
    for a in range(3):
        lines = np.moveaxis(im, a, -1).reshape(-1, im.shape[a])
        cnt = {}
        for line in lines:
            k = 0
            n = len(line)
            while k < n:
                j = k
                while j < n and line[j] == line[k]:
                    j += 1
                if not exclude_border or (k > 0 and j < n):
                    cnt[(line[k], j - k)] = cnt.get((line[k], j - k), 0) + 1
                k = j
        got = ds["count"].isel(axis=a).values
        for p in range(3):
            for n in range(got.shape[1]):
                assert got[p, n] == cnt.get((p, n), 0)
    np.testing.assert_allclose(ds.chord_length.sel(axis="y")[3], 6.0)


def test_chords_slab_known_length():
    im = np.zeros((40, 10, 10), dtype=np.uint8)
    im[5:12] = 1
    im[20:33] = 1
    ds = chord_length_distribution(
        da.from_array(im, chunks=(9, 10, 10)), voxel_size=(0.25, 1, 1), unit="µm", phases=[1]
    )
    c = ds["count"].sel(phase="1", axis="z")
    assert int(c[7]) == 100
    assert int(c[13]) == 100
    assert int(c.sum()) == 200
    assert float(ds.mean_chord.sel(phase="1", axis="z")) == pytest.approx(10 * 0.25)
    # along x every chord spans the whole line: all cut by the border
    assert int(ds["count"].sel(phase="1", axis="x").sum()) == 0
