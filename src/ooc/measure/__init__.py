"""Measurements on segmented volumes, exact across chunk boundaries.

Every function takes the label volume ``ooc.open_volume`` returns (an ``xarray.DataArray``,
geometry from its attrs), or a NumPy/Dask array of integer labels (any chunking) with the voxel
size ``(z, y, x)`` and its ``unit`` as keywords; it runs on any Dask scheduler and returns
``xarray`` Datasets (scalars, per-block maps, distributions) or, for objects, a
``pandas.DataFrame``::

    labels = ooc.open_volume("seg.zarr")
    ooc.measure.phase_fractions(labels, phases={"pore": 1, "grain": 2})

========================================  ==================================================
:func:`phase_fractions`                   volume fractions, porosity, per-block maps
:func:`phase_connectivity`                components, percolating / dead-end / isolated
:func:`label_components`                  connected components (6/18/26) across chunks
:func:`surface_area`                      specific surface area per phase and phase pair
:func:`distance_transform`                exact Euclidean distance map across chunks
:func:`local_thickness`                   largest inscribed ball covering each voxel
:func:`thickness_distribution`            pore/particle size distribution by volume
:func:`separate_objects`                  distance transform + watershed, across chunks
:func:`object_table`                      per-object volume, surface, shape, position
:func:`object_statistics`                 count, mean, std, D10/D50/D90 (number, volume)
:func:`two_point_correlation`             S2 along axes and radially, physical lags
:func:`chord_length_distribution`         chord lengths per phase and axis
:mod:`ooc.measure.plots`                  PNG pictures of distributions and objects
========================================  ==================================================
"""

from ooc.measure.connectivity import ComponentInfo, label_components, phase_connectivity
from ooc.measure.correlation import chord_length_distribution, two_point_correlation
from ooc.measure.fractions import phase_fractions
from ooc.measure.objects import object_statistics, object_table, separate_objects
from ooc.measure.plots import plot_distribution, plot_histogram, plot_orthoslices
from ooc.measure.surface import surface_area
from ooc.measure.thickness import distance_transform, local_thickness, thickness_distribution

__all__ = [
    "ComponentInfo",
    "chord_length_distribution",
    "distance_transform",
    "label_components",
    "local_thickness",
    "object_statistics",
    "object_table",
    "phase_connectivity",
    "phase_fractions",
    "plot_distribution",
    "plot_histogram",
    "plot_orthoslices",
    "separate_objects",
    "surface_area",
    "thickness_distribution",
    "two_point_correlation",
]
