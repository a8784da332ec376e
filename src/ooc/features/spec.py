"""Which filters at which scales: :class:`FeatureSpec`, its channel names and its halo."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ooc.features.kernels import gaussian_radius

__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "ILASTIK_SIGMAS",
    "FeatureSpec",
]

ILASTIK_SIGMAS: tuple[float, ...] = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
"""The scales ilastik offers (and ``FeatureSpec()`` uses), in voxels or physical units."""

FILTERS: dict[str, int | None] = {
    "gaussian": 1,
    "gradient": 1,
    "laplacian": 1,
    "dog": 1,
    "hessian": None,  # one channel per axis (eigenvalues)
    "structure": None,
    "sobel": 1,
    "variance": 1,
    "entropy": 1,
}
"""Filter names in channel order, with their channel count (None: one per axis).

``gaussian`` smoothing (scale 0: the raw intensity), ``gradient`` magnitude of Gaussian,
``laplacian`` of Gaussian, ``dog`` difference of Gaussians, ``hessian`` and ``structure``
(tensor) eigenvalues, ``sobel`` magnitude after smoothing at the scale (0: none), local
``variance`` and local ``entropy`` in a Gaussian window of the scale."""

DEFAULT_FILTERS = ("gaussian", "gradient", "laplacian", "dog", "hessian", "structure")
"""The six filters ilastik offers, all used at every scale of :data:`ILASTIK_SIGMAS` by default."""

_ZERO_OK = ("gaussian", "sobel")
_UNITS = ("voxel", "physical")


@dataclass(frozen=True)
class FeatureSpec:
    """A filter bank: filters, their scales, and how scales and edges are treated.

    Parameters
    ----------
    filters
        ``{filter name: scales}`` (names from :data:`FILTERS`); stored as sorted pairs in
        :data:`FILTERS` order, so two specs listing the same things are equal. Default: the
        six :data:`DEFAULT_FILTERS` at the seven :data:`ILASTIK_SIGMAS` (70 channels in 3D).
    sigma_unit
        ``"voxel"``: scales in voxels of the finest axis (a 1.0 scale on a 30 x 20 x 20 nm
        FIB-SEM grid is 20 nm, i.e. 0.67 voxel along z and 1 along y and x);
        ``"physical"``: scales in the volume's length unit (divided by the voxel size per axis).
    truncate
        Gaussian cut-off in standard deviations (``scipy.ndimage``'s ``truncate``).
    mode
        How the volume is extended past its edges (``scipy.ndimage`` mode).
    dog_ratio
        Difference of Gaussians ``G(dog_ratio * s) - G(s)``.
    structure_outer
        Outer (averaging) scale of the structure tensor, as a fraction of the inner scale.
    entropy_bins
        Grey-level bins of the local entropy.
    value_range
        Grey range ``(low, high)`` the entropy bins span; fixed for a whole volume (set from
        the training volume by :func:`ooc.segment.train_forest` when left None).
    """

    filters: Any = None
    sigma_unit: str = "voxel"
    truncate: float = 4.0
    mode: str = "reflect"
    dog_ratio: float = 0.66
    structure_outer: float = 0.5
    entropy_bins: int = 16
    value_range: tuple[float, float] | None = field(default=None)

    def __post_init__(self) -> None:
        raw = self.filters
        if raw is None:
            raw = dict.fromkeys(DEFAULT_FILTERS, ILASTIK_SIGMAS)
        items: Sequence[tuple[str, Any]] = list(raw.items()) if isinstance(raw, Mapping) else raw
        table: dict[str, set[float]] = {}
        for name, scales in items:
            if name not in FILTERS:
                raise ValueError(f"unknown filter {name!r}; expected one of {tuple(FILTERS)}")
            values = [scales] if isinstance(scales, int | float) else list(scales)
            for s in values:
                s = float(s)
                if not math.isfinite(s) or s < 0 or (s == 0 and name not in _ZERO_OK):
                    need = ">= 0" if name in _ZERO_OK else "> 0"
                    raise ValueError(f"filter {name!r}: scales must be {need}, got {s}")
                table.setdefault(name, set()).add(s)
        norm = tuple((name, tuple(sorted(table[name]))) for name in FILTERS if table.get(name))
        if not norm:
            raise ValueError("a FeatureSpec needs at least one filter with one scale")
        object.__setattr__(self, "filters", norm)
        if self.sigma_unit not in _UNITS:
            raise ValueError(f"sigma_unit must be one of {_UNITS}, got {self.sigma_unit!r}")
        if not self.truncate > 0:
            raise ValueError(f"truncate must be > 0, got {self.truncate}")
        if not self.dog_ratio > 0 or not self.structure_outer > 0:
            raise ValueError("dog_ratio and structure_outer must be > 0")
        if int(self.entropy_bins) < 2:
            raise ValueError(f"entropy_bins must be >= 2, got {self.entropy_bins}")
        object.__setattr__(self, "entropy_bins", int(self.entropy_bins))
        if self.value_range is not None:
            lo, hi = (float(v) for v in self.value_range)
            if not hi > lo:
                raise ValueError(f"value_range needs low < high, got {self.value_range}")
            object.__setattr__(self, "value_range", (lo, hi))

    # ----------------------------------------------------------------- construction
    @classmethod
    def ilastik(
        cls,
        sigmas: Sequence[float] = ILASTIK_SIGMAS,
        filters: Sequence[str] = DEFAULT_FILTERS,
        **options: Any,
    ) -> FeatureSpec:
        """Every one of ``filters`` at every one of ``sigmas`` (ilastik's feature matrix)."""
        return cls(filters={f: tuple(sigmas) for f in filters}, **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (inverse of :meth:`from_dict`)."""
        return {
            "filters": {name: list(scales) for name, scales in self.filters},
            "sigma_unit": self.sigma_unit,
            "truncate": self.truncate,
            "mode": self.mode,
            "dog_ratio": self.dog_ratio,
            "structure_outer": self.structure_outer,
            "entropy_bins": self.entropy_bins,
            "value_range": None if self.value_range is None else list(self.value_range),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild from :meth:`to_dict` output."""
        d = dict(d)
        vr = d.pop("value_range", None)
        return cls(**d, value_range=None if vr is None else tuple(vr))

    def with_value_range(self, value_range: tuple[float, float] | None) -> FeatureSpec:
        """A copy with ``value_range`` replaced."""
        return replace(self, value_range=value_range)

    # ----------------------------------------------------------------- geometry
    @property
    def needs_value_range(self) -> bool:
        """Whether a filter (entropy) needs a volume-wide grey range."""
        return any(name == "entropy" for name, _ in self.filters)

    def voxel_sigma(
        self, sigma: float, voxel_size: Sequence[float] | None, ndim: int
    ) -> tuple[float, ...]:
        """Per-axis scale in voxels of ``sigma`` (in :attr:`sigma_unit`) on a grid of
        ``voxel_size`` (one length per axis; None: isotropic unit voxels)."""
        vs = _voxel_size(voxel_size, ndim)
        if self.sigma_unit == "physical":
            return tuple(sigma / v for v in vs)
        finest = min(vs)
        return tuple(sigma * finest / v for v in vs)

    def spacing(self, voxel_size: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
        """Relative voxel lengths (finest axis 1) that derivatives are taken per."""
        vs = _voxel_size(voxel_size, ndim)
        return tuple(v / min(vs) for v in vs)

    def filter_halo(
        self, name: str, sigma: float, voxel_size: Sequence[float] | None, ndim: int
    ) -> tuple[int, ...]:
        """Voxels per axis that filter ``name`` at scale ``sigma`` reads past a voxel."""
        sig = self.voxel_sigma(sigma, voxel_size, ndim)
        t = self.truncate
        if name == "dog":
            return tuple(
                max(gaussian_radius(s, t), gaussian_radius(s * self.dog_ratio, t)) for s in sig
            )
        if name == "structure":
            return tuple(
                gaussian_radius(s, t) + gaussian_radius(s * self.structure_outer, t) for s in sig
            )
        if name == "sobel":
            return tuple(gaussian_radius(s, t) + 1 for s in sig)
        return tuple(gaussian_radius(s, t) for s in sig)

    def halo(self, voxel_size: Sequence[float] | None = None, ndim: int = 3) -> tuple[int, ...]:
        """Voxels per axis the whole stack reads past a voxel (the chunked layer's overlap)."""
        out = [0] * ndim
        for name, scales in self.filters:
            for s in scales:
                out = [
                    max(a, b)
                    for a, b in zip(out, self.filter_halo(name, s, voxel_size, ndim), strict=True)
                ]
        return tuple(out)

    # ----------------------------------------------------------------- channels
    def channel_names(self, ndim: int = 3) -> list[str]:
        """Names of the stack's channels in order, e.g. ``"hessian_e0_s1.6"``."""
        names = []
        for name, scales in self.filters:
            n = FILTERS[name] or ndim
            for s in scales:
                if n == 1:
                    names.append(f"{name}_s{s:g}")
                else:
                    names.extend(f"{name}_e{k}_s{s:g}" for k in range(n))
        return names

    def n_channels(self, ndim: int = 3) -> int:
        """Number of channels of the stack."""
        return len(self.channel_names(ndim))


def _voxel_size(voxel_size: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if voxel_size is None:
        return (1.0,) * ndim
    vs = tuple(float(v) for v in voxel_size)
    if len(vs) != ndim or min(vs) <= 0:
        raise ValueError(f"voxel_size needs {ndim} positive lengths, got {voxel_size!r}")
    return vs
