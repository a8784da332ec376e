"""Two-scale synthetic cases whose fine scale can be solved directly (for tests and benchmarks).

One procedural material (:mod:`ooc.synth`) is seen at two voxel sizes ``ratio`` apart.  At the
coarse voxel, grains are resolved and the matrix between them is a sub-resolution porous phase
(label 2; label 0 is resolved pore, 1 solid grain - the MicroCT label set).  At the fine voxel the
matrix's pores are resolved too.  Because the material is a function of position, the coarse
region's finer material can be rendered at the fine voxel everywhere (the truth for a direct
solve), and a separate block of pure matrix rendered far away stands for the finer scan (a
FIB-SEM of the sub-resolution phase).

Lengths: the fine voxel is 1 nm in :mod:`ooc.synth`'s units and ``fine_voxel_m`` in the solvers'
metres (only ratios matter to the transport properties; permeabilities scale with its square).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ooc.synth import (
    Imaging,
    Material,
    SampleSpec,
    ScaleSpec,
    SphereProcess,
    render_labels,
    render_scan,
)
from ooc.synth.material import FractionField, VariedMaterial
from ooc.synth.spec import PORE_FINE
from ooc.upscale.grey import GreyLevels

__all__ = ["TwoScaleCase", "finer_scan", "per_voxel_diffusivity", "two_scale_case"]

#: a level-1 process that covers every point of any region of interest: the matrix everywhere
_EVERYWHERE = SphereProcess(0.999, 1e7, 1e7)
#: where the finer scan is taken, in fine voxels along each axis (far from the coarse region)
FINER_SCAN_OFFSET = 100_000


@dataclass(frozen=True)
class TwoScaleCase:
    """A coarse region and its finer material.

    Attributes
    ----------
    spec : SampleSpec
        The sample; its ``"MicroCT"`` scan is the coarse grid.
    ratio : int
        Coarse voxel edge / fine voxel edge.
    coarse_labels : numpy.ndarray of uint8, shape (n, n, n)
        0 pore, 1 solid grain, 2 sub-resolution porous matrix (at the coarse voxel centres).
    fine_pore : numpy.ndarray of bool, shape (n ratio,) * 3
        The same region at the fine voxel: True where pore (any level).
    true_porosity : numpy.ndarray of float32, shape (n, n, n)
        Pore fraction of the fine voxels inside each coarse voxel (the block mean of
        ``fine_pore``).
    grey : numpy.ndarray of uint16 or None
        The coarse scan's grey image (partial volume of the matrix; noise as asked).
    fine_voxel_m : float
        Fine voxel edge in metres.
    """

    spec: SampleSpec
    ratio: int
    coarse_labels: np.ndarray
    fine_pore: np.ndarray
    true_porosity: np.ndarray
    grey: np.ndarray | None
    fine_voxel_m: float

    @property
    def coarse_voxel_m(self) -> float:
        """Coarse voxel edge in metres."""
        return self.fine_voxel_m * self.ratio


def _material(
    grain_fraction: float,
    grain_radius: tuple[float, float],
    macro_fraction: float,
    micropore_fraction: float,
    micropore_radius: tuple[float, float],
    micropore_field: FractionField | None,
) -> Material:
    grains = SphereProcess(grain_fraction, *grain_radius)
    matrix = (
        SphereProcess(1.0 - macro_fraction, *grain_radius) if macro_fraction > 0 else _EVERYWHERE
    )
    mat = Material(
        grains=grains,
        microporous=matrix,
        micropores=SphereProcess(micropore_fraction, *micropore_radius),
        nanopores=SphereProcess(0.0, 1.0, 1.0),
    )
    if micropore_field is None:
        return mat
    return VariedMaterial(**vars(mat), micropore_field=micropore_field)


def two_scale_case(
    seed: int,
    shape: int = 8,
    *,
    ratio: int = 8,
    grain_fraction: float = 0.15,
    grain_radius: tuple[float, float] = (4.0, 8.0),
    macro_fraction: float = 0.0,
    micropore_fraction: float = 0.6,
    micropore_radius: tuple[float, float] = (1.5, 3.0),
    micropore_field: FractionField | None = None,
    grey: bool = False,
    noise: float = 0.0,
    fine_voxel_m: float = 1e-7,
) -> TwoScaleCase:
    """Render a two-scale case.

    Parameters
    ----------
    seed : int
        Material seed.
    shape : int
        Coarse region edge in coarse voxels (the fine region is ``shape * ratio``).
    ratio : int
        Scale ratio.
    grain_fraction, grain_radius
        Solid grains: volume fraction and radius range in coarse voxels (resolved there).
    macro_fraction
        Resolved pore between grains (0: the matrix fills all space between grains).
    micropore_fraction, micropore_radius
        Pores of the matrix: volume fraction and radius range in fine voxels (below the coarse
        voxel, resolved at the fine one).
    micropore_field : FractionField, optional
        The matrix's micro-pore fraction varies smoothly in space between the field's bounds
        (``length`` in fine voxels); it replaces ``micropore_fraction``.  None (default): one
        fraction everywhere, a statistically homogeneous matrix.
    grey : bool
        Also render the coarse grey image (matrix grey from its partial volume, ``ratio``
        samples per axis; no blur, drift or artifacts).
    noise : float
        Noise standard deviation of that grey, as a fraction of the pore-solid contrast.
    fine_voxel_m : float
        Fine voxel edge in metres.
    """
    r_grain = (grain_radius[0] * ratio, grain_radius[1] * ratio)
    mat = _material(
        grain_fraction,
        r_grain,
        macro_fraction,
        micropore_fraction,
        micropore_radius,
        micropore_field,
    )
    contrast = 30_000.0
    imaging = Imaging(
        intensities=(14_000.0, 44_000.0, 29_000.0),
        noise_sigma=noise * contrast,
        psf_sigma=(0.0, 0.0, 0.0),
        partial_volume=ratio,
    )
    coarse = ScaleSpec("MicroCT", (shape,) * 3, (float(ratio),) * 3, "nanometer", imaging)
    # the FIB-SEM and TEM scans are not used; small placeholders keep the spec valid
    fib = ScaleSpec("FIB-SEM", (2, 2, 2), (1.0, 1.0, 1.0), "nanometer", Imaging((0, 1, 2), 0.0))
    tem = ScaleSpec("TEM", (2, 2, 2), (1.0, 1.0, 1.0), "nanometer", Imaging((0, 1), 0.0))
    spec = SampleSpec(seed=int(seed), material=mat, scales=(coarse, fib, tem))
    fine = render_labels(spec, "MicroCT", voxel_size=(1.0, 1.0, 1.0), phases="fine")
    fine_pore = np.isin(fine, PORE_FINE)
    del fine
    if grey:
        labels, g = render_scan(spec, "MicroCT")
    else:
        labels, g = render_labels(spec, "MicroCT"), None
    n = shape
    true_phi = (
        fine_pore.reshape(n, ratio, n, ratio, n, ratio).mean(axis=(1, 3, 5)).astype(np.float32)
    )
    return TwoScaleCase(spec, ratio, labels, fine_pore, true_phi, g, float(fine_voxel_m))


def finer_scan(case: TwoScaleCase, shape: int = 64) -> np.ndarray:
    """The sub-resolution phase alone at the fine voxel: a bool pore mask of ``shape``³.

    Taken ``FINER_SCAN_OFFSET`` fine voxels away from the coarse region (an independent sample
    of the same matrix, as a FIB-SEM scan elsewhere in the phase would be).
    """
    mat = dataclasses.replace(
        case.spec.material, grains=SphereProcess(0.0, 1.0, 1.0), microporous=_EVERYWHERE
    )
    spec = dataclasses.replace(case.spec, material=mat)
    o = FINER_SCAN_OFFSET
    region = (slice(o, o + shape),) * 3
    lab = render_labels(spec, "MicroCT", region, voxel_size=(1.0, 1.0, 1.0), phases="fine")
    return np.isin(lab, PORE_FINE)


def per_voxel_diffusivity(
    case: TwoScaleCase,
    scan: np.ndarray,
    whole: Mapping[str, float],
    levels: GreyLevels,
    *,
    subdivide: int = 1,
) -> dict[str, float]:
    """``D_eff/D0`` of the coarse region along z, y, x by the per-voxel route.

    ``D(phi)`` is fitted on the block map of ``scan`` (:func:`finer_scan`; blocks of one coarse
    voxel) and calibrated to ``whole`` (the scan's own ``D_eff/D0`` per axis); the matrix voxels'
    values come from ``case.grey`` (:func:`ooc.upscale.per_voxel_property` with ``levels``) and
    the region is solved once on its grid subdivided ``subdivide`` times.
    """
    import dask

    from ooc.simulate import conductivity, property_map
    from ooc.upscale import calibrate_relation, fit_relations, per_voxel_property

    if case.grey is None:
        raise ValueError("the case has no grey: make it with two_scale_case(..., grey=True)")
    with dask.config.set(scheduler="synchronous"):  # many tiny solves: threads only contend
        bm = property_map(
            (~scan).astype(np.uint8),
            block_shape=case.ratio,
            voxel_size=case.fine_voxel_m,
            properties=("diffusivity",),
        )
    relation = calibrate_relation(
        fit_relations(bm, "relative_diffusivity")[0], bm, whole, subdivide=subdivide
    )
    pv = per_voxel_property(
        case.grey,
        case.coarse_labels,
        phase=2,
        levels=levels,
        relation=relation,
        subdivide=subdivide,
    )
    values = {0: 1.0, 1: 0.0, 2: pv.values}
    return conductivity(pv.labels, values, direction=("z", "y", "x"), reference=1.0).relative
