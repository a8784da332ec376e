"""Published tortuosity of the NMC electrode (TauFactor 2): pore phase, axes 0 and 1.

Needs ../shared/data/nmc_electrode/electrode.tiff next to the repository; skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ooc.simulate import tortuosity

DATA = Path(__file__).resolve().parents[2] / "../shared/data/nmc_electrode/electrode.tiff"

pytestmark = pytest.mark.skipif(not DATA.is_file(), reason=f"{DATA} not present")


@pytest.fixture(scope="module")
def electrode() -> np.ndarray:
    tifffile = pytest.importorskip("tifffile")
    im = tifffile.imread(DATA)
    assert im.shape == (256, 256, 256)
    return im


@pytest.mark.slow
@pytest.mark.parametrize(("axis", "tau", "d_rel"), [("z", 2.0776, 0.2166), ("y", 2.0766, None)])
def test_pore_tortuosity_matches_published(electrode, axis, tau, d_rel):
    r = tortuosity(electrode, 0, direction=axis, rtol=1e-3)[axis]
    assert r.porosity == pytest.approx(0.44991738, abs=1e-7)
    assert r.tortuosity == pytest.approx(tau, rel=0.005)
    if d_rel is not None:
        assert r.relative_diffusivity == pytest.approx(d_rel, rel=0.005)
    assert r.info.converged
    assert r.info.flux_imbalance <= 1e-3
