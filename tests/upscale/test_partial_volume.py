"""The synthetic scans' optional partial-volume grey (ooc.synth, Imaging.partial_volume)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ooc.synth as synth
from ooc.synth.spec import PORE_FINE


def _spec(partial: int, *, noise: float = 0.0, psf: float = 0.0) -> synth.SampleSpec:
    spec = synth.default_sample(seed=5, shape=(12, 12, 12))
    ct = spec.scale("MicroCT")
    imaging = dataclasses.replace(
        ct.imaging,
        noise_sigma=noise,
        psf_sigma=(psf, psf, psf),
        drift=0.0,
        ring_count=0,
        partial_volume=partial,
    )
    return spec.with_scale("MicroCT", imaging=imaging)


def test_porosity_is_the_block_mean_of_the_finer_rendering():
    spec = _spec(0)
    region = (slice(2, 6), slice(0, 5), slice(3, 6))
    phi = synth.subresolution_porosity(spec, "MicroCT", region, samples=3)
    fine = synth.render_labels(
        spec,
        "MicroCT",
        (slice(6, 18), slice(0, 15), slice(9, 18)),
        voxel_size=tuple(v / 3 for v in spec.scale("MicroCT").voxel_size),
        phases="fine",
    )
    expect = np.isin(fine, PORE_FINE).reshape(4, 3, 5, 3, 3, 3).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(phi, expect, atol=1e-6)
    with pytest.raises(ValueError, match="samples"):
        synth.subresolution_porosity(spec, "MicroCT", region, samples=0)


def test_microporous_grey_follows_its_porosity_and_nothing_else_changes():
    plain = _spec(0)
    pv = _spec(4)
    lab0, g0 = synth.render_scan(plain, "MicroCT")
    lab1, g1 = synth.render_scan(pv, "MicroCT")
    np.testing.assert_array_equal(lab0, lab1)
    micro = lab1 == 2
    assert micro.any()
    assert (~micro).any()
    np.testing.assert_array_equal(g0[~micro], g1[~micro])
    phi = synth.subresolution_porosity(pv, "MicroCT", samples=4)
    pore_i, solid_i = pv.scale("MicroCT").imaging.intensities[:2]
    expect = np.rint(phi * pore_i + (1 - phi) * solid_i)
    np.testing.assert_allclose(g1[micro], expect[micro], atol=1)
    # the default material's micro-porous regions hold micro- and nano-pores: about 0.55
    assert phi[micro].mean() == pytest.approx(pv.material.microporosity, abs=0.06)


def test_partial_volume_grey_is_block_independent():
    spec = _spec(2, noise=500.0, psf=1.0)
    _, whole = synth.render_scan(spec, "MicroCT")
    _, a = synth.render_scan(spec, "MicroCT", (slice(0, 5), slice(0, 12), slice(0, 12)))
    _, b = synth.render_scan(spec, "MicroCT", (slice(5, 12), slice(0, 12), slice(0, 12)))
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)


def test_partial_volume_must_be_a_count():
    with pytest.raises(ValueError, match="partial_volume"):
        synth.Imaging(intensities=(0.0, 1.0, 2.0), noise_sigma=0.0, partial_volume=-1)
    im = synth.Imaging(intensities=(0.0, 1.0, 2.0), noise_sigma=0.0, partial_volume=3)
    spec = _spec(3)
    assert synth.SampleSpec.from_dict(spec.to_dict()) == spec
    assert im.partial_volume == 3
