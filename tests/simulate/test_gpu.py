"""The same kernels on CuPy arrays: GPU results equal CPU results (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from ooc.simulate import conductivity, permeability, tortuosity
from ooc.xp import cupy_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU"),
]


def _medium(n: int = 32) -> np.ndarray:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    f = ndi.gaussian_filter(rng.standard_normal((n, n, n)), 2.0, mode="wrap")
    return (f > np.quantile(f, 0.6)).astype(np.uint8)


def test_conductivity_on_gpu_matches_cpu():
    import cupy as cp

    im = _medium()
    ks = {0: 1.0, 1: 0.05}
    cpu = conductivity(im, ks, rtol=1e-6)
    gpu = conductivity(cp.asarray(im), ks, rtol=1e-6, return_fields=True)
    for d in "zyx":
        assert gpu[d].effective == pytest.approx(cpu[d].effective, rel=1e-5)
        assert isinstance(gpu[d].potential, np.ndarray)


def test_tortuosity_and_permeability_on_gpu_match_cpu():
    import cupy as cp

    im = _medium(24)
    t_cpu = tortuosity(im, 0, direction="x", rtol=1e-6)["x"].tortuosity
    t_gpu = tortuosity(cp.asarray(im), 0, direction="x", rtol=1e-6)["x"].tortuosity
    assert t_gpu == pytest.approx(t_cpu, rel=1e-5)
    k_cpu = permeability(im, direction="z", rtol=1e-6)["z"].permeability_voxel2
    k_gpu = permeability(cp.asarray(im), direction="z", rtol=1e-6)["z"].permeability_voxel2
    assert k_gpu == pytest.approx(k_cpu, rel=1e-4)
