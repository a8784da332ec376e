"""Per-voxel porosity of a sub-resolution phase from its grey value.

A voxel of a micro-porous phase holds pores below the scan's resolution; its grey value lies
between the grey of resolved pore and of solid, in proportion to its pore fraction (the partial
volume).  The pore and solid grey levels are estimated from the segmentation (robust centres of
the grey inside each label, away from its boundary where blur mixes phases), and

    phi = (g_solid - g) / (g_solid - g_pore)

clipped to [0, 1].  Noise passes straight into ``phi``; ``sigma`` smooths the grey inside the
phase first (a normalised Gaussian: voxels of other phases do not leak in), trading resolution
for noise.  :func:`shrink_porosity` removes the noise's spread instead (each voxel's best linear
estimate given the known noise level): a property relation applied to noisy porosities turns the
noise into heterogeneity that is not in the material (in a coarse solve it lowers ``D_eff``; through
a convex ``k(phi)`` it raises the mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GreyLevels", "grey_levels", "grey_porosity", "shrink_porosity"]

#: median absolute deviation -> standard deviation of a normal distribution
_MAD_SIGMA = 1.4826


@dataclass(frozen=True)
class GreyLevels:
    """Grey levels of resolved pore and solid, estimated from a segmentation.

    Attributes
    ----------
    pore, solid : float
        Median grey inside the (eroded) pore and solid labels.
    pore_sigma, solid_sigma : float
        Robust spread (1.4826 x median absolute deviation) - the noise level.
    pore_count, solid_count : int
        Voxels the estimates used.
    """

    pore: float
    solid: float
    pore_sigma: float
    solid_sigma: float
    pore_count: int
    solid_count: int

    @property
    def porosity_noise(self) -> float:
        """Standard deviation of a single voxel's grey porosity due to noise alone."""
        sig = 0.5 * (self.pore_sigma + self.solid_sigma)
        return sig / abs(self.solid - self.pore)


def _with_labels(
    values: Any, labels: Any, name: str, dtype: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` and ``labels`` as arrays, refused unless they have the same shape."""
    v = np.asarray(values, dtype=dtype)
    lab = np.asarray(labels)
    if v.shape != lab.shape:
        raise ValueError(f"{name} {v.shape} and labels {lab.shape} must have the same shape")
    return v, lab


def _labels_in(labels: np.ndarray, phase: int | Sequence[int]) -> np.ndarray:
    """Mask of the voxels whose label is ``phase`` (one label or several)."""
    return np.isin(labels, [phase] if isinstance(phase, int | np.integer) else list(phase))


def _robust(grey: np.ndarray, mask: np.ndarray) -> tuple[float, float, int]:
    v = grey[mask].astype(np.float64)
    med = float(np.median(v))
    return med, _MAD_SIGMA * float(np.median(np.abs(v - med))), int(v.size)


def _inner(mask: np.ndarray, erode: int) -> np.ndarray:
    """``mask`` eroded by ``erode`` voxels (the mask itself when that would empty it)."""
    if erode <= 0:
        return mask
    from scipy import ndimage

    inner = ndimage.binary_erosion(mask, iterations=erode, border_value=1)
    return inner if inner.any() else mask


def grey_levels(
    grey: Any,
    labels: Any,
    *,
    pore_label: int = 0,
    solid_label: int | Sequence[int] = 1,
    erode: int = 2,
) -> GreyLevels:
    """Pore and solid grey levels from a grey image and its segmentation.

    Parameters
    ----------
    grey : array, shape (nz, ny, nx)
        Grey values (any numeric dtype).
    labels : array of int, same shape
        Segmentation.
    pore_label : int
        Label of resolved pore.
    solid_label : int or sequence of int
        Label(s) of resolved, dense solid.
    erode : int
        Voxels trimmed off each label before its grey is measured (blur mixes phases near
        boundaries); a label too thin to survive is used whole.

    Returns
    -------
    GreyLevels
    """
    g, lab = _with_labels(grey, labels, "grey")
    pore = lab == pore_label
    solid = _labels_in(lab, solid_label)
    if not pore.any():
        raise ValueError(f"no voxel has the pore label {pore_label}; grey levels need both phases")
    if not solid.any():
        raise ValueError(f"no voxel has a solid label {solid_label}; grey levels need both phases")
    p, ps, pn = _robust(g, _inner(pore, erode))
    s, ss, sn = _robust(g, _inner(solid, erode))
    if p == s:
        raise ValueError(f"pore and solid have the same median grey ({p}); cannot map porosity")
    return GreyLevels(p, s, ps, ss, pn, sn)


def grey_porosity(
    grey: Any,
    labels: Any,
    levels: GreyLevels,
    *,
    phase: int | Sequence[int],
    pore_label: int = 0,
    sigma: float = 0.0,
) -> np.ndarray:
    """Porosity of every voxel: 1 in pore, from grey in the sub-resolution phase(s), 0 elsewhere.

    Parameters
    ----------
    grey : array, shape (nz, ny, nx)
        Grey values.
    labels : array of int, same shape
        Segmentation.
    levels : GreyLevels
        Pore and solid grey (:func:`grey_levels`).
    phase : int or sequence of int
        Sub-resolution label(s) whose porosity comes from grey.
    pore_label : int
        Label of resolved pore (porosity 1).
    sigma : float
        Gaussian smoothing of the grey inside the phase, in voxels (0: none).  Needs a halo of
        ``ceil(4 sigma)`` voxels when applied block by block.

    Returns
    -------
    numpy.ndarray of float32, shape (nz, ny, nx)
        Porosity in [0, 1]; its mean over the phase is the phase's sub-resolution porosity.
    """
    g, lab = _with_labels(grey, labels, "grey", np.float32)
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be >= 0 voxels; got {sigma}")
    m = _labels_in(lab, phase)
    if sigma > 0:
        from scipy import ndimage

        w = ndimage.gaussian_filter(m.astype(np.float32), sigma, mode="nearest")
        gs = ndimage.gaussian_filter(np.where(m, g, 0).astype(np.float32), sigma, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(m, gs / w, g)
    span = np.float32(levels.solid - levels.pore)
    phi = (np.float32(levels.solid) - g) / span
    out = np.zeros(lab.shape, dtype=np.float32)
    out[m] = np.clip(phi[m], 0.0, 1.0)
    out[lab == pore_label] = 1.0
    return out


def shrink_porosity(
    porosity: Any, labels: Any, *, phase: int | Sequence[int], noise: float
) -> np.ndarray:
    """Each voxel's best linear estimate of its true porosity, given noisy grey porosity.

    Inside the phase, ``phi_hat = mu + lam (phi - mu)`` with ``mu`` the phase's mean porosity
    and ``lam = max(var - noise**2, 0) / var`` (``var`` the variance of ``phi`` over the phase):
    the regression of true on observed porosity when the noise is independent of it (the least
    squares estimate of each voxel's porosity).  The mean is kept; the spread left is ``lam``
    times the true spread (what the grey can tell apart from noise).  Voxels of other phases are
    unchanged.

    Parameters
    ----------
    porosity : array, shape (nz, ny, nx)
        Grey porosity (:func:`grey_porosity`, ``sigma=0``).
    labels : array of int, same shape
        Segmentation.
    phase : int or sequence of int
        Sub-resolution label(s).
    noise : float
        Standard deviation of one voxel's porosity due to noise
        (:attr:`GreyLevels.porosity_noise`).

    Returns
    -------
    numpy.ndarray of float32
    """
    phi, lab = _with_labels(porosity, labels, "porosity", np.float32)
    if noise < 0 or not math.isfinite(noise):
        raise ValueError(f"noise must be a finite standard deviation >= 0; got {noise}")
    m = _labels_in(lab, phase)
    out = phi.copy()
    if not m.any():
        return out
    v = phi[m].astype(np.float64)
    mu, var = float(v.mean()), float(v.var())
    lam = max(var - noise**2, 0.0) / var if var > 0 else 1.0
    out[m] = (mu + lam * (v - mu)).astype(np.float32)
    return out
