"""ooc: out-of-core pipeline for 3D microscopy tomograms.

The public entry points: :func:`open_volume` (a store as a lazy ``xarray.DataArray``),
:func:`open_results` (results as an ``xarray.DataTree``), and the subpackages ``ooc.stages``,
``ooc.io``, ``ooc.measure``, ``ooc.segment``, ``ooc.simulate``, ``ooc.upscale``, ``ooc.catalog``.
They are imported on first use, so ``import ooc`` (and the command line's help) stays fast.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "open_results", "open_volume"]


def __getattr__(name: str) -> Any:
    if name == "open_volume":
        from ooc.io.volume import open_volume

        return open_volume
    if name == "open_results":
        from ooc.results import open_results

        return open_results
    raise AttributeError(f"module 'ooc' has no attribute {name!r}")
