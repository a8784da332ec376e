"""Connected components across chunks: equal to scipy on the whole array; percolation."""

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ooc.measure import label_components, phase_connectivity
from ooc.measure.connectivity import structure

VS = (1.0, 1.0, 1.0)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("chunks", [(5, 7, 4), (1, 19, 2), (23, 19, 21), (10, 3, 11)])
def test_label_equals_scipy_whole_array(connectivity, chunks):
    rng = np.random.default_rng(connectivity)
    m = rng.random((23, 19, 21)) < 0.25
    ref, n = ndi.label(m, structure(connectivity))
    lab, nn = label_components(da.from_array(m, chunks=chunks), connectivity=connectivity)
    assert nn == n
    np.testing.assert_array_equal(lab.compute(), ref)


def test_corner_and_edge_contacts_across_chunk_corners():
    # voxels that touch only by an edge or a corner, each pair across a chunk corner
    m = np.zeros((6, 6, 6), dtype=bool)
    m[1, 1, 1] = m[2, 2, 2] = True  # corner contact across block (0,0,0)-(1,1,1)
    m[3, 4, 5] = m[4, 3, 5] = True  # edge contact, anti-diagonal (1,2,2)-(2,1,2)
    x = da.from_array(m, chunks=2)
    assert label_components(x, connectivity=6)[1] == 4
    assert label_components(x, connectivity=18)[1] == 3
    assert label_components(x, connectivity=26)[1] == 2


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    cz=st.integers(3, 12),
    cy=st.integers(3, 12),
    cx=st.integers(3, 12),
    connectivity=st.sampled_from([6, 18, 26]),
)
def test_label_chunk_independent(seed, cz, cy, cx, connectivity):
    rng = np.random.default_rng(seed)
    m = rng.random((12, 11, 10)) < 0.3
    ref = ndi.label(m, structure(connectivity))[0]
    lab, _ = label_components(da.from_array(m, chunks=(cz, cy, cx)), connectivity=connectivity)
    np.testing.assert_array_equal(lab.compute(), ref)


def _channels():
    """Phase 1: a straight channel along z (percolating in z), a dead-end branch touching the
    low y face, and a closed ball (isolated); phase 0 fills the rest."""
    im = np.zeros((30, 24, 26), dtype=np.uint8)
    im[:, 5:9, 5:9] = 1  # along z, touches z faces only
    im[10:14, 0:4, 15:19] = 1  # touches y = 0 only: dead-end along y, isolated along z, x
    zz, yy, xx = np.ogrid[:30, :24, :26]
    im[(zz - 20) ** 2 + (yy - 15) ** 2 + (xx - 18) ** 2 <= 9] = 1  # closed ball
    return im


@pytest.mark.parametrize("chunks", [(30, 24, 26), (7, 5, 9)])
def test_percolating_dead_end_isolated(chunks):
    im = _channels()
    ds = phase_connectivity(
        da.from_array(im, chunks=chunks), voxel_size=VS, unit="µm", phases={"a": 0, "b": 1}
    )
    b = ds.sel(phase="b")
    v_ch, v_de, v_ball = 30 * 16, 4 * 4 * 4, int((ndi.label(im)[0] == 3).sum())
    tot = v_ch + v_de + v_ball
    assert int(b.n_components) == 3
    np.testing.assert_allclose(b.percolating_fraction.values, [v_ch / tot, 0, 0])
    np.testing.assert_allclose(b.dead_end_fraction.values, [0, v_de / tot, 0])
    np.testing.assert_allclose(b.isolated_axis_fraction.sel(axis="z"), (v_de + v_ball) / tot)
    np.testing.assert_allclose(float(b.isolated_fraction), v_ball / tot)
    a = ds.sel(phase="a")  # the matrix percolates everywhere
    np.testing.assert_allclose(a.percolating_fraction.values, 1.0)
    assert float(b.phase_volume) == tot


def test_non_percolating_phase():
    im = np.zeros((20, 20, 20), dtype=np.uint8)
    im[:, 4:8, 4:8] = 1
    im[10, :, :] = 0  # cut the channel: no longer percolates along z
    ds = phase_connectivity(da.from_array(im, chunks=6), voxel_size=VS, unit="µm", phases=[1])
    ds = ds.isel(phase=0)
    assert float(ds.percolating_fraction.sel(axis="z")) == 0.0
    assert float(ds.dead_end_fraction.sel(axis="z")) == 1.0
    assert int(ds.n_components) == 2


def test_bad_connectivity():
    with pytest.raises(ValueError, match="connectivity"):
        label_components(da.zeros((4, 4, 4), dtype=bool, chunks=2), connectivity=4)


@pytest.mark.cluster
def test_runs_on_distributed_worker_processes(tmp_path):
    """Every chunked operator pickles and runs on worker processes, same answers."""
    distributed = pytest.importorskip("distributed")
    from ooc.measure import local_thickness, object_table, separate_objects, surface_area

    rng = np.random.default_rng(0)
    m = rng.random((14, 13, 12)) < 0.3
    x = da.from_array(m, chunks=6)
    im = da.from_array(m.astype(np.uint8), chunks=6)
    kw = {"voxel_size": (1.0, 1.0, 1.0)}
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        lab, n = label_components(x, connectivity=26)
        out = lab.compute()
        ssa = surface_area(im, unit="µm", phases=[0, 1], **kw)
        lt = local_thickness(x, **kw).compute()
        objs, _ = separate_objects(x, **kw)
        tab = object_table(objs, unit="µm", **kw)
    ref, nref = ndi.label(m, structure(26))
    assert n == nref
    np.testing.assert_array_equal(out, ref)
    # the same calls on the local threaded scheduler agree
    ssa2 = surface_area(im, unit="µm", phases=[0, 1], **kw)
    np.testing.assert_allclose(ssa.ssa.values, ssa2.ssa.values)
    np.testing.assert_array_equal(lt, local_thickness(x, **kw).compute())
    assert int(tab["voxels"].sum()) == int(m.sum())
    tab.to_parquet(tmp_path / "objects.parquet")
