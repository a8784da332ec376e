"""Block-wise property maps over dask arrays, and memory estimates."""

from __future__ import annotations

import math
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest

from ooc.simulate import estimate_memory, permeability, property_map, tortuosity


def _medium(n: int = 32, seed: int = 0) -> np.ndarray:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.standard_normal((n, n, n)), 2.0, mode="wrap")
    return (f > np.quantile(f, 0.6)).astype(np.uint8)  # 60 % pore (label 0)


def test_map_matches_solving_each_block_alone():
    im = _medium(32)
    vol = da.from_array(im, chunks=(20, 32, 7))  # chunking unrelated to the blocks
    ds = property_map(
        vol,
        block_shape=(16, 32, 16),
        voxel_size=2e-6,
        properties=("permeability", "diffusivity", "conductivity"),
        phase_values={0: 1.0, 1: 0.1},
        direction=("z", "x"),
    )
    assert dict(ds.sizes) == {"z": 2, "y": 1, "x": 2, "direction": 2}
    np.testing.assert_allclose(ds["z"].values, [16e-6, 48e-6])
    np.testing.assert_allclose(ds["y"].values, [32e-6])
    blk = im[16:32, :, 0:16]
    assert float(ds.porosity[1, 0, 0]) == pytest.approx(float((blk == 0).mean()))
    k = permeability(blk, voxel_size=2e-6, direction="x", rtol=1e-3)["x"].permeability_m2
    assert float(ds.permeability.sel(direction="x")[1, 0, 0]) == pytest.approx(k, rel=1e-9)
    t = tortuosity(blk, 0, direction="z", rtol=1e-3)["z"].tortuosity
    assert float(ds.tortuosity.sel(direction="z")[1, 0, 0]) == pytest.approx(t, rel=1e-9)
    assert bool(ds.permeability_converged.all())
    assert ds.permeability.attrs["units"] == "m2"
    np.testing.assert_allclose(ds.permeability_mD, ds.permeability / 9.869233e-16)
    assert (ds.relative_conductivity > 0).all()


def test_partial_edge_blocks_and_lazy_result():
    im = _medium(24, seed=1)
    ds = property_map(
        da.from_array(im, chunks=8),
        block_shape=16,
        voxel_size=1e-6,
        properties=("diffusivity",),
        direction="y",
        compute=False,
    )
    assert isinstance(ds.tortuosity.data, da.Array)
    assert ds.tortuosity.data.npartitions == 8  # one task per block (2 x 2 x 2)
    ds = ds.compute()
    assert list(ds.z_size.values) == [16, 8]
    assert int(ds.block_voxels[1, 1, 1]) == 8**3
    assert np.isfinite(ds.porosity).all()


def test_non_percolating_block_is_flagged_not_nan():
    im = np.zeros((16, 8, 8), np.uint8)
    im[8:, :, :] = 1
    im[8:, 2:4, 2:4] = 0  # block 1 has a channel
    im[:8, 4, :] = 1  # block 0 is cut by a solid wall across y
    ds = property_map(im, block_shape=(8, 8, 8), voxel_size=1e-6, direction="y")
    assert float(ds.permeability.sel(direction="y")[0, 0, 0]) == 0.0
    assert math.isinf(float(ds.tortuosity.sel(direction="y")[0, 0, 0]))
    assert float(ds.relative_diffusivity.sel(direction="y")[0, 0, 0]) == 0.0
    assert bool(ds.diffusivity_converged.all())


@pytest.mark.cluster
def test_map_on_a_distributed_cluster():
    distributed = pytest.importorskip("distributed")
    im = _medium(16, seed=2)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ds = property_map(
            da.from_array(im, chunks=8),
            block_shape=8,
            voxel_size=1e-6,
            properties=("diffusivity",),
            direction="z",
        )
    with dask.config.set(scheduler="synchronous"):
        ref = property_map(
            im, block_shape=8, voxel_size=1e-6, properties=("diffusivity",), direction="z"
        )
    np.testing.assert_allclose(ds.tortuosity.values, ref.tortuosity.values)


def test_bad_arguments():
    im = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="phase_values"):
        property_map(im, block_shape=2, voxel_size=1e-6, properties=("conductivity",))
    with pytest.raises(ValueError, match="unknown properties"):
        property_map(im, block_shape=2, voxel_size=1e-6, properties=("viscosity",))
    with pytest.raises(ValueError, match="block_shape"):
        property_map(im, block_shape=(2, 2), voxel_size=1e-6)


def test_memory_estimate_bounds_measured_peak():
    im = _medium(48, seed=3)
    for prop, run in (
        ("conductivity", lambda: tortuosity(im, 0, direction="z")),
        ("permeability", lambda: permeability(im, direction="z", max_iter=5)),
    ):
        est = estimate_memory(im.shape, properties=(prop,), available=2**40)["whole"][prop]
        tracemalloc.start()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak <= est, (prop, peak, est)
        assert est - peak < 0.5 * est + 64 * 2**20


def test_memory_estimate_picks_a_route():
    e = estimate_memory((512, 512, 512), available=24 * 2**30, concurrent_blocks=2)
    assert e["route"]["conductivity"] == "whole"
    assert e["route"]["permeability"] == "blockwise"
    assert e["fits_whole"]["conductivity"]
    assert not e["fits_whole"]["permeability"]
    bs = e["blockwise"]["block_shape"]
    assert e["blockwise"]["peak"]["permeability"] <= 24 * 2**30
    assert e["blockwise"]["n_blocks"] == math.prod(math.ceil(512 / b) for b in bs)
    e64 = estimate_memory((512, 512, 512), dtype=np.float64, available=24 * 2**30)
    assert e64["whole"]["conductivity"] > e["whole"]["conductivity"]
    with pytest.raises(ValueError, match="unknown property"):
        estimate_memory((8, 8, 8), properties=("viscosity",))


def test_blockwise_memory_does_not_grow_with_the_volume():
    # a lazily generated volume: each task makes its own block, solves it and keeps 6 numbers
    def gen(block_info=None):
        loc = block_info[None]["chunk-location"]
        rng = np.random.default_rng(abs(hash(loc)) % 2**32)
        shape = block_info[None]["chunk-shape"]
        return (rng.random(shape) < 0.35).astype(np.uint8)  # 65 % pore

    peaks = []
    for nz in (32, 128):
        vol = da.map_blocks(gen, chunks=((16,) * (nz // 16), (32,), (32,)), dtype=np.uint8)
        with dask.config.set(scheduler="synchronous"):
            tracemalloc.start()
            ds = property_map(
                vol,
                block_shape=(16, 32, 32),
                voxel_size=1e-6,
                properties=("diffusivity",),
                direction="z",
            )
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert ds.sizes["z"] == nz // 16
        peaks.append(peak)
    # four times the volume, (nearly) the same peak: bounded by one block's solve
    assert peaks[1] < 1.3 * peaks[0]
    per_block = estimate_memory((16, 32, 32), properties=("conductivity",), available=2**40)
    assert peaks[1] < per_block["whole"]["conductivity"]
