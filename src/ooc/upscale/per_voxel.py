"""Per-voxel upscaling: a sub-resolution phase's property in every coarse voxel, from its grey.

What the best micro-porosity workflows do, in one call (:func:`per_voxel_property`):

1. porosity of every voxel of the phase from its grey value (:func:`~ooc.upscale.grey_porosity`),
   the noise's spread removed (:func:`~ooc.upscale.shrink_porosity`);
2. the coarse grid subdivided with its interfaces reconstructed
   (:func:`~ooc.upscale.refine_labels`; ``subdivide=1`` keeps the grid) and each voxel's
   porosity made that of its part of the phase (:func:`~ooc.upscale.part_porosity`);
3. the relation's value in every voxel, carried onto the grid (:func:`~ooc.upscale.refine_field`).

The relation ``D(phi)`` / ``k(phi)`` comes from the finer scan's block map: the best form of
:func:`~ooc.upscale.fit_relations` with its level set by the finer scan's whole solve,
:func:`~ooc.upscale.calibrate_relation` (the upscale stage stores it).

The result feeds the coarse solve: ``conductivity(r.labels, {..., phase: r.values})`` or
``permeability(r.labels, porous_phases={phase: r.values})`` with a voxel edge of the coarse
voxel's over ``subdivide``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ooc.upscale.grey import GreyLevels, grey_porosity, shrink_porosity
from ooc.upscale.interface import part_porosity, refine_field, refine_labels
from ooc.upscale.relations import Relation

__all__ = ["PerVoxelProperty", "per_voxel_property"]


@dataclasses.dataclass(frozen=True)
class PerVoxelProperty:
    """A sub-resolution phase's property per voxel of the coarse solve's grid.

    Attributes
    ----------
    labels : numpy.ndarray, shape (nz s, ny s, nx s)
        The coarse segmentation subdivided ``s`` times (``s = subdivide``; its dtype).
    values : numpy.ndarray of float32, same shape
        The property of ``phase`` (units of the relation's quantity: 1 for ``D_eff/D0``, m² for
        permeability), read where ``labels == phase``; elsewhere 0 on the coarse grid itself,
        the nearest phase voxel's value on a subdivided one (:func:`~ooc.upscale.refine_field`).
    porosity : numpy.ndarray of float32, shape (nz, ny, nx)
        Porosity of every coarse voxel's part of the phase (1 in resolved pore, as grey gives it
        elsewhere).
    relation : Relation
        The calibrated relation that gave ``values``.
    """

    labels: np.ndarray
    values: np.ndarray
    porosity: np.ndarray
    relation: Relation


def per_voxel_property(
    grey: Any,
    labels: Any,
    *,
    phase: int,
    levels: GreyLevels,
    relation: Relation,
    subdivide: int = 1,
    pore_label: int = 0,
) -> PerVoxelProperty:
    """The sub-resolution ``phase``'s property in every voxel of a coarse scan (see module).

    Parameters
    ----------
    grey, labels : arrays, shape (nz, ny, nx)
        The coarse scan's grey values and segmentation.
    phase : int
        The sub-resolution label.
    levels : GreyLevels
        Pore and solid grey (:func:`~ooc.upscale.grey_levels`); its ``porosity_noise`` sets how
        much of the porosity's spread is noise.
    relation : Relation
        ``D(phi)`` or ``k(phi)`` of the phase, calibrated
        (:func:`~ooc.upscale.calibrate_relation`, with the same ``subdivide``).
    subdivide : int
        Sub-voxels per coarse voxel edge of the grid (1: the coarse grid itself).
    pore_label : int
        The resolved pore label of ``labels``.

    Returns
    -------
    PerVoxelProperty
    """
    lab = np.asarray(labels)
    phi = grey_porosity(grey, lab, levels, phase=phase, pore_label=pore_label)
    phi = shrink_porosity(phi, lab, phase=phase, noise=levels.porosity_noise)
    grid = refine_labels(lab, subdivide)
    phi = part_porosity(phi, lab, grid, phase=phase, pore_label=pore_label)
    inside = lab == phase
    values = np.zeros(lab.shape, dtype=np.float32)
    values[inside] = relation(phi[inside])  # only there: a relation may diverge at phi = 1
    if subdivide > 1:
        values = refine_field(values, lab, phase, subdivide)
    return PerVoxelProperty(grid, values, phi, relation)
