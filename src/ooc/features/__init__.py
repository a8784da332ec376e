"""Filter-bank features of grey volumes, block by block on NumPy or CuPy.

- :mod:`ooc.features.kernels` - pure kernels on one array (NumPy with ``scipy.ndimage``, or
  CuPy with ``cupyx.scipy.ndimage``): Gaussian smoothing, gradient magnitude, Laplacian and
  difference of Gaussians, Hessian and structure-tensor eigenvalues (closed form), Sobel
  magnitude, local variance and local entropy.
- :class:`FeatureSpec` - which filters at which scales (ilastik's by default), in voxels or
  physical units, anisotropic voxel sizes honoured per axis; its halo and channel names.
- :func:`feature_stack` / :func:`features_at` - the whole bank on one block, or at some voxels.
- :func:`compute_features` - the bank over a Dask array, lazily, chunking-independent;
  :func:`feature` gives one chosen feature as a Dataset (features are not stored by default).

>>> import numpy as np
>>> spec = FeatureSpec(filters={"gaussian": [1.0], "hessian": [1.6]})
>>> spec.channel_names()
['gaussian_s1', 'hessian_e0_s1.6', 'hessian_e1_s1.6', 'hessian_e2_s1.6']
>>> compute_features(np.zeros((20, 20, 20), np.uint16), spec).shape
(4, 20, 20, 20)
"""

from ooc.features.chunked import (
    Volume,
    as_volume,
    compute_features,
    feature,
    map_blocks_with_halo,
    regular_chunks,
    to_device,
)
from ooc.features.spec import DEFAULT_FILTERS, FILTERS, ILASTIK_SIGMAS, FeatureSpec
from ooc.features.stack import feature_stack, features_at, iter_features
from ooc.features.stats import intensity_range
from ooc.xp import cupy_available, get_array_module

__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "ILASTIK_SIGMAS",
    "FeatureSpec",
    "Volume",
    "as_volume",
    "compute_features",
    "cupy_available",
    "feature",
    "feature_stack",
    "features_at",
    "get_array_module",
    "intensity_range",
    "iter_features",
    "map_blocks_with_halo",
    "regular_chunks",
    "to_device",
]
