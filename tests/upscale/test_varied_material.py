"""The synthetic material's optional spatially varying micro-pore fraction (VariedMaterial)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ooc.synth as synth
from ooc.synth.material import (
    MICRO,
    Box,
    FractionField,
    VariedMaterial,
    fine_labels,
    fine_points,
)
from ooc.synth.spec import SphereProcess
from ooc.upscale.testing import two_scale_case

FIELD = FractionField(0.3, 0.8, 48.0)
#: matrix everywhere: micro-pores (radius 1.5-3 nm) in a field of lattice 48 nm
MATRIX = VariedMaterial(
    grains=SphereProcess(0.0, 1.0, 1.0),
    microporous=SphereProcess(0.999, 1e7, 1e7),
    micropores=SphereProcess(0.5, 1.5, 3.0),
    nanopores=SphereProcess(0.0, 1.0, 1.0),
    micropore_field=FIELD,
)
UNIT = (1.0, 1.0, 1.0)


def _box(start: tuple[int, int, int], stop: tuple[int, int, int]) -> Box:
    return Box((0.0, 0.0, 0.0), UNIT, start, stop)


def test_without_a_field_the_material_is_unchanged_sphere_for_sphere():
    spec = synth.default_sample(seed=4, shape=(24, 24, 24))
    plain = spec.material
    varied = VariedMaterial(**vars(plain))
    box = Box((0.0, 0.0, 0.0), (250.0, 250.0, 250.0), (0, 0, 0), (24, 24, 24))
    np.testing.assert_array_equal(fine_labels(plain, 4, box), fine_labels(varied, 4, box))
    # a field of one fraction thins spheres away: not the plain material, but the same mean
    fixed = dataclasses.replace(MATRIX, micropore_field=FractionField(0.5, 0.5, 48.0))
    plain_matrix = dataclasses.replace(MATRIX, micropore_field=None)
    a = fine_labels(fixed, 0, _box((0, 0, 0), (64, 64, 64))) == MICRO
    b = fine_labels(plain_matrix, 0, _box((0, 0, 0), (64, 64, 64))) == MICRO
    assert a.mean() == pytest.approx(0.5, abs=0.03)
    assert b.mean() == pytest.approx(0.5, abs=0.03)


def _block_fraction(material: VariedMaterial, seed: int, n: int, b: int) -> np.ndarray:
    pore = fine_labels(material, seed, _box((0, 0, 0), (n, n, n))) == MICRO
    m = n // b
    return pore.reshape(m, b, m, b, m, b).mean(axis=(1, 3, 5)).ravel()


@pytest.mark.parametrize("seed", [0, 2])
def test_the_local_pore_fraction_follows_the_field(seed):
    n, b = 128, 16
    got = _block_fraction(MATRIX, seed, n, b)
    # the field's expected fraction, averaged over the same blocks (4³ points in each)
    c = np.arange(n // 4) * 4 + 2.0
    pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    m, q = n // b, b // 4
    expect = FIELD.fraction(seed, pts).reshape(m, q, m, q, m, q).mean(axis=(1, 3, 5)).ravel()
    # the blocks of a homogeneous matrix of that mean fraction scatter by chance alone
    mean = float(expect.mean())
    plain = dataclasses.replace(
        MATRIX, micropore_field=None, micropores=SphereProcess(mean, 1.5, 3.0)
    )
    chance = _block_fraction(plain, seed, n, b).std()
    assert expect.std() > 0.05  # the field varies between blocks
    assert abs(got.mean() - mean) < 0.01
    # measured: RMS 0.043-0.047 against chance 0.044-0.048, correlation 0.84-0.85 (seeds 0-2)
    assert np.sqrt(np.mean((got - expect) ** 2)) < 1.2 * chance
    assert np.corrcoef(got, expect)[0, 1] > 0.75


def test_a_varied_material_is_the_same_in_any_block_and_at_points():
    whole = fine_labels(MATRIX, 2, _box((0, 0, 0), (40, 40, 40)))
    a = fine_labels(MATRIX, 2, _box((0, 0, 0), (40, 17, 40)))
    b = fine_labels(MATRIX, 2, _box((0, 17, 0), (40, 40, 40)))
    np.testing.assert_array_equal(np.concatenate([a, b], axis=1), whole)
    idx = np.random.default_rng(1).integers(0, 40, (3000, 3))
    got = fine_points(MATRIX, 2, idx + 0.5)
    np.testing.assert_array_equal(got, whole[idx[:, 0], idx[:, 1], idx[:, 2]])


@settings(max_examples=50, deadline=None)
@given(
    low=st.floats(0.0, 0.95),
    width=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
    points=st.lists(
        st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False)] * 3), min_size=1, max_size=20
    ),
)
def test_the_field_stays_between_its_bounds(low, width, seed, points):
    high = low + width * (0.99 - low)
    field = FractionField(low, high, 37.0)
    p = np.asarray(points)
    v = field.level(seed, p)
    assert np.all((v >= 0.0) & (v <= 1.0))
    f = field.fraction(seed, p)
    assert np.all((f >= low - 1e-12) & (f <= high + 1e-12))
    k = field.keep(seed, p)
    assert np.all((k >= 0.0) & (k <= 1.0 + 1e-12))


@pytest.mark.parametrize(
    ("low", "high", "length", "match"),
    [
        (0.5, 0.4, 10.0, "low <= high"),
        (-0.1, 0.4, 10.0, "0 <= low"),
        (0.2, 1.0, 10.0, "< 1"),
        (0.2, 0.4, 0.0, "length"),
    ],
)
def test_a_bad_field_is_refused(low, high, length, match):
    with pytest.raises(ValueError, match=match):
        FractionField(low, high, length)


def test_the_coarse_grey_follows_the_varying_porosity():
    case = two_scale_case(1, 8, ratio=4, grey=True, micropore_field=FractionField(0.3, 0.8, 12.0))
    m = case.coarse_labels == 2
    phi = case.true_porosity[m]
    assert phi.std() > 0.08
    # no noise: the grey is the partial-volume mean of the fine material, exactly
    grey = case.grey[m].astype(np.float64)
    np.testing.assert_allclose(grey, np.rint(phi * 14_000.0 + (1 - phi) * 44_000.0), atol=1)


def test_a_sample_with_a_field_survives_its_json() -> None:
    sample = dataclasses.replace(synth.default_sample(seed=4, shape=(16, 16, 16)), material=MATRIX)
    again = synth.SampleSpec.from_dict(sample.to_dict())
    assert again == sample
    assert again.material.micropore_field == FIELD
