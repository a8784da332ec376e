"""Imaging model: labels -> uint16 grey (PSF blur, gain drift, rings or curtains, noise).

Every term is a function of the global voxel index of the scan's grid, and the blur is computed on
the tile plus a halo clamped to the volume's edge (``mode="nearest"`` on the whole volume), so
rendering a scan in any blocks gives the same bytes as rendering it whole.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ooc.synth._hash import counter, counter_, hash_coords, normal8_, stream_key, uniform
from ooc.synth.scan import (
    Region,
    normalize_region,
    render_labels,
    subresolution_porosity,
    tiles,
)
from ooc.synth.spec import SCALES, SUBRESOLUTION, Imaging, SampleSpec

TRUNCATE = 4.0
"""PSF truncation, in standard deviations (the halo is ``ceil(TRUNCATE * sigma)``)."""

_MAX_INDEX = 1 << 21  # the noise key packs z, y, x in 21 bits each
_NOISE, _DRIFT_Z, _DRIFT_YX, _RINGS, _CURTAINS = range(5)


def _smooth(t: np.ndarray) -> np.ndarray:
    f = t - np.floor(t)
    return f * f * (3.0 - 2.0 * f)


def _lattice(key: int, *k: np.ndarray) -> np.ndarray:
    """Uniform values in [-1, 1) on an integer lattice."""
    return 2.0 * uniform(hash_coords(key, *k)) - 1.0


def value_noise_1d(key: int, t: np.ndarray) -> np.ndarray:
    """Smooth random function of ``t`` (lattice units) in [-1, 1], float64."""
    k = np.floor(t).astype(np.int64)
    a, b = _lattice(key, k), _lattice(key, k + 1)
    return a + (b - a) * _smooth(t)


def value_noise_2d(key: int, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Smooth random function on the grid ``s[:, None]`` x ``t[None, :]`` (lattice units)."""
    i = np.floor(s).astype(np.int64)[:, None]
    j = np.floor(t).astype(np.int64)[None, :]
    u, v = _smooth(s)[:, None], _smooth(t)[None, :]
    a = _lattice(key, i, j) + (_lattice(key, i, j + 1) - _lattice(key, i, j)) * v
    b = _lattice(key, i + 1, j) + (_lattice(key, i + 1, j + 1) - _lattice(key, i + 1, j)) * v
    return a + (b - a) * u


def _centres(a: int, b: int, length: float) -> np.ndarray:
    return (np.arange(a, b, dtype=np.float64) + 0.5) / length


def _gain(
    im: Imaging, key: int, start: tuple[int, ...], stop: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicative drift: a z profile (n_z, 1, 1) and a y/x field (1, n_y, n_x), float32."""
    (z0, y0, x0), (z1, y1, x1) = start, stop
    L = im.drift_length
    gz = 1.0 + im.drift * value_noise_1d(stream_key(key, _DRIFT_Z), _centres(z0, z1, L))
    yx = value_noise_2d(stream_key(key, _DRIFT_YX), _centres(y0, y1, L), _centres(x0, x1, L))
    gyx = 1.0 + im.drift * yx
    return gz.astype(np.float32)[:, None, None], gyx.astype(np.float32)[None]


def _rings(
    im: Imaging, key: int, shape: tuple[int, ...], start: tuple[int, ...], stop: tuple[int, ...]
) -> np.ndarray:
    """Ring offsets (1, n_y, n_x) about the centre of the full y/x plane, float32."""
    k = stream_key(key, _RINGS)
    n = np.arange(im.ring_count)
    radius = uniform(counter(k, 2 * n)) * 0.95 * min(shape[1], shape[2]) / 2
    u = uniform(counter(k, 2 * n + 1))
    amplitude = im.ring_amplitude * np.where(u < 0.5, -1.0, 1.0) * (0.5 + np.abs(2 * u - 1) / 2)
    y = (np.arange(start[1], stop[1]) + 0.5 - shape[1] / 2)[:, None]
    x = (np.arange(start[2], stop[2]) + 0.5 - shape[2] / 2)[None, :]
    rho = np.sqrt(y * y + x * x)
    out = np.zeros(rho.shape)
    for r, a in zip(radius, amplitude, strict=True):
        q = np.maximum(0.0, 1.0 - ((rho - r) / im.ring_width) ** 2)
        out += a * q * q
    return out.astype(np.float32)[None]


def _curtains(im: Imaging, key: int, start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
    """Curtain offsets (n_z, 1, n_x): one per x column, constant along y, slow in z, float32."""
    v = value_noise_2d(
        stream_key(key, _CURTAINS),
        _centres(start[0], stop[0], im.curtain_length),
        _centres(start[2], stop[2], im.curtain_width),
    )
    return (im.curtain_amplitude * v * np.abs(v)).astype(np.float32)[:, None, :]


def _noise(key: int, start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
    """Standard normal-like float32 noise keyed by the global (z, y, x) voxel index."""
    z, y, x = (np.arange(a, b, dtype=np.uint64) for a, b in zip(start, stop, strict=True))
    idx = (z << 42)[:, None, None] | (y << 21)[None, :, None] | x[None, None, :]
    return normal8_(counter_(stream_key(key, _NOISE), idx))


def _slices(a: np.ndarray, b: np.ndarray) -> tuple[slice, slice, slice]:
    return (slice(int(a[0]), int(b[0])), slice(int(a[1]), int(b[1])), slice(int(a[2]), int(b[2])))


def _scan_tile(
    spec: SampleSpec, scale: str, start: tuple[int, ...], stop: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and grey of one tile [start, stop) of a scan's grid."""
    sc = spec.scale(scale)
    im = sc.imaging
    key = stream_key(spec.seed, 3, SCALES.index(scale))
    a, b = np.array(start), np.array(stop)
    halo = np.array([math.ceil(TRUNCATE * s) for s in im.psf_sigma])
    lo, hi = np.maximum(a - halo, 0), np.minimum(b + halo, sc.shape)
    lab = render_labels(spec, scale, _slices(lo, hi))
    labels = lab[_slices(a - lo, b - lo)].copy()
    # Outside the volume the halo repeats the edge, as mode="nearest" on the whole volume does.
    pad = np.stack([lo - (a - halo), (b + halo) - hi], axis=1)
    mu = np.asarray(im.intensities, dtype=np.float32)[lab]
    if im.partial_volume and scale in SUBRESOLUTION:
        phase, pore, solid = SUBRESOLUTION[scale]
        m = lab == phase
        if m.any():
            phi = subresolution_porosity(spec, scale, _slices(lo, hi), samples=im.partial_volume)
            i_pore, i_solid = im.intensities[pore], im.intensities[solid]
            mu[m] = (phi[m] * i_pore + (1.0 - phi[m]) * i_solid).astype(np.float32)
    mu = np.pad(mu, pad, mode="edge")
    del lab
    if any(s > 0 for s in im.psf_sigma):
        mu = ndimage.gaussian_filter(mu, im.psf_sigma, mode="nearest", truncate=TRUNCATE)
    g = mu[_slices(halo, halo + b - a)].copy()
    del mu
    if im.drift:
        gz, gyx = _gain(im, key, start, stop)
        g *= gz
        g *= gyx
    if im.ring_count and im.ring_amplitude:
        g += _rings(im, key, sc.shape, start, stop)
    if im.curtain_amplitude:
        g += _curtains(im, key, start, stop)
    noise = _noise(key, start, stop)
    noise *= np.float32(im.noise_sigma)
    g += noise
    del noise
    np.rint(g, out=g)
    np.clip(g, 0, 65535, out=g)
    return labels, g.astype(np.uint16)


def render_scan(
    spec: SampleSpec, scale: str, region: Region | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth labels and grey image of a region of a scan, computed together.

    Parameters
    ----------
    spec
        The sample.
    scale
        ``"MicroCT"``, ``"FIB-SEM"`` or ``"TEM"``.
    region
        Three slices (z, y, x) of voxel indices inside the scan's grid; None: the whole scan.

    Returns
    -------
    labels, grey : numpy.ndarray
        uint8 labels (as :func:`~ooc.synth.scan.render_labels`) and uint16 grey values, both of
        the region's shape. Bit-identical however the scan is split into regions.
    """
    sc = spec.scale(scale)
    if max(sc.shape) > _MAX_INDEX:
        raise ValueError(f"{scale}: shape {sc.shape} exceeds {_MAX_INDEX} voxels on an axis")
    start, stop = normalize_region(region, sc.shape)
    if any(b > n for b, n in zip(stop, sc.shape, strict=True)):
        raise ValueError(f"{scale}: region {region!r} is outside the scan's shape {sc.shape}")
    shape = [b - a for a, b in zip(start, stop, strict=True)]
    labels = np.empty(shape, dtype=np.uint8)
    grey = np.empty(shape, dtype=np.uint16)
    for t0, t1 in tiles(start, stop):
        sl = tuple(slice(a - s, b - s) for a, b, s in zip(t0, t1, start, strict=True))
        labels[sl], grey[sl] = _scan_tile(spec, scale, t0, t1)
    return labels, grey


def render_grey(spec: SampleSpec, scale: str, region: Region | None = None) -> np.ndarray:
    """Grey image (uint16, the region's shape) of a region of a scan; see :func:`render_scan`."""
    return render_scan(spec, scale, region)[1]
