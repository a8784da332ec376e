"""Samples side by side: their key numbers from the catalog, one row per sample and scale."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from ooc.report.gather import ScaleStores, number_columns, sample_scales

__all__ = ["AXES", "axis_properties", "compare_samples", "format_comparison"]

AXES = ("z", "y", "x")
_LEADING = ["sample", "scale", "unit", "voxel_z", "voxel_y", "voxel_x"]
# the order a scientist reads them in; numbers not named here follow, sorted
_ORDER = (
    "porosity", "fraction_", "ssa_", "pore_d50", "objects_d50", "tau_", "relative_diffusivity_",
    "relative_conductivity_", "permeability_mD_", "permeability_m2_",
)  # fmt: skip
_STAGES = ("measure", "simulate")  # a number both give (porosity) is taken from the first


def _rank(name: str) -> tuple[int, str, int]:
    for i, prefix in enumerate(_ORDER):
        if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
            stem, _, axis = name.rpartition("_")
            if axis in AXES:
                return (i, stem, AXES.index(axis))
            return (i, name, 0)
    return (len(_ORDER), name, 0)


def _row(found: ScaleStores) -> dict[str, object]:
    labels = found.labels
    row: dict[str, object] = {
        "sample": found.sample,
        "scale": found.scale,
        "unit": None if labels is None else labels["unit"],
        **{f"voxel_{a}": math.nan if labels is None else labels[f"voxel_{a}"] for a in AXES},
    }
    for stage in _STAGES:
        store = found.results.get(stage)
        if store is None:
            continue
        for name in number_columns(store.index):
            value = store[name]
            if name not in row and pd.notna(value):
                row[name] = float(value)
    return row


def compare_samples(samples: Sequence[str], *, catalog_url: str) -> pd.DataFrame:
    """The key numbers of ``samples`` side by side, from the catalog.

    Parameters
    ----------
    samples
        Sample ids as catalogued (each listed once; repeats are dropped).
    catalog_url
        SQLAlchemy URL of the catalog.

    Returns
    -------
    pandas.DataFrame
        One row per sample and scale (samples in the order given, scales coarsest first):
        ``sample``, ``scale`` (the modality), ``unit`` and ``voxel_z/y/x`` of the label volume
        measured, then the key numbers of its newest measure and simulate stores as the
        catalog holds them (``porosity``, ``fraction_<phase>``, ``ssa_<phase>`` in 1/unit,
        ``pore_d50`` and ``objects_d50`` in unit, ``tau_<axis>``, ``relative_conductivity_<axis>``,
        ``permeability_mD_<axis>``, ...; porosity from the measure stage where both give it).
        NaN where a scale lacks a number.

    Raises
    ------
    ConfigError
        If a sample has no results in the catalog.
    """
    rows = [
        _row(found)
        for sample in dict.fromkeys(samples)
        for found in sample_scales(sample, catalog_url=catalog_url)
    ]
    table = pd.DataFrame(rows)
    numbers = sorted((c for c in table.columns if c not in _LEADING), key=_rank)
    return table[_LEADING + numbers]


def axis_properties(table: pd.DataFrame) -> list[str]:
    """Names ``p`` of the properties for which ``table`` has the columns ``p_z``, ``p_y`` and
    ``p_x``, in the table's order (e.g. ``tau``, ``relative_conductivity``,
    ``permeability_mD``; not the voxel size)."""
    stems = []
    for column in table.columns:
        match = re.fullmatch(r"(.+)_z", str(column))
        if match and match[1] != "voxel" and all(f"{match[1]}_{a}" in table.columns for a in AXES):
            stems.append(match[1])
    return stems


def _text(value: object) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    return "-" if value is None or value is pd.NA else str(value)


def format_comparison(table: pd.DataFrame) -> str:
    """``table`` (from :func:`compare_samples`) as aligned text for a terminal: one line per
    property, one column per sample and scale; numbers to 4 significant digits, ``-`` where
    missing.
    """
    heads = [["", "sample", "scale"]]
    heads += [["", str(r["sample"]), str(r["scale"])] for _, r in table.iterrows()]
    body = [
        [str(name), *(_text(v) for v in table[name])]
        for name in table.columns
        if name not in ("sample", "scale")
    ]
    columns = [[h[1] for h in heads], [h[2] for h in heads]]
    lines = [*columns, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(heads))]

    def fmt(line: list[str]) -> str:
        first = line[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(columns[0]), fmt(columns[1]), rule, *(fmt(b) for b in body)]) + "\n"
