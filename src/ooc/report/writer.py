"""``write_report``: one self-contained HTML file about a sample, from the catalog and its stores.

The page has a title, a summary, the properties across scales, then one section per scale
(coarsest first): the middle planes of the grey scan with the segmentation over it, the phases,
the pore and particle size distributions, the transport properties per axis, the provenance of
every store the results were made from, and the stages' run times. Pictures are PNGs inside the
file (``data:`` URIs); the style sheet is inline; there are no scripts and no external links.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import xarray as xr

import ooc
from ooc.report.compare import AXES, compare_samples
from ooc.report.figures import distributions_figure, orthoslices_figure, png_bytes
from ooc.report.gather import ScaleStores, node, sample_scales
from ooc.report.page import document, figure, number, section, table
from ooc.report.planes import middle_planes, phase_colours
from ooc.results import open_results
from ooc.stages.record import read_record
from ooc.units import unit_symbol

__all__ = ["write_report"]

# per-axis transport properties: (label, simulate group, variable)
_TRANSPORT = (
    ("tortuosity factor τ", "tortuosity", "tortuosity"),
    ("relative diffusivity", "tortuosity", "relative_diffusivity"),
    ("relative conductivity", "conductivity", "relative_conductivity"),
    ("permeability (mD)", "permeability", "permeability_mD"),
    ("permeability (m²)", "permeability", "permeability"),
)
_BLOCK_NUMBERS = (("median τ of the blocks", "tau_median"), ("median permeability of the blocks (mD)", "permeability_mD_median"))  # fmt: skip
_OBJECT_COLUMNS = ["equivalent_diameter", "touches_border"]


def _anchor(scale: str) -> str:
    return "scale-" + re.sub(r"[^a-z0-9]+", "-", scale.lower()).strip("-")


def _short(url: str) -> str:
    """The last two parts of a store's URL (its scale folder and name)."""
    return "/".join(url.rstrip("/").split("/")[-2:])


def _transport(found: ScaleStores, tree: xr.DataTree) -> dict[str, dict[str, float]]:
    """{property label: {axis: value}} of the scale's simulate store (empty without one)."""
    simulate = node(tree, f"{found.scale}/simulate")
    if simulate is None:
        return {}
    out = {}
    for label, group, var in _TRANSPORT:
        if group in simulate.children and var in simulate[group].data_vars:
            values = simulate[group].to_dataset()[var].compute()
            out[label] = {
                str(d): float(values.sel(direction=d)) for d in values["direction"].values
            }
    numbers = found.results["simulate"]
    for label, stem in _BLOCK_NUMBERS:
        if f"{stem}_z" in numbers.index:
            out[label] = {a: float(numbers[f"{stem}_{a}"]) for a in AXES}
    return out


def _voxel_text(row: pd.Series) -> str:
    """The voxel size with its unit: "2 µm", or "30×20×20 nm" where it differs by axis."""
    sizes = [number(row[f"voxel_{a}"], 3) for a in AXES]
    return (
        f"{sizes[0] if len(set(sizes)) == 1 else '×'.join(sizes)} {unit_symbol(str(row['unit']))}"
    )


def _axes_text(values: Mapping[str, float]) -> str:
    return "/".join(number(values.get(a), 3) for a in AXES)


def _summary(found: ScaleStores, row: pd.Series, transport: dict[str, dict[str, float]]) -> str:
    unit = unit_symbol(str(row["unit"]))
    parts = [f"porosity {number(row.get('porosity'), 3)}"]
    if "pore_d50" in row and pd.notna(row["pore_d50"]):
        parts.append(f"pore diameter D50 {number(row['pore_d50'], 3)} {unit}")
    for label in ("tortuosity factor τ", "relative conductivity", "permeability (mD)"):
        if label in transport:
            parts.append(f"{label} z/y/x {_axes_text(transport[label])}")
    how = "segmented from its grey scan" if found.grey else "labels as ingested"
    return (
        f'<li><a href="#{_anchor(found.scale)}"><b>{html.escape(found.scale)}</b></a> '
        f"({html.escape(_voxel_text(row))} voxels, {how}): "
        f"{html.escape('; '.join(parts))}</li>"
    )


def _properties(table_: pd.DataFrame) -> str:
    columns = [
        ("porosity", "porosity"),
        *((f"tau_{a}", f"τ {a}") for a in AXES),
        *((f"relative_conductivity_{a}", f"σ/σ₀ {a}") for a in AXES),
        *((f"permeability_mD_{a}", f"k {a} (mD)") for a in AXES),
    ]
    present = [(c, h) for c, h in columns if c in table_]
    pore = "pore_d50" in table_
    head = ["scale", "voxel", *(["pore D50"] if pore else []), *(h for _, h in present)]
    rows = []
    for _, r in table_.iterrows():
        unit = unit_symbol(str(r["unit"]))
        cells = [str(r["scale"]), _voxel_text(r)]
        if pore:
            cells.append(f"{number(r['pore_d50'], 3)} {unit}")
        rows.append(cells + [number(r[c]) for c, _ in present])
    body = table(head, rows, numeric=[False] + [True] * (len(head) - 1))
    note = (
        '<p class="note">From the catalog (the key numbers each stage recorded). τ: tortuosity '
        "factor ε·D₀/D_eff of the pore space; σ/σ₀: effective conductivity relative to the "
        "conducting phase; k: permeability; – where a scale was not simulated or a solve had no "
        "finite answer (no percolating path).</p>"
    )
    return section("properties", "Properties across scales", body + note)


def _orthoslices(found: ScaleStores, names: dict[int, str]) -> str:
    if found.labels_url is None:
        return ""
    labels = middle_planes(found.labels_url)
    grey = middle_planes(found.grey) if found.grey else None
    colours = phase_colours(found.labels_url)
    png = png_bytes(orthoslices_figure(labels, grey, colours=colours, names=names))
    shape = "×".join(str(n) for n in labels.shape)
    caption = (
        f"Middle planes of the {shape} volume"
        + (f" (pyramid level {labels.level})" if labels.level else "")
        + (
            f"; grey scan {_short(found.grey)} with the segmentation "
            f"{_short(found.labels_url)} over it (semi-transparent)."
            if grey
            else f"; labels {_short(found.labels_url)} (this scan was ingested as labels, there "
            "is no grey scan under them)."
        )
    )
    return section(
        f"{_anchor(found.scale)}-planes",
        "Middle planes",
        figure(png, alt=f"{found.scale} middle planes", caption=caption),
        level=3,
    )


def _phases(measure: xr.DataTree, colours: dict[int, tuple[float, ...]], unit: str) -> str:
    fractions = measure["fractions"].to_dataset().compute()
    surface = measure["surface"].to_dataset().compute() if "surface" in measure.children else None
    connected = (
        measure["connectivity"].to_dataset().compute()
        if "connectivity" in measure.children
        else None
    )
    rows = []
    for phase in fractions["phase"].values:
        value = int(fractions["label_value"].sel(phase=phase))
        rgb = colours.get(value, (1.0, 1.0, 1.0))
        swatch = "#" + "".join(f"{round(c * 255):02x}" for c in rgb[:3])
        cells = [
            f'<span class="swatch" style="background:{swatch}"></span>{html.escape(str(phase))}',
            str(value),
            number(float(fractions["fraction"].sel(phase=phase))),
            number(float(surface["ssa"].sel(phase=phase))) if surface is not None else "–",
        ]
        if connected is not None:
            perc = connected["percolating_fraction"].sel(phase=phase)
            cells += [number(float(perc.sel(axis=a)), 3) for a in AXES]
        rows.append(cells)
    head = ["phase", "label", "volume fraction", f"SSA (1/{unit})"]
    if connected is not None:
        head += [f"percolating {a}" for a in AXES]
    note = (
        '<p class="note">SSA: surface area per volume of sample (Crofton estimate). Percolating: '
        "the share of the phase connected to both faces normal to the axis.</p>"
    )
    return table(head, rows, numeric=[False] + [True] * (len(head) - 1), raw=True) + note


def _objects(record: dict[str, Any] | None) -> pd.DataFrame | None:
    """The measure stage's object table (only the columns drawn), or None if it is gone."""
    url = ((record or {}).get("summary") or {}).get("objects_table")
    if not url:
        return None
    fs, path = fsspec.url_to_fs(url)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return pd.read_parquet(f, columns=_OBJECT_COLUMNS)


def _distributions(found: ScaleStores, measure: xr.DataTree, record: dict[str, Any] | None) -> str:
    parameters = (record or {}).get("parameters") or {}
    size = measure["pore_size"].to_dataset().compute()
    unit = str(size.attrs.get("unit", ""))
    objects = _objects(record)
    png = png_bytes(
        distributions_figure(
            size,
            objects,
            unit=unit,
            pore=str(parameters.get("pore", size.attrs.get("phase", "pore"))),
            objects_phase=str(parameters.get("objects", "objects")),
        )
    )
    sym = unit_symbol(unit)
    d = " / ".join(number(float(size[k]), 3) for k in ("D10", "D50", "D90"))
    caption = f"Pore diameters D10/D50/D90 by volume: {d} {sym}."
    if objects is None:
        caption += " The object table is not there any more; no particle sizes to show."
    elif "objects" in measure.children:
        stats = measure["objects"].to_dataset().compute()
        d50 = stats["D50"].sel(measure="equivalent_diameter", weighting="number")
        caption += (
            f" Objects away from the border: {int(stats['n_objects'])}, equivalent diameter D50 "
            f"{number(float(d50), 3)} {sym} (by number)."
        )
    return section(
        f"{_anchor(found.scale)}-sizes",
        "Size distributions",
        figure(png, alt=f"{found.scale} size distributions", caption=caption),
        level=3,
    )


def _transport_html(found: ScaleStores, transport: dict[str, dict[str, float]]) -> str:
    rows = [[label, *(number(values.get(a)) for a in AXES)] for label, values in transport.items()]
    body = table(
        ["property", *(f"axis {a}" for a in AXES)], rows, numeric=[False, True, True, True]
    )
    return section(f"{_anchor(found.scale)}-transport", "Transport", body, level=3)


def _parents_html(parents: list[dict[str, Any]]) -> str:
    return "<br>".join(
        f'{html.escape(str(p.get("role")))}: <span title="{html.escape(str(p.get("url")))}">'
        f"{html.escape(_short(str(p.get('url'))))}</span> "
        f"<code>{html.escape(str(p.get('digest'))[:10])}</code>"
        for p in parents
    )


def _provenance(found: ScaleStores, records: dict[str, dict[str, Any] | None]) -> str:
    rows = []
    for _, row in found.chain.iterrows():
        record = records.get(row["url"]) or {}
        parameters = json.dumps(record.get("parameters") or {}, indent=1, sort_keys=True)
        n = len(record.get("parameters") or {})
        when = record.get("finished") or row["created"].isoformat(timespec="seconds")
        rows.append(
            [
                html.escape(str(row["stage"])),
                f'<span title="{html.escape(row["url"])}">{html.escape(_short(row["url"]))}</span>',
                html.escape(number(row["code_version"]) if pd.notna(row["code_version"]) else "–"),
                f"<details><summary>{n} parameter{'s' if n != 1 else ''}</summary>"
                f"<pre>{html.escape(parameters)}</pre></details>",
                _parents_html(record.get("parents") or []),
                f"<code>{html.escape(str(row['digest'])[:12])}</code>",
                html.escape(str(when).replace("T", " ").replace("+00:00", " UTC")),
                html.escape(number(row["seconds"], 3)),
            ]
        )
    head = ["stage", "store", "code", "parameters", "parents", "digest", "finished", "seconds"]
    note = (
        '<p class="note">Each store as its stage recorded it (parents before children): the '
        "digest is the store's identity (SHA-256 of the stage, its code version, its parameters "
        "and its parents' digests); a parent's digest is the one the child was made from.</p>"
    )
    numeric = [False, False, True, False, False, False, False, True]
    return section(
        f"{_anchor(found.scale)}-provenance",
        "Provenance",
        table(head, rows, numeric=numeric, raw=True) + note,
        level=3,
    )


def _run_times(found: ScaleStores) -> str:
    seconds = found.chain["seconds"].astype(float)
    longest = float(np.nanmax(seconds)) if seconds.notna().any() else 0.0
    rows = []
    for (_, row), s in zip(found.chain.iterrows(), seconds, strict=True):
        share = 100 * s / longest if longest > 0 and np.isfinite(s) else 0.0
        rows.append(
            [
                html.escape(f"{row['stage']} ({_short(row['url']).split('/')[-1]})"),
                f'<div class="bar" style="width:{share:.1f}%"></div>',
                html.escape(f"{number(s, 3)} s"),
            ]
        )
    total = float(np.nansum(seconds))
    rows.append(["<b>total</b>", "", f"<b>{html.escape(number(total, 3))} s</b>"])
    body = table(
        ["stage (store)", "", "seconds"], rows, numeric=[False, False, True], raw=True, cls="bars"
    )
    return section(f"{_anchor(found.scale)}-times", "Run times", body, level=3)


def _scale_section(
    found: ScaleStores,
    tree: xr.DataTree,
    row: pd.Series,
    transport: dict[str, dict[str, float]],
) -> str:
    records = {url: read_record(url) for url in found.chain["url"]}
    names: dict[int, str] = {}
    unit = unit_symbol(str(row["unit"]))
    parts = []
    if found.labels_url is not None:
        labels = ooc.open_volume(found.labels_url)
        names = {int(v): str(n) for v, n in (labels.attrs.get("labels") or {}).items()}
        shape = "×".join(str(n) for n in labels.shape)
        voxel = "×".join(number(float(v), 3) for v in labels.attrs["voxel_size"])
        extent = "×".join(
            number(float(n) * float(v), 4)
            for n, v in zip(labels.shape, labels.attrs["voxel_size"], strict=True)
        )
        phases = ", ".join(f"{n} ({v})" for v, n in sorted(names.items()))
        parts.append(
            f'<p class="meta">{html.escape(shape)} voxels of {html.escape(voxel)} {unit} '
            f"({html.escape(extent)} {unit}); phases {html.escape(phases)}.</p>"
        )
        parts.append(_orthoslices(found, names))
    measure = node(tree, f"{found.scale}/measure")
    if measure is not None:
        colours = phase_colours(found.labels_url) if found.labels_url else {}
        parts.append(
            section(
                f"{_anchor(found.scale)}-phases", "Phases", _phases(measure, colours, unit), level=3
            )
        )
        parts.append(
            _distributions(found, measure, records.get(str(found.results["measure"]["url"])))
        )
    if transport:
        parts.append(_transport_html(found, transport))
    parts.append(_provenance(found, records))
    parts.append(_run_times(found))
    return section(_anchor(found.scale), found.scale, "".join(parts))


def write_report(sample: str, path: str | os.PathLike[str], *, catalog_url: str) -> Path:
    """Write one self-contained HTML report about ``sample`` to ``path``.

    Everything comes from the catalog at ``catalog_url`` and the stores it names: the newest
    results of each scale (as :func:`ooc.open_results` gives them), the label volume they were
    computed from and the grey scan it was segmented from. Only the three middle planes of each
    volume are read (from a pyramid level of at most 512 pixels a side), so memory stays small
    whatever the scan's size.

    Parameters
    ----------
    sample
        The sample id, as catalogued.
    path
        The HTML file to write (replaced if it exists).
    catalog_url
        SQLAlchemy URL of the catalog.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ConfigError
        If the catalog has no results of ``sample``.
    StoreError
        If a catalogued store cannot be opened any more (naming it).
    """
    scales = sample_scales(sample, catalog_url=catalog_url)
    tree = open_results(sample=sample, catalog_url=catalog_url)
    numbers = compare_samples([sample], catalog_url=catalog_url).set_index("scale", drop=False)
    transport = {found.scale: _transport(found, tree) for found in scales}
    stores = pd.concat([found.chain for found in scales]).drop_duplicates("url")
    total = float(np.nansum(stores["seconds"].astype(float)))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"<header><h1>Sample {html.escape(sample)}</h1>"
        f'<p class="meta">ooc {html.escape(ooc.__version__)} report, written {now}; '
        f"{len(scales)} scale{'s' if len(scales) != 1 else ''}, {len(stores)} stores, "
        f"{number(total, 3)} s of stage time in all.</p></header>"
    )
    nav = (
        "<nav>"
        + "".join(
            f'<a href="#{ident}">{html.escape(title)}</a>'
            for ident, title in [
                ("summary", "Summary"),
                ("properties", "Properties"),
                *((_anchor(s.scale), s.scale) for s in scales),
            ]
        )
        + "</nav>"
    )
    summary = section(
        "summary",
        "Summary",
        '<ul class="summary">'
        + "".join(_summary(s, numbers.loc[s.scale], transport[s.scale]) for s in scales)
        + "</ul>",
    )
    body = "".join(
        _scale_section(s, tree, numbers.loc[s.scale], transport[s.scale]) for s in scales
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        document(f"ooc report: {sample}", header + nav + summary + _properties(numbers) + body),
        encoding="utf-8",
    )
    return out
