"""ooc: out-of-core pipeline for 3D microscopy tomograms.

The public entry points: :func:`open_volume` (a store as a lazy ``xarray.DataArray``),
:func:`open_results`, and the subpackages ``ooc.io``, ``ooc.synth``, ``ooc.catalog``.
"""

__version__ = "0.1.0"

from ooc.io.volume import open_volume
from ooc.results import open_results

__all__ = ["__version__", "open_results", "open_volume"]
