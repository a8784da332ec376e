"""Multiscale upscaling: a finer scan's properties become a phase of the coarser scan.

- :func:`from_results`, :func:`from_block_map` - per-phase transfer: porosity, ``D_eff/D0``,
  conductivity and permeability per axis (:class:`PhaseProperties`), from whole solves or from the
  statistics of a block map; :func:`rev_curve` - the REV check (property vs block size).
- :func:`grey_levels`, :func:`grey_porosity` - per-voxel porosity of a sub-resolution phase from
  its grey value; :func:`shrink_porosity` - its noise spread removed.
- :func:`fit_relation`, :func:`fit_relations` - relations ``k(phi)``, ``D(phi)`` fitted on a finer
  scan's block map (:class:`Relation`: callable on porosity fields, with its form and error);
  :func:`calibrate_relation` - its level set by the finer scan's whole solve.
- :func:`refine_labels`, :func:`refine_field` - the coarse solve on a subdivided grid whose phase
  interfaces are reconstructed smoothly from the segmentation (no voxel staircase);
  :func:`part_porosity` - the grey porosity of a voxel's share of the phase on that grid.
- :func:`per_voxel_property` - the whole per-voxel route in one call: grey -> porosity ->
  calibrated relation -> the phase's property in every voxel of the coarse solve's grid.
- :func:`upscale_blocks`, :func:`coarse_grid` - a block property map becomes the coarse grid of one
  conduction / Darcy solve over the whole volume (with ``property_map(..., margin=m)`` for
  oversampling).

Functions take NumPy arrays (or block maps) with voxel sizes in metres, compute and return; none
opens or writes a store.  :mod:`ooc.upscale.testing` renders two-scale synthetic cases whose fine
scale can be solved directly.
"""

from ooc.upscale.blocks import coarse_grid, upscale_blocks
from ooc.upscale.grey import GreyLevels, grey_levels, grey_porosity, shrink_porosity
from ooc.upscale.interface import part_porosity, refine_field, refine_labels
from ooc.upscale.per_voxel import PerVoxelProperty, per_voxel_property
from ooc.upscale.relations import (
    FORMS,
    Relation,
    calibrate_relation,
    fit_relation,
    fit_relations,
)
from ooc.upscale.transfer import (
    QUANTITIES,
    PhaseProperties,
    from_block_map,
    from_results,
    rev_curve,
)

__all__ = [
    "FORMS",
    "QUANTITIES",
    "GreyLevels",
    "PerVoxelProperty",
    "PhaseProperties",
    "Relation",
    "calibrate_relation",
    "coarse_grid",
    "fit_relation",
    "fit_relations",
    "from_block_map",
    "from_results",
    "grey_levels",
    "grey_porosity",
    "part_porosity",
    "per_voxel_property",
    "refine_field",
    "refine_labels",
    "rev_curve",
    "shrink_porosity",
    "upscale_blocks",
]
