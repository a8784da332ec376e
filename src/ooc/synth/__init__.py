"""Synthetic three-scale samples (MicroCT, FIB-SEM, TEM) with known ground truth.

One procedural material, defined in continuous space, is seen by three scans at different voxel
sizes: MicroCT resolves grains and macro-pores and sees a grey micro-porous phase; FIB-SEM, placed
inside that phase, resolves its micro-pores and sees a nano-porous solid; TEM, placed inside that
solid, resolves its nano-pores. Labels and grey images are pure functions of (seed, global voxel
index), so any region renders the same bytes whichever way a scan is split into blocks, and any
size streams to disk.

>>> spec = default_sample(seed=0)
>>> labels = render_labels(spec, "MicroCT", (slice(0, 32), slice(0, 32), slice(0, 32)))
>>> grey = render_grey(spec, "MicroCT", (slice(0, 32), slice(0, 32), slice(0, 32)))
>>> truth = render_labels(spec, "MicroCT", voxel_size=(0.5, 0.5, 0.5), phases="fine",
...                       region=(slice(0, 8), slice(0, 8), slice(0, 8)))
"""

from ooc.synth.imaging import render_grey, render_scan
from ooc.synth.scan import field_of_view, grid_shape, render_labels, subresolution_porosity
from ooc.synth.spec import (
    FINE_PHASES,
    PHASES,
    SCALES,
    SEGMENT_FILTERS,
    SUBRESOLUTION,
    Imaging,
    Material,
    SampleSpec,
    ScaleSpec,
    SphereProcess,
    default_sample,
)
from ooc.synth.write import write_sample, write_tiff_stack

__all__ = [
    "FINE_PHASES",
    "PHASES",
    "SCALES",
    "SEGMENT_FILTERS",
    "SUBRESOLUTION",
    "Imaging",
    "Material",
    "SampleSpec",
    "ScaleSpec",
    "SphereProcess",
    "default_sample",
    "field_of_view",
    "grid_shape",
    "render_grey",
    "render_labels",
    "render_scan",
    "subresolution_porosity",
    "write_sample",
    "write_tiff_stack",
]
