"""Pictures of the measurements, as PNG files (matplotlib's Agg canvas, no pyplot state).

Each function takes the path of the PNG to write and returns it. They draw on a
``matplotlib.figure.Figure`` with an Agg canvas, so nothing depends on or changes the global
backend, and they run in worker processes and on machines without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr

from ooc.measure._util import check_voxel_size

if TYPE_CHECKING:
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

__all__ = ["label_colours", "plot_distribution", "plot_histogram", "plot_orthoslices"]


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas (matplotlib is imported here: it takes ~0.3 s)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> str:
    fig.savefig(os.fspath(path), dpi=110)
    return os.fspath(path)


def plot_distribution(
    distribution: xr.DataArray,
    path: str | os.PathLike,
    *,
    xlabel: str | None = None,
    ylabel: str = "fraction",
    title: str | None = None,
) -> str:
    """Bar chart of a distribution with its cumulative curve on a second axis.

    Parameters
    ----------
    distribution : xarray.DataArray, 1D
        Share per class (e.g. ``thickness_distribution(...).volume_fraction`` or
        ``chord_length_distribution(...).probability.sel(phase=..., axis=...)``); its
        coordinate gives the class values (a non-dimension 1D coordinate is used if present,
        e.g. ``chord_length``).
    path : str or path-like
        PNG file to write.
    xlabel, ylabel, title : str, optional
        Labels; ``xlabel`` defaults to the coordinate's name and ``units`` attribute.

    Returns
    -------
    str
        ``path``.
    """
    if distribution.ndim != 1:
        raise ValueError(f"distribution: expected 1D, got dims {distribution.dims}")
    dim = distribution.dims[0]
    coord = distribution[dim]
    for name, c in distribution.coords.items():
        if name != dim and c.ndim == 1 and c.dims == (dim,):
            coord = c
            break
    x = np.asarray(coord.values, dtype=float)
    y = np.nan_to_num(np.asarray(distribution.values, dtype=float))
    units = coord.attrs.get("units", "")
    fig = _figure((6, 4))
    ax = fig.add_subplot()
    width = np.min(np.diff(x)) * 0.9 if x.size > 1 else 1.0
    ax.bar(x, y, width=width, color="tab:blue", alpha=0.7, label=ylabel)
    ax.set_xlabel(xlabel or (f"{coord.name} ({units})" if units else str(coord.name)))
    ax.set_ylabel(ylabel)
    ax2 = ax.twinx()
    total = y.sum()
    ax2.plot(x, np.cumsum(y) / total if total > 0 else y, color="tab:red", label="cumulative")
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("cumulative")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_histogram(
    values: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
    bins: int = 30,
    xlabel: str = "",
    title: str | None = None,
) -> str:
    """Histogram of values (e.g. objects' equivalent diameters) and its cumulative curve.

    Parameters
    ----------
    values : array-like, shape (n,)
    path : str or path-like
        PNG file to write.
    weights : array-like, shape (n,), optional
        E.g. object volumes for a volume-weighted distribution; default each value counts 1.
    bins : int
    xlabel, title : str

    Returns
    -------
    str
        ``path``.
    """
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    ok = np.isfinite(v) & np.isfinite(w)
    v, w = v[ok], w[ok]
    fig = _figure((6, 4))
    ax = fig.add_subplot()
    if v.size:
        h, edges = np.histogram(v, bins=bins, weights=w)
        share = h / h.sum() if h.sum() > 0 else h
        ax.bar(edges[:-1], share, width=np.diff(edges), align="edge", alpha=0.7)
        ax2 = ax.twinx()
        order = np.argsort(v)
        ax2.plot(v[order], np.cumsum(w[order]) / w.sum(), color="tab:red")
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("cumulative")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share (volume-weighted)" if weights is not None else "share (by number)")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def label_colours(n: int, seed: int = 0) -> ListedColormap:
    """A colormap of ``n + 1`` colours: black for 0, then shuffled distinct hues."""
    from matplotlib.colors import ListedColormap, hsv_to_rgb

    rng = np.random.default_rng(seed)
    hsv = np.stack(
        [
            rng.permutation(np.linspace(0, 1, max(n, 1), endpoint=False)),
            np.full(max(n, 1), 0.75),
            np.full(max(n, 1), 0.95),
        ],
        axis=1,
    )
    rgb = hsv_to_rgb(hsv)
    return ListedColormap(np.vstack([[0, 0, 0], rgb]))


def plot_orthoslices(
    labels: da.Array | np.ndarray,
    path: str | os.PathLike,
    *,
    voxel_size: Sequence[float],
    unit: str,
    position: Sequence[int] | None = None,
    title: str | None = None,
) -> str:
    """Three orthogonal slices of a labelled volume, each object in its own colour.

    Parameters
    ----------
    labels : dask.array.Array or numpy.ndarray of int, shape (nz, ny, nx)
        Object labels (0 = background). Only the three slices are computed.
    path : str or path-like
        PNG file to write.
    voxel_size : (float, float, float), keyword-only
        Voxel size (z, y, x) in ``unit``: axes are drawn in physical lengths.
    unit : str, keyword-only
    position : (int, int, int), optional
        Voxel where the slices cross; default the centre.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    vs = check_voxel_size(voxel_size)
    shape = labels.shape
    pos = [s // 2 for s in shape] if position is None else [int(p) for p in position]
    sl = [labels[pos[0], :, :], labels[:, pos[1], :], labels[:, :, pos[2]]]
    sl = [np.asarray(s.compute() if isinstance(s, da.Array) else s) for s in sl]
    nmax = int(max(int(s.max()) if s.size else 0 for s in sl))
    cmap = label_colours(nmax)
    fig = _figure((12, 4.4))
    axes = fig.subplots(1, 3)
    extents = [
        (0, shape[2] * vs[2], shape[1] * vs[1], 0),
        (0, shape[2] * vs[2], shape[0] * vs[0], 0),
        (0, shape[1] * vs[1], shape[0] * vs[0], 0),
    ]
    names = [
        ("x", "y", f"z = {pos[0] * vs[0]:.4g}"),
        ("x", "z", f"y = {pos[1] * vs[1]:.4g}"),
        ("y", "z", f"x = {pos[2] * vs[2]:.4g}"),
    ]
    for ax, img, ext, (h, v, t) in zip(axes, sl, extents, names, strict=True):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=max(nmax, 1), interpolation="nearest", extent=ext)
        ax.set_xlabel(f"{h} ({unit})")
        ax.set_ylabel(f"{v} ({unit})")
        ax.set_title(f"{t} {unit}")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
