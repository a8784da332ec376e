"""Per-phase transfer: finer-scan results become a phase of the coarser scan (exact cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from ooc.simulate import conductivity, permeability, property_map, tortuosity
from ooc.upscale import PhaseProperties, from_block_map, from_results, rev_curve

EXACT = {"dtype": np.float64, "rtol": 1e-10}
AXES = ("z", "y", "x")


def _layers(profile: list[int], axis: int, width: int = 4) -> np.ndarray:
    """Labels constant across ``axis``, following ``profile`` along it."""
    prof = np.asarray(profile, dtype=np.uint8)
    shape = [width] * 3
    shape[axis] = prof.size
    sh = [1, 1, 1]
    sh[axis] = prof.size
    return np.broadcast_to(prof.reshape(sh), shape).copy()


@pytest.mark.parametrize("fine_axis", [0, 1, 2])
@pytest.mark.parametrize("coarse_axis", [0, 1, 2])
def test_layered_micro_porous_media_two_scales_are_exact(fine_axis, coarse_axis):
    """A coarse laminate of pore and a micro-porous phase whose finer scan is itself a laminate.

    The micro-porous phase's finer scan is a laminate of two conducting phases (1 and 0.2).
    Where every interface of both scales is parallel or normal to the drive, the flux needs no
    detour and the coarse solve with the transferred diagonal tensor equals the direct solve of
    the fully resolved material (series and parallel are exact in the finite volumes) to solver
    tolerance: all three drives when the laminates are parallel, else the drive along both.
    """
    r = 4  # fine voxels per coarse voxel
    cell = [0, 0, 1, 1]  # one fine period
    ks = {0: 1.0, 1: 0.2}
    finer = _layers(cell * 2, fine_axis)
    props = from_results(conduction=conductivity(finer, ks, direction=AXES, **EXACT))
    series, parallel = 1 / (0.5 / 1.0 + 0.5 / 0.2), 0.5 * (1.0 + 0.2)
    expect = tuple(series if a == fine_axis else parallel for a in range(3))
    assert props.conductivity == pytest.approx(expect, rel=1e-9)
    coarse = _layers([0, 2, 2, 0, 2, 0], coarse_axis, width=3)  # 0 pore, 2 micro-porous
    tensor = props.value("conductivity")
    up = conductivity(coarse, {0: 1.0, 2: tensor}, direction=AXES, reference=1.0, **EXACT)
    # the fine truth: each micro-porous coarse voxel filled with r^3 voxels of the laminate
    micro = np.kron(coarse == 2, np.ones((r, r, r), dtype=bool))
    shape = micro.shape
    sh = [1, 1, 1]
    sh[fine_axis] = shape[fine_axis]
    stripes = np.resize(np.asarray(cell, dtype=np.uint8), shape[fine_axis]).reshape(sh)
    fine = np.where(micro, np.broadcast_to(stripes + 1, shape), 0).astype(np.uint8)
    direct = conductivity(fine, {0: 1.0, 1: 1.0, 2: 0.2}, direction=AXES, **EXACT)
    exact = AXES if fine_axis == coarse_axis else [AXES[3 - fine_axis - coarse_axis]]
    for d in exact:
        assert up.relative[d] == pytest.approx(direct[d].effective, rel=1e-9)


def test_layered_pore_space_transfers_its_tortuosity():
    # a pore/solid laminate: D_eff/D0 = porosity along the layers, 0 across
    finer = _layers([0, 0, 1, 1] * 2, axis=1)
    props = from_results(diffusion=tortuosity(finer, 0, direction=AXES, **EXACT))
    assert props.porosity == pytest.approx(0.5)
    assert props.relative_diffusivity == pytest.approx((0.5, 0.0, 0.5), abs=1e-9)
    assert props.tortuosity == pytest.approx((1.0, math.inf, 1.0))
    np.testing.assert_allclose(props.diffusivity_tensor, np.diag([0.5, 0.0, 0.5]), atol=1e-9)


def test_transferred_permeability_of_a_slit_stack_feeds_brinkman():
    # finer scan: slits (fluid 4 voxels, plates 1 voxel) -> k along the slits, 0 across
    h = 1e-8
    finer = _layers([1, 0, 0, 0, 0] * 2, axis=1, width=5)
    flow = permeability(finer, voxel_size=h, direction=AXES, rtol=1e-7)
    props = from_results(flow=flow)
    k = props.permeability
    assert k[1] == 0.0
    assert k[0] == pytest.approx(k[2], rel=1e-6)
    assert props.porosity == pytest.approx(0.8)
    with pytest.raises(ValueError, match="every axis"):
        permeability(np.full((4, 4, 4), 2, np.uint8), voxel_size=1e-6, porous_phases={2: k})
    # isotropic use: the geometric mean of the solved axes is 0 when one axis is blocked
    assert props.value("permeability", isotropic=True) == 0.0


def test_phase_properties_values_and_dataset():
    rng = np.random.default_rng(4)
    im = (rng.random((10, 10, 10)) < 0.55).astype(np.uint8)
    t = tortuosity(im, 0, direction=("z", "x"))
    c = conductivity(im, {0: 2.0, 1: 0.5}, direction=("z", "x"))
    p = from_results(diffusion=t, conduction=c)
    assert p.relative_diffusivity[0] == t["z"].relative_diffusivity
    assert math.isnan(p.relative_diffusivity[1])
    assert p.conductivity[2] == c["x"].effective
    assert p.tortuosity[0] == pytest.approx(t["z"].tortuosity)
    with pytest.raises(ValueError, match=r"not solved along \['y'\]"):
        p.value("relative_diffusivity")
    geo = p.value("relative_diffusivity", isotropic=True)
    assert geo == pytest.approx(
        math.sqrt(t["z"].relative_diffusivity * t["x"].relative_diffusivity)
    )
    np.testing.assert_allclose(p.conductivity_tensor[:, 0], c["z"].tensor_column)
    ds = p.to_dataset()
    assert list(ds.direction.values) == list(AXES)
    assert ds.relative_diffusivity.sel(direction="x") == t["x"].relative_diffusivity
    assert ds.attrs["porosity"] == p.porosity
    with pytest.raises(ValueError, match="was not transferred"):
        p.value("permeability")
    with pytest.raises(ValueError, match="at least one"):
        from_results()


def _fake_map(values: np.ndarray, sizes: tuple[list[int], ...]) -> xr.Dataset:
    """A property_map-like dataset with given relative_diffusivity per block (z, y, x, dir)."""
    coords = {"direction": list(AXES)}
    for a, s in zip(AXES, sizes, strict=True):
        coords[f"{a}_size"] = (a, np.asarray(s))
    return xr.Dataset(
        {
            "relative_diffusivity": (("z", "y", "x", "direction"), values),
            "porosity": (("z", "y", "x"), values[..., 0] * 0 + 0.4),
        },
        coords=coords,
        attrs={"block_shape": [4, 4, 4]},
    )


@pytest.mark.parametrize(
    ("statistic", "reduce"),
    [
        ("mean", np.mean),
        ("median", np.median),
        ("geometric", lambda v: np.exp(np.log(v).mean())),
        ("harmonic", lambda v: 1 / np.mean(1 / v)),
    ],
)
def test_block_map_statistics(statistic, reduce):
    rng = np.random.default_rng(0)
    vals = rng.uniform(0.1, 0.5, (3, 2, 2, 3))
    ds = _fake_map(vals, ([4, 4, 2], [4, 4], [4, 4]))
    p = from_block_map(ds, statistic=statistic)
    keep = vals[:2]  # the last z block is partial
    for i in range(3):
        assert p.relative_diffusivity[i] == pytest.approx(reduce(keep[..., i].ravel()))
        assert p.spread["relative_diffusivity"][i] == pytest.approx(keep[..., i].std())
    assert p.n_blocks == 8
    assert p.porosity == pytest.approx(0.4)
    assert "8 blocks" in p.source
    all_blocks = from_block_map(ds, statistic=statistic, complete_only=False)
    assert all_blocks.n_blocks == 12
    with pytest.raises(ValueError, match="statistic"):
        from_block_map(ds, statistic="mode")


def test_block_map_of_a_real_solve_and_the_rev_curve():
    # a laminate of period 4 along y: every block of 4k voxels has the same properties
    im = _layers([0, 0, 1, 1] * 4, axis=1, width=16)
    ds = property_map(im, block_shape=8, voxel_size=1e-6, properties=("diffusivity",), rtol=1e-8)
    p = from_block_map(ds)
    assert p.relative_diffusivity == pytest.approx((0.5, 0.0, 0.5), abs=1e-6)
    assert p.spread["relative_diffusivity"] == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    rev = rev_curve(im, [4, 8, 16], voxel_size=1e-6, rtol=1e-8)
    assert list(rev.block_size.values) == [4, 8, 16]
    assert list(rev.n_blocks.values) == [64, 8, 1]
    np.testing.assert_allclose(rev.relative_diffusivity_mean.sel(direction="z"), 0.5, atol=1e-6)
    np.testing.assert_allclose(rev.relative_diffusivity_std.sel(direction="z"), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        rev.relative_diffusivity_relative_change.sel(direction="z")[1:], 0.0, atol=1e-6
    )
    assert np.isnan(rev.relative_diffusivity_relative_change[0]).all()
    np.testing.assert_allclose(rev.porosity_mean, 0.5)
    with pytest.raises(ValueError, match="increasing"):
        rev_curve(im, [8, 4], voxel_size=1e-6)
    with pytest.raises(ValueError, match="smallest edge"):
        rev_curve(im, [4, 32], voxel_size=1e-6)


def test_rev_curve_spread_shrinks_with_block_size():
    from scipy import ndimage

    rng = np.random.default_rng(1)
    f = ndimage.gaussian_filter(rng.standard_normal((32, 32, 32)), 1.5, mode="wrap")
    im = (f > 0).astype(np.uint8)
    rev = rev_curve(im, [8, 16], voxel_size=1e-6, direction="z")
    cv = rev.relative_diffusivity_cv.sel(direction="z").values
    assert cv[1] < cv[0]
    assert rev.porosity_std[1] < rev.porosity_std[0]


def test_phase_properties_is_frozen():
    p = PhaseProperties(porosity=0.3, relative_diffusivity=(0.1, 0.2, 0.3))
    with pytest.raises(AttributeError):
        p.porosity = 0.4  # type: ignore[misc]
    assert p.value("relative_diffusivity") == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match="quantity"):
        p.value("viscosity")
