"""The report's pictures, drawn on matplotlib ``Figure`` objects with an Agg canvas (no pyplot
state, no display): orthoslices with the segmentation overlaid, size distributions, and the
comparison of samples. Builders return the figure; :func:`png_bytes` encodes one, and only
:func:`plot_comparison` writes a file."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ooc.errors import InputError
from ooc.report.compare import AXES, axis_properties
from ooc.report.gather import node
from ooc.report.planes import Planes
from ooc.units import unit_symbol

__all__ = [
    "comparison_figure",
    "distributions_figure",
    "orthoslices_figure",
    "plot_comparison",
    "png_bytes",
]

_DPI = 100
_AXIS_COLOURS = {"z": "tab:blue", "y": "tab:orange", "x": "tab:green"}
# plane normal -> (horizontal, vertical) axes of the picture
_VIEW = {"z": ("x", "y"), "y": ("x", "z"), "x": ("y", "z")}
_LABELS = {
    "porosity": "porosity",
    "tau": "tortuosity factor τ",
    "relative_diffusivity": "relative diffusivity",
    "relative_conductivity": "relative conductivity",
    "permeability_mD": "permeability (mD)",
    "permeability_m2": "permeability (m²)",
}
_SKIPPED = {"relative_diffusivity", "permeability_m2"}  # shown by tau and mD already


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (no metadata text, so nothing in them names a web address)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _edges(coord: xr.DataArray, step: float) -> tuple[float, float]:
    values = np.asarray(coord.values, dtype=float)
    if values.size > 1:
        step = float(np.median(np.diff(values)))
    return float(values[0] - step / 2), float(values[-1] + step / 2)


def _extent(plane: xr.DataArray, normal: str, voxel: Mapping[str, float]) -> list[float]:
    across, down = _VIEW[normal]
    left, right = _edges(plane[across], voxel[across])
    top, bottom = _edges(plane[down], voxel[down])
    return [left, right, bottom, top]


def _pixels(plane: xr.DataArray, normal: str) -> np.ndarray:
    across, down = _VIEW[normal]
    return np.asarray(plane.transpose(down, across).values)


def _overlay(
    values: np.ndarray, colours: Mapping[int, Sequence[float]], alpha: float
) -> np.ndarray:
    """RGBA image of a label plane: each phase in its colour, other values transparent."""
    top = int(max(values.max(initial=0), max(colours, default=0)))
    lut = np.zeros((top + 1, 4))
    for value, rgb in colours.items():
        if value >= 0:
            lut[value] = (*rgb[:3], alpha)
    return lut[np.clip(values, 0, top).astype(np.intp)]


def _voxel(planes: Planes) -> dict[str, float]:
    return dict(zip(AXES, (float(v) for v in planes.attrs["voxel_size"]), strict=True))


def orthoslices_figure(
    labels: Planes,
    grey: Planes | None,
    *,
    colours: Mapping[int, Sequence[float]],
    names: Mapping[int, str],
    title: str = "",
) -> Figure:
    """The z, y and x middle planes of a scan with its segmentation overlaid.

    Parameters
    ----------
    labels
        Middle planes of the label volume (:func:`ooc.report.planes.middle_planes`).
    grey
        Middle planes of the grey scan it was segmented from, or None (the labels are then
        drawn opaque).
    colours, names
        RGB (0-1) and name of each label value; values without a colour stay transparent.
    title
        Drawn above the planes.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels in physical coordinates (the volume's unit), a legend of the phases below.
    """
    unit = unit_symbol(str(labels.attrs.get("unit", "")))
    voxel = _voxel(labels)
    widths = [abs(np.diff(_extent(labels.planes[d], d, voxel)[:2]))[0] for d in AXES]
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=widths)
    if grey is not None:
        stacked = np.concatenate([np.ravel(p.values) for p in grey.planes.values()])
        low, high = np.nanpercentile(stacked.astype(float), [1, 99])
        gvoxel = _voxel(grey)
    for ax, normal in zip(axes, AXES, strict=True):
        plane = labels.planes[normal]
        across, down = _VIEW[normal]
        if grey is not None:
            g = grey.planes[normal]
            ax.imshow(
                _pixels(g, normal),
                cmap="gray",
                vmin=low,
                vmax=high if high > low else low + 1,
                extent=_extent(g, normal, gvoxel),
                interpolation="nearest",
            )
        else:
            ax.set_facecolor("black")
        ax.imshow(
            _overlay(_pixels(plane, normal), colours, 0.45 if grey is not None else 1.0),
            extent=_extent(plane, normal, voxel),
            interpolation="nearest",
        )
        ax.set_xlabel(f"{across} ({unit})")
        ax.set_ylabel(f"{down} ({unit})")
        ax.set_title(f"{normal} = {float(plane[normal]):.4g} {unit}")
    handles = [
        Patch(facecolor=colours[v], edgecolor="black", label=f"{names.get(v, v)} ({v})")
        for v in sorted(colours)
        if v in names
    ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def distributions_figure(
    pore_size: xr.Dataset,
    objects: pd.DataFrame | None,
    *,
    unit: str,
    pore: str,
    objects_phase: str,
) -> Figure:
    """The pore size distribution (local thickness, by volume) beside the objects' sizes.

    Parameters
    ----------
    pore_size
        A measure store's ``pore_size`` group: ``volume_fraction`` and ``cumulative_fraction``
        over ``diameter``, with ``D50``.
    objects
        The measure stage's object table (``equivalent_diameter``, ``touches_border``), or None
        where it cannot be read.
    unit
        Length unit of both.
    pore, objects_phase
        The phase names, for the titles.

    Returns
    -------
    matplotlib.figure.Figure
        Left: volume fraction per diameter class and its cumulative curve, D50 marked. Right:
        histogram of equivalent diameters by number, objects cut by the volume's border
        stacked apart (their sizes are underestimated).
    """
    sym = unit_symbol(unit)
    fig = Figure(figsize=(12, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    d = np.asarray(pore_size["diameter"].values, dtype=float)
    share = np.nan_to_num(np.asarray(pore_size["volume_fraction"].values, dtype=float))
    width = float(np.min(np.diff(d))) * 0.9 if d.size > 1 else 1.0
    left.bar(d, share, width=width, color="tab:blue", alpha=0.75, label="volume fraction")
    cumulative = left.twinx()
    cumulative.plot(d, np.cumsum(share) / max(share.sum(), 1e-300), color="tab:red")
    cumulative.set_ylim(0, 1.02)
    cumulative.set_ylabel("cumulative", color="tab:red")
    d50 = float(pore_size["D50"])
    if np.isfinite(d50):
        left.axvline(d50, color="black", linestyle="--", label=f"D50 = {d50:.3g} {sym}")
    left.legend(loc="upper left", frameon=False)
    left.set_xlabel(f"diameter ({sym})")
    left.set_ylabel("volume fraction")
    left.set_title(f"{pore} size distribution (local thickness)")
    if objects is None or objects.empty:
        right.text(0.5, 0.5, "no objects", ha="center", va="center", transform=right.transAxes)
        right.set_axis_off()
    else:
        sizes = np.asarray(objects["equivalent_diameter"], dtype=float)
        border = np.asarray(objects["touches_border"], dtype=bool)
        bins = np.histogram_bin_edges(sizes[np.isfinite(sizes)], bins=20)
        right.hist(
            [sizes[~border], sizes[border]],
            bins=bins,
            stacked=True,
            color=["tab:green", "lightgrey"],
            edgecolor="white",
            label=[f"inside ({(~border).sum()})", f"cut by the border ({border.sum()})"],
        )
        right.legend(frameon=False)
        right.set_xlabel(f"equivalent diameter ({sym})")
        right.set_ylabel("objects")
        right.set_title(f"{objects_phase} sizes ({len(sizes)} objects)")
    return fig


def _row_label(row: pd.Series) -> str:
    return f"{row['sample']}\n{row['scale']}"


def comparison_figure(table: pd.DataFrame, results_by_sample: Mapping[str, xr.DataTree]) -> Figure:
    """Properties and pore size distributions of several samples (see :func:`plot_comparison`)."""
    panels = [p for p in ["porosity", *axis_properties(table)] if p not in _SKIPPED]
    panels = [
        p
        for p in panels
        if (table[p] if p in table else table[[f"{p}_{a}" for a in AXES]]).notna().any(axis=None)
    ]
    scales = list(dict.fromkeys(table["scale"]))
    curves = {
        scale: {
            sample: found.to_dataset()
            for sample, tree in results_by_sample.items()
            if (found := node(tree, f"{scale}/measure/pore_size")) is not None
        }
        for scale in scales
    }
    curves = {scale: found for scale, found in curves.items() if found}
    if not panels and not curves:
        raise InputError(
            "plot_comparison: the table has no properties and no sample has a pore size distribution"
        )
    fig = Figure(figsize=(4.2 * max(len(panels), len(curves), 2), 8.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1) if panels and curves else (fig, fig)
    for ax, name in zip(
        np.atleast_1d(top.subplots(1, len(panels))) if panels else [], panels, strict=True
    ):
        if name in table:
            rows = table[table[name].notna()]
            ax.bar(range(len(rows)), rows[name], color="tab:blue")
        else:
            columns = [f"{name}_{a}" for a in AXES]
            rows = table[table[columns].notna().any(axis=1)]
            for i, axis in enumerate(AXES):
                ax.bar(
                    np.arange(len(rows)) + (i - 1) * 0.27,
                    rows[f"{name}_{axis}"],
                    width=0.27,
                    color=_AXIS_COLOURS[axis],
                    label=axis,
                )
            for i, axis in enumerate(AXES):  # a solve without a finite answer: say so
                for j in np.flatnonzero(rows[f"{name}_{axis}"].isna().to_numpy()):
                    ax.text(
                        j + (i - 1) * 0.27,
                        0.01,
                        "n/a",
                        transform=ax.get_xaxis_transform(),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
            ax.legend(title="axis", frameon=False)
            if name.startswith("permeability") and (rows[columns] > 0).all(axis=None):
                ax.set_yscale("log")
        ax.set_xticks(
            range(len(rows)),
            [_row_label(r) for _, r in rows.iterrows()],
            fontsize=8,
            rotation=30 if len(rows) > 3 else 0,
        )
        ax.set_title(_LABELS.get(name, name))
    if curves:
        for ax, (scale, found) in zip(
            np.atleast_1d(bottom.subplots(1, len(curves))), curves.items(), strict=True
        ):
            for sample, ds in found.items():
                ax.plot(
                    ds["diameter"].values,
                    np.nan_to_num(ds["volume_fraction"].values),
                    marker="o",
                    label=sample,
                )
            unit = unit_symbol(str(next(iter(found.values())).attrs.get("unit", "")))
            ax.set_xlabel(f"diameter ({unit})")
            ax.set_ylabel("volume fraction")
            ax.set_title(f"{scale}: pore size distribution")
            ax.legend(frameon=False)
    return fig


def plot_comparison(
    table: pd.DataFrame,
    results_by_sample: Mapping[str, xr.DataTree],
    path: str | os.PathLike[str],
) -> Path:
    """Draw samples side by side into the PNG file ``path``.

    Parameters
    ----------
    table
        From :func:`ooc.report.compare_samples`: the top row shows porosity and each per-axis
        property (tortuosity factor, relative conductivity, permeability in mD on a log scale)
        as bars per axis z/y/x, one group per sample and scale that has it.
    results_by_sample
        ``{sample: ooc.open_results(sample=...)}``: the bottom row shows, per scale, the pore
        size distribution (volume fraction per diameter class) of each sample.
    path
        The PNG file to write.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If there is nothing to draw.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(comparison_figure(table, results_by_sample)))
    return out
