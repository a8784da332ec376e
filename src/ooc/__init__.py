"""ooc: out-of-core pipeline for 3D microscopy tomograms."""

__version__ = "0.1.0"
