"""Property-porosity relations: exact recovery, stated errors, fits on block maps."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from ooc.simulate import property_map
from ooc.upscale import FORMS, calibrate_relation, fit_relation, fit_relations

PHI = np.linspace(0.3, 0.7, 25)


@pytest.mark.parametrize(
    ("form", "params"),
    [
        ("archie", {"m": 2.3}),
        ("power", {"a": 1.7, "m": 3.1}),
        ("kozeny_carman", {"c": 3e-15}),
        ("threshold", {"a": 0.9, "m": 1.8, "phi_c": 0.12}),
    ],
)
def test_exact_data_give_back_the_parameters(form, params):
    from ooc.upscale.relations import _evaluate

    y = _evaluate(form, params, PHI)
    rel = fit_relation(PHI, y, form=form, quantity="q")
    for k, v in params.items():
        assert rel.params[k] == pytest.approx(v, rel=1e-3 if form == "threshold" else 1e-9)
    assert rel.rms_log_error < 1e-3
    assert rel.n_points == PHI.size
    assert rel.porosity_range == (pytest.approx(0.3), pytest.approx(0.7))
    np.testing.assert_allclose(rel(PHI), y, rtol=2e-3)
    assert form in rel.formula()
    assert "RMS log error" in rel.formula()


@settings(max_examples=25, deadline=None)
@given(
    a=st.floats(0.05, 20.0),
    m=st.floats(0.5, 6.0),
    noise=st.floats(0.0, 0.3),
)
def test_power_law_error_is_the_noise(a, m, noise):
    rng = np.random.default_rng(0)
    eps = rng.standard_normal(PHI.size)
    eps -= eps.mean()
    eps *= noise / max(np.sqrt(np.mean(eps**2)), 1e-300)
    y = a * PHI**m * np.exp(eps)
    rel = fit_relation(PHI, y, form="power")
    # noise orthogonal to (1, log phi) is all the error left; the fit cannot be worse than it
    assert rel.rms_log_error <= noise + 1e-9
    assert rel.max_relative_error >= 0


def test_non_percolating_blocks_are_excluded_and_counted():
    y = 0.8 * PHI**2
    y[:5] = 0.0
    y[5] = np.nan
    rel = fit_relation(PHI, y, form="archie")
    assert rel.n_excluded == 6
    assert rel.n_points == PHI.size - 6
    assert rel(0.0) == 0.0
    assert rel(np.array([2.0])) == pytest.approx(1.0)  # porosity clipped to 1


def test_bad_input():
    with pytest.raises(ValueError, match="form"):
        fit_relation(PHI, PHI, form="cubic")
    with pytest.raises(ValueError, match="differ in size"):
        fit_relation(PHI, PHI[:3], form="power")
    with pytest.raises(ValueError, match="at least 4 blocks"):
        fit_relation(PHI[:3], PHI[:3], form="threshold")


def _map(phi: np.ndarray, d: np.ndarray) -> xr.Dataset:
    return xr.Dataset(
        {
            "porosity": (("z", "y", "x"), phi),
            "relative_diffusivity": (("z", "y", "x", "direction"), d),
        },
        coords={"direction": ["z", "y", "x"]},
    )


def test_fit_relations_ranks_forms_and_fits_one_axis():
    rng = np.random.default_rng(2)
    phi = rng.uniform(0.3, 0.7, (3, 3, 3))
    d = np.stack([phi**2.0, phi**2.5, 0.5 * phi**2.0], axis=-1)
    ds = _map(phi, d)
    rz = fit_relations(ds, "relative_diffusivity", direction="z")
    assert rz[0].rms_log_error < 1e-9
    assert rz[0].form in ("archie", "power", "threshold")
    assert [r.rms_log_error for r in rz] == sorted(r.rms_log_error for r in rz)
    assert {r.form for r in rz} == set(FORMS)
    rx = fit_relations(ds, "relative_diffusivity", forms=["power"], direction="x")
    assert rx[0].params["a"] == pytest.approx(0.5)
    pooled = fit_relations(ds, "relative_diffusivity", forms=["power"])[0]
    assert pooled.n_points == 81
    assert pooled.rms_log_error > 0.01  # three axes differ: the pooled fit says so
    with pytest.raises(ValueError, match="has no 'permeability'"):
        fit_relations(ds, "permeability")


def test_relation_on_a_real_block_map():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    f = ndimage.gaussian_filter(rng.standard_normal((32, 32, 32)), 1.2)
    # porosity that varies from block to block
    f += np.linspace(-0.25, 0.25, 32)[:, None, None]
    im = (f < 0.05).astype(np.uint8)  # 0 pore
    ds = property_map(im, block_shape=8, voxel_size=1e-6, properties=("diffusivity",))
    best = fit_relations(ds, "relative_diffusivity")[0]
    d = ds.relative_diffusivity.values
    ok = d > 0
    pred = best(np.broadcast_to(ds.porosity.values[..., None], d.shape))
    # the relation explains the blocks better than their mean does
    resid = np.log(pred[ok] / d[ok])
    spread = np.log(d[ok] / np.exp(np.log(d[ok]).mean()))
    assert np.sqrt(np.mean(resid**2)) < 0.7 * np.sqrt(np.mean(spread**2))
    assert best.rms_log_error == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-6)


def _block_map(porosity: np.ndarray, block: int = 4) -> xr.Dataset:
    """The variables of a property_map output that calibration reads (equal blocks)."""
    nz, ny, nx = porosity.shape
    return xr.Dataset(
        {
            "porosity": (("z", "y", "x"), porosity),
            "z_size": ("z", np.full(nz, block)),
            "y_size": ("y", np.full(ny, block)),
            "x_size": ("x", np.full(nx, block)),
        }
    )


@pytest.mark.parametrize("subdivide", [1, 2, 3])
def test_calibration_of_layered_blocks_is_exact(subdivide):
    """Block porosity varies along z only, y = phi^2: the grid conducts as the harmonic mean of
    the layers along z and their arithmetic mean across, at any subdivision; the scale is the
    geometric mean of effective / those."""
    phi = np.linspace(0.3, 0.7, 5)[:, None, None] * np.ones((5, 3, 4))
    rel = fit_relation(PHI, PHI**2, form="archie", quantity="q")
    layers = np.linspace(0.3, 0.7, 5) ** 2
    harmonic, arithmetic = 1 / np.mean(1 / layers), np.mean(layers)
    effective = {"z": 0.2, "x": 0.3}
    cal = calibrate_relation(rel, _block_map(phi), effective, subdivide=subdivide)
    expected = np.sqrt(0.2 / harmonic * 0.3 / arithmetic)
    assert cal.scale == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(cal(PHI), expected * PHI**2, rtol=1e-6)
    assert f"{cal.scale:.4g} x phi^2" in cal.formula()
    # calibrating again starts from the fitted relation, not the scaled one
    again = calibrate_relation(cal, _block_map(phi), effective, subdivide=subdivide)
    assert again.scale == pytest.approx(cal.scale, rel=1e-9)


def test_calibration_refuses_what_it_cannot_use():
    rel = fit_relation(PHI, PHI**2, form="archie", quantity="q")
    bm = _block_map(np.full((2, 2, 2), 0.5))
    with pytest.raises(ValueError, match="effective"):
        calibrate_relation(rel, bm, {"z": 0.0})
    with pytest.raises(ValueError, match="subdivide"):
        calibrate_relation(rel, bm, {"z": 0.1}, subdivide=0)
    uneven = bm.assign(x_size=("x", np.array([4, 2])))
    with pytest.raises(ValueError, match="equal blocks"):
        calibrate_relation(rel, uneven, {"z": 0.1})
