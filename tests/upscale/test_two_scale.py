"""Two-scale consistency against the fully resolved material (reduced size: 8³ -> 64³).

The issue's check is a 32³ coarse region against its 256³ fine truth (benchmarks/upscale.py);
here the coarse region is 8³ coarse voxels (64³ fine, ratio 8), small enough for a unit test,
at three seeds.  Grains are resolved at the coarse voxel with radii of 4-8 coarse voxels, so
their staircase alone costs up to 5 % of D_eff at this size (measured with a homogeneous matrix),
and a finer scan of 48³ or 64³ fine voxels is not a representative volume of the matrix (D_eff
varies about 5 % between 64³ samples).  The tolerances asserted are what this size supports:

- D_eff/D0 along z, y, x, per-voxel route (grey porosity -> D(phi) fitted on the 48³ finer
  scan's 8³-block map): within 8 % on every axis, and closer to the truth than one constant per
  phase.  Measured: seed 0: +3.7 -0.9 -1.2 %; seed 1: -6.8 +0.9 -3.5 %; seed 2: +3.3 +2.3 +2.8 %
  (constant route: +9.4 +3.3 +5.2; -14.9 -3.0 -11.8; +7.5 +11.6 +4.0 %).
- permeability along z, constant route (Brinkman with the 64³ finer scan's k per axis): within
  25 %.  Measured: +10.6, -18.9, +13.2 %.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest

from ooc.simulate import conductivity, permeability, property_map, tortuosity
from ooc.upscale import GreyLevels, fit_relations, from_results, grey_porosity
from ooc.upscale.testing import finer_scan, two_scale_case

AXES = ("z", "y", "x")
#: the imaging model's pore and solid grey (two_scale_case)
LEVELS = GreyLevels(14_000.0, 44_000.0, 0.0, 0.0, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diffusivity_upscaled_from_a_finer_scan_matches_the_direct_solve(seed):
    case = two_scale_case(seed, 8, grey=True)
    scan = finer_scan(case, 48)
    direct = tortuosity(case.fine_pore, direction=AXES).relative_diffusivity
    lab = case.coarse_labels
    # one constant per phase: the finer scan's D_eff/D0 tensor (diagonal)
    props = from_results(diffusion=tortuosity(scan, direction=AXES))
    constant = conductivity(
        lab,
        {0: 1.0, 1: 0.0, 2: props.value("relative_diffusivity")},
        direction=AXES,
        reference=1.0,
    ).relative
    # per voxel: D(phi) fitted on blocks of one coarse voxel, phi from the grey
    with dask.config.set(scheduler="synchronous"):  # 216 tiny solves: threads only contend
        bm = property_map(
            (~scan).astype(np.uint8),
            block_shape=case.ratio,
            voxel_size=case.fine_voxel_m,
            properties=("diffusivity",),
        )
    relation = fit_relations(bm, "relative_diffusivity")[0]
    phi = grey_porosity(case.grey, lab, LEVELS, phase=2)
    field = relation(phi).astype(np.float32)
    per_voxel = conductivity(
        lab, {0: 1.0, 1: 0.0, 2: field}, direction=AXES, reference=1.0
    ).relative
    err_voxel = [per_voxel[d] / direct[d] - 1 for d in AXES]
    err_const = [constant[d] / direct[d] - 1 for d in AXES]
    assert max(abs(e) for e in err_voxel) < 0.08, err_voxel
    assert np.mean(np.abs(err_voxel)) < np.mean(np.abs(err_const)), (err_voxel, err_const)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permeability_upscaled_from_a_finer_scan_matches_the_direct_solve(seed):
    case = two_scale_case(seed, 8)
    scan = finer_scan(case, 64)
    fv = case.fine_voxel_m
    direct = permeability(case.fine_pore, voxel_size=fv, direction="z", rtol=1e-3)["z"]
    props = from_results(flow=permeability(scan, voxel_size=fv, direction=AXES, rtol=1e-3))
    up = permeability(
        case.coarse_labels,
        voxel_size=case.coarse_voxel_m,
        porous_phases={2: props.value("permeability")},
        direction="z",
        rtol=1e-3,
    )["z"]
    assert up.permeability_m2 == pytest.approx(direct.permeability_m2, rel=0.25)


def test_the_case_is_consistent():
    case = two_scale_case(3, 4, ratio=4, grey=True)
    assert case.fine_pore.shape == (16, 16, 16)
    assert case.coarse_labels.shape == (4, 4, 4)
    assert set(np.unique(case.coarse_labels)) <= {1, 2}  # no macro pore by default
    np.testing.assert_allclose(
        case.true_porosity, case.fine_pore.reshape(4, 4, 4, 4, 4, 4).mean(axis=(1, 3, 5))
    )
    m = case.coarse_labels == 2
    # the matrix grey is its partial volume (no noise)
    phi = grey_porosity(case.grey, case.coarse_labels, LEVELS, phase=2)
    np.testing.assert_allclose(phi[m], case.true_porosity[m], atol=1e-4)
    scan = finer_scan(case, 16)
    assert scan.shape == (16, 16, 16)
    assert 0.45 < scan.mean() < 0.75
