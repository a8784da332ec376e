"""Sample description: the material (continuous, in nanometres) and the three scans of it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

SCALES = ("MicroCT", "FIB-SEM", "TEM")
"""Scale (modality) names, coarse to fine."""

UNITS = {"micrometer": 1000.0, "nanometer": 1.0}
"""OME-NGFF unit names and their length in nanometres."""

FINE_PHASES = ("macro-pore", "solid grain", "micro-pore", "nano-pore", "matrix solid")
"""Phases of the material itself, resolved at every level (labels of ``phases="fine"``)."""

PHASES = {
    "MicroCT": ("pore", "solid grain", "micro-porous"),
    "FIB-SEM": ("pore", "nano-porous solid", "solid grain"),
    "TEM": ("pore", "solid"),
}
"""Label names per scale: label ``i`` is ``PHASES[scale][i]``."""

SEGMENT_FILTERS = {
    "gaussian": [0.0, 0.7, 1.0, 1.6, 3.5],
    "gradient": [0.7, 1.0, 1.6],
    "laplacian": [0.7, 1.0, 1.6],
    "dog": [1.0, 1.6, 3.5],
    "hessian": [0.7, 1.0, 1.6],
    "structure": [0.7, 1.0],
}
"""The filter bank that segments the synthetic MicroCT scan: ilastik's filters at its scales up
to 3.5 voxels (grains are 16-32 voxels across, so scales 5 and 10 add cost and nothing else)."""

SUBRESOLUTION = {"MicroCT": (2, 0, 1), "FIB-SEM": (1, 0, 2)}
"""Per scale: (sub-resolution phase, label whose intensity is pore, label whose intensity is solid).

The MicroCT micro-porous phase holds micro- and nano-pores below its voxel; the FIB-SEM nano-porous
solid holds nano-pores.  See :attr:`Imaging.partial_volume`."""

PORE_FINE = (0, 2, 3)
"""Fine labels that are pore space (macro-, micro- and nano-pore)."""

# Fine phase -> label of each scale (index = fine label).
PHASE_MAPS = {
    "MicroCT": (0, 1, 2, 2, 2),
    "FIB-SEM": (0, 2, 0, 1, 1),
    "TEM": (0, 1, 0, 0, 1),
    "fine": (0, 1, 2, 3, 4),
}


@dataclass(frozen=True)
class SphereProcess:
    """Boolean model: overlapping spheres, centres Poisson in space, radii uniform.

    Parameters
    ----------
    fraction
        Volume fraction of the union of spheres, in [0, 1).
    r_min, r_max
        Radius range, nm.
    """

    fraction: float
    r_min: float
    r_max: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"SphereProcess.fraction must be in [0, 1), got {self.fraction}")
        if not 0.0 < self.r_min <= self.r_max:
            raise ValueError(
                f"SphereProcess needs 0 < r_min <= r_max, got {self.r_min}, {self.r_max}"
            )

    @property
    def cell(self) -> float:
        """Edge of the cubic cells that hold the centres, nm (2 r_max: a point meets 2^3 cells)."""
        return 2.0 * self.r_max

    @property
    def mean_per_cell(self) -> float:
        """Poisson mean number of spheres per cell giving ``fraction``."""
        a, b = self.r_min, self.r_max
        r3 = a**3 if a == b else (b**4 - a**4) / (4.0 * (b - a))
        return -math.log1p(-self.fraction) * self.cell**3 / (4.0 / 3.0 * math.pi * r3)


@dataclass(frozen=True)
class Material:
    """Three-level material, lengths in nm.

    Level 1: ``grains`` (dense solid) and, outside them, ``microporous`` regions; the rest is
    macro-pore. Level 2, inside micro-porous regions: ``micropores``; the rest is nano-porous
    solid. Level 3, inside that solid: ``nanopores``; the rest is matrix solid.
    """

    grains: SphereProcess = SphereProcess(0.45, 16_000.0, 32_000.0)
    microporous: SphereProcess = SphereProcess(0.5, 12_000.0, 24_000.0)
    micropores: SphereProcess = SphereProcess(0.4, 60.0, 150.0)
    nanopores: SphereProcess = SphereProcess(0.25, 6.0, 16.0)

    @property
    def microporosity(self) -> float:
        """Expected pore fraction inside micro-porous regions (micro- plus nano-pores)."""
        return self.micropores.fraction + (1 - self.micropores.fraction) * self.nanopores.fraction


@dataclass(frozen=True)
class Imaging:
    """Imaging model of one scan. Grey values are uint16 counts, lengths in voxels.

    Parameters
    ----------
    intensities
        Mean grey value per label of the scale.
    noise_sigma
        Standard deviation of the additive noise.
    psf_sigma
        Gaussian point-spread function (z, y, x), voxels.
    drift
        Relative amplitude of the slow gain drift (applied separately along z and over y/x).
    drift_length
        Lattice spacing of the smooth drift, voxels.
    ring_count, ring_amplitude, ring_width
        Ring artifacts about the centre of the y/x plane: how many, peak offset (counts, signed
        at random), half-width (voxels).
    curtain_amplitude, curtain_length, curtain_width
        Curtaining: peak offset per x column (constant along y), its z correlation length
        (slices) and x width (columns).
    partial_volume
        0 (default): every voxel of a phase has its phase's intensity.  ``n > 0``: a voxel of the
        scale's sub-resolution phase (:data:`SUBRESOLUTION`) has the intensity
        ``phi I_pore + (1 - phi) I_solid``, with ``phi`` its sub-resolution porosity - the pore
        fraction of the finer material on ``n^3`` points inside it (the voxel centres of the
        grid ``n`` times finer; see :func:`~ooc.synth.scan.subresolution_porosity`).  Costs
        ``n^3`` label look-ups per voxel.
    """

    intensities: tuple[float, ...]
    noise_sigma: float
    psf_sigma: tuple[float, float, float] = (1.0, 1.0, 1.0)
    drift: float = 0.0
    drift_length: float = 128.0
    ring_count: int = 0
    ring_amplitude: float = 0.0
    ring_width: float = 1.5
    curtain_amplitude: float = 0.0
    curtain_length: float = 24.0
    curtain_width: float = 3.0
    partial_volume: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "intensities", tuple(float(v) for v in self.intensities))
        object.__setattr__(self, "psf_sigma", tuple(float(v) for v in self.psf_sigma))
        if len(self.psf_sigma) != 3 or min(self.psf_sigma) < 0:
            raise ValueError(f"Imaging.psf_sigma must be 3 values >= 0, got {self.psf_sigma}")
        if self.noise_sigma < 0:
            raise ValueError(f"Imaging.noise_sigma must be >= 0, got {self.noise_sigma}")
        if int(self.partial_volume) != self.partial_volume or self.partial_volume < 0:
            raise ValueError(
                f"Imaging.partial_volume must be an int >= 0, got {self.partial_volume}"
            )
        object.__setattr__(self, "partial_volume", int(self.partial_volume))
        for name in ("drift_length", "ring_width", "curtain_length", "curtain_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Imaging.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class ScaleSpec:
    """One scan of the sample.

    Parameters
    ----------
    modality
        One of :data:`SCALES`; fixes the label set (:data:`PHASES`).
    shape
        Grid shape (z, y, x), voxels.
    voxel_size
        Voxel size (z, y, x) in ``unit``.
    unit
        ``"micrometer"`` or ``"nanometer"``.
    imaging
        The imaging model.
    """

    modality: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    unit: str
    imaging: Imaging

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))
        if self.modality not in SCALES:
            raise ValueError(f"modality must be one of {SCALES}, got {self.modality!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {tuple(UNITS)}, got {self.unit!r}")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"{self.modality}: shape must be 3 positive ints, got {self.shape}")
        if len(self.voxel_size) != 3 or min(self.voxel_size) <= 0:
            raise ValueError(
                f"{self.modality}: voxel_size must be 3 positive, got {self.voxel_size}"
            )
        if len(self.imaging.intensities) != len(self.phases):
            raise ValueError(
                f"{self.modality}: imaging.intensities needs one value per phase {self.phases}, "
                f"got {self.imaging.intensities}"
            )

    @property
    def phases(self) -> tuple[str, ...]:
        """Label names: label ``i`` is ``phases[i]``."""
        return PHASES[self.modality]

    @property
    def voxel_nm(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x), nm."""
        f = UNITS[self.unit]
        z, y, x = self.voxel_size
        return (z * f, y * f, x * f)


@dataclass(frozen=True)
class SampleSpec:
    """A sample: seed, material and its three scans (MicroCT, FIB-SEM, TEM, in that order)."""

    seed: int
    material: Material
    scales: tuple[ScaleSpec, ScaleSpec, ScaleSpec]

    def __post_init__(self) -> None:
        names = tuple(s.modality for s in self.scales)
        if names != SCALES:
            raise ValueError(f"scales must be {SCALES} in that order, got {names}")

    def scale(self, name: str) -> ScaleSpec:
        """The scan named ``name`` (one of :data:`SCALES`)."""
        if name not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {name!r}")
        return self.scales[SCALES.index(name)]

    def with_scale(self, name: str, **changes: Any) -> SampleSpec:
        """A copy with fields of scale ``name`` replaced, e.g. ``shape=(1024, 1024, 1024)``."""
        i = SCALES.index(self.scale(name).modality)
        scales = list(self.scales)
        scales[i] = dataclasses.replace(scales[i], **changes)
        return dataclasses.replace(self, scales=tuple(scales))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, scales keyed by name (inverse of :meth:`from_dict`)."""
        return {
            "seed": self.seed,
            "material": dataclasses.asdict(self.material),
            "scales": {
                s.modality: {
                    "modality": s.modality,
                    "shape": list(s.shape),
                    "voxel_size": list(s.voxel_size),
                    "unit": s.unit,
                    "imaging": dataclasses.asdict(s.imaging),
                }
                for s in self.scales
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleSpec:
        """Rebuild from :meth:`to_dict` output, or a ``sample.json`` (extra keys are ignored)."""
        kept = dict(d["material"])
        field = kept.pop("micropore_field", None)
        material = Material(**{k: SphereProcess(**v) for k, v in kept.items()})
        if field is not None:  # a VariedMaterial (ooc.synth.material), which builds on this one
            from ooc.synth.material import FractionField, VariedMaterial

            material = VariedMaterial(**vars(material), micropore_field=FractionField(**field))
        scales = []
        for name in SCALES:
            s = d["scales"][name]
            scales.append(
                ScaleSpec(
                    modality=s["modality"],
                    shape=s["shape"],
                    voxel_size=s["voxel_size"],
                    unit=s["unit"],
                    imaging=Imaging(**s["imaging"]),
                )
            )
        return cls(seed=int(d["seed"]), material=material, scales=tuple(scales))  # type: ignore[arg-type]


def default_sample(
    seed: int = 0,
    shape: tuple[int, int, int] | None = None,
    *,
    fibsem_shape: tuple[int, int, int] = (96, 96, 96),
    tem_shape: tuple[int, int, int] = (64, 64, 64),
) -> SampleSpec:
    """A small three-scale sample for tests and demos.

    MicroCT ``shape`` (default 128^3) at 2 µm (grains 16-32 voxels across), FIB-SEM ``fibsem_shape`` at
    30 x 20 x 20 nm (z, y, x; micro-pores 6-15 voxels across), TEM ``tem_shape`` at 2 nm
    (nano-pores 6-16 voxels across). The grey of each sub-resolution phase is the porosity-weighted
    mean of pore and solid; noise sigma is about 0.4 of the smallest gap between phase means.
    """
    shape = (128, 128, 128) if shape is None else shape
    mat = Material()
    p2 = mat.nanopores.fraction

    def mixed(pore: float, solid: float, porosity: float) -> float:
        return float(round(porosity * pore + (1 - porosity) * solid))

    microct = ScaleSpec(
        "MicroCT",
        shape,
        (2.0, 2.0, 2.0),
        "micrometer",
        Imaging(
            intensities=(14_000.0, 44_000.0, mixed(14_000.0, 44_000.0, mat.microporosity)),
            noise_sigma=5_500.0,
            psf_sigma=(1.0, 1.0, 1.0),
            drift=0.04,
            drift_length=96.0,
            ring_count=10,
            ring_amplitude=2_500.0,
            ring_width=1.5,
        ),
    )
    fibsem = ScaleSpec(
        "FIB-SEM",
        fibsem_shape,
        (30.0, 20.0, 20.0),
        "nanometer",
        Imaging(
            intensities=(25_000.0, mixed(25_000.0, 44_000.0, p2), 44_000.0),
            noise_sigma=6_000.0,
            psf_sigma=(0.7, 1.0, 1.0),
            drift=0.03,
            drift_length=64.0,
            curtain_amplitude=6_000.0,
            curtain_length=24.0,
            curtain_width=3.0,
        ),
    )
    tem = ScaleSpec(
        "TEM",
        tem_shape,
        (2.0, 2.0, 2.0),
        "nanometer",
        Imaging(
            intensities=(40_000.0, 20_000.0),
            noise_sigma=8_000.0,
            psf_sigma=(1.2, 1.2, 1.2),
            drift=0.03,
            drift_length=64.0,
        ),
    )
    return SampleSpec(seed=int(seed), material=mat, scales=(microct, fibsem, tem))
