"""property_map with an oversampling margin: inner-part properties, edges, anisotropic voxels."""

from __future__ import annotations

import numpy as np
import pytest

from ooc.simulate import permeability, property_map, tortuosity


def test_margin_on_uniform_media_gives_the_medium():
    im = np.full((16, 8, 16), 1, np.uint8)
    ds = property_map(
        im,
        block_shape=8,
        voxel_size=(2e-6, 1e-6, 1e-6),
        properties=("permeability",),
        porous_phases={1: 3e-14},
        direction=("z", "x"),
        margin=4,
        rtol=1e-6,
    )
    np.testing.assert_allclose(ds.permeability.values, 3e-14, rtol=1e-4)
    assert ds.attrs["margin"] == [4, 4, 4]
    assert "margin" in ds.attrs["note"]
    np.testing.assert_array_equal(ds.block_voxels.values, 8**3)


@pytest.mark.parametrize("voxel", [(1e-6, 1e-6, 1e-6), (3e-6, 1e-6, 2e-6)])
def test_margin_along_a_straight_duct_keeps_its_permeability(voxel):
    # a duct along z, uniform along z: every block along it holds the same flow
    im = np.ones((24, 8, 8), np.uint8)
    im[:, 2:6, 2:6] = 0
    whole = permeability(im, voxel_size=voxel, direction="z", rtol=1e-8)["z"].permeability_m2
    ds = property_map(
        im,
        block_shape=(8, 8, 8),
        voxel_size=voxel,
        properties=("permeability", "diffusivity"),
        direction="z",
        margin=(8, 0, 0),
        rtol=1e-8,
    )
    np.testing.assert_allclose(ds.permeability.values, whole, rtol=1e-4)
    np.testing.assert_allclose(ds.relative_diffusivity.values, 16 / 64, rtol=1e-6)
    np.testing.assert_allclose(ds.tortuosity.values, 1.0, rtol=1e-6)


def test_margin_tasks_and_partial_edge_blocks():
    rng = np.random.default_rng(3)
    im = (rng.random((20, 12, 12)) < 0.4).astype(np.uint8)
    ds = property_map(
        im,
        block_shape=8,
        voxel_size=1e-6,
        properties=("diffusivity",),
        margin=2,
        compute=False,
    )
    assert ds.relative_diffusivity.data.npartitions == 3 * 2 * 2
    ds = ds.compute()
    assert list(ds.z_size.values) == [8, 8, 4]
    assert float(ds.porosity[2, 1, 1]) == pytest.approx(float((im[16:, 8:, 8:] == 0).mean()))
    # every block value is finite; non-percolating blocks are 0 (tau inf), not NaN
    assert np.isfinite(ds.relative_diffusivity).all()
    d = ds.relative_diffusivity.values
    t = ds.tortuosity.values
    np.testing.assert_allclose(
        t[d > 0], (ds.porosity.values[..., None] / d)[d > 0] * (d > 0)[d > 0]
    )
    assert np.isinf(t[d == 0]).all()


def test_anisotropic_voxels_reach_the_block_tortuosity():
    # a serpentine: open layers joined by connectors at alternate ends, so the path runs
    # along x between z steps; stretching z changes the share of the detour
    im = np.ones((8, 4, 8), np.uint8)
    im[0::2] = 0
    im[1::4, :, 0] = 0
    im[3::4, :, 7] = 0
    vs = (4e-6, 1e-6, 1e-6)
    ds = property_map(im, block_shape=8, voxel_size=vs, properties=("diffusivity",), direction="z")
    ref = tortuosity(im, 0, direction="z", voxel_size=vs)["z"].relative_diffusivity
    iso = tortuosity(im, 0, direction="z")["z"].relative_diffusivity
    assert float(ds.relative_diffusivity[0, 0, 0, 0]) == pytest.approx(ref, rel=1e-5)
    assert abs(ref / iso - 1) > 0.05


def test_bad_margin():
    with pytest.raises(ValueError, match="margin"):
        property_map(np.zeros((4, 4, 4), np.uint8), block_shape=2, voxel_size=1e-6, margin=-1)
