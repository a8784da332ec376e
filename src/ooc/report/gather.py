"""A sample's stores, as the catalog knows them: per scale its newest results, the label volume
they were computed from, the grey scan that was segmented, and the whole chain of stores."""

from __future__ import annotations

import graphlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import xarray as xr

from ooc import catalog
from ooc.catalog import COLUMNS
from ooc.errors import ConfigError
from ooc.units import metres_per_unit

__all__ = ["ScaleStores", "node", "number_columns", "sample_scales"]


@dataclass(frozen=True)
class ScaleStores:
    """The catalogued stores of one sample at one scale (modality).

    ``results`` maps a stage ("measure", "simulate") to the catalog row (:func:`ooc.catalog.search`
    columns) of its newest results store; ``labels`` is the label volume those results were
    computed from (its catalog row, or None where it is not catalogued) and ``grey`` the URL of
    the grey scan it was segmented from (None for a scan ingested as labels). ``chain`` holds the
    catalog rows of every store the results were made from, and the results stores, parents
    before children (the order they were made in).
    """

    sample: str
    scale: str
    results: dict[str, pd.Series]
    labels_url: str | None
    labels: pd.Series | None
    grey: str | None
    chain: pd.DataFrame

    @property
    def voxel_m(self) -> float:
        """The largest voxel edge of the label volume in metres (NaN where unknown)."""
        if self.labels is None:
            return math.nan
        factor = metres_per_unit(str(self.labels["unit"]))
        edge = max(float(self.labels[f"voxel_{a}"]) for a in "zyx")
        return edge * factor if factor is not None else math.nan


def node(tree: xr.DataTree, path: str) -> xr.DataTree | None:
    """The node of ``tree`` at ``path`` (e.g. ``"MicroCT/measure/pore_size"``), or None."""
    try:
        found = tree[path]
    except KeyError:
        return None
    return found if isinstance(found, xr.DataTree) else None


def number_columns(columns: Iterable[str]) -> list[str]:
    """The key-number names among the columns of a :func:`ooc.catalog.search` table (or the
    index of one of its rows): those after its fixed columns."""
    return [str(c) for c in columns if c not in COLUMNS]


def _parent_with_role(edges: pd.DataFrame, child: str, role: str) -> str | None:
    found = edges[(edges["child"] == child) & (edges["role"] == role)]
    return str(found["parent"].iloc[0]) if len(found) else None


def sample_scales(sample: str, *, catalog_url: str) -> list[ScaleStores]:
    """Every scale of ``sample`` that has results in the catalog, coarsest first.

    Parameters
    ----------
    sample
        The sample id, exactly as catalogued.
    catalog_url
        SQLAlchemy URL of the catalog.

    Returns
    -------
    list of ScaleStores
        Ordered by the label volume's voxel size, largest first (scales of unknown voxel size
        last, by name).

    Raises
    ------
    ConfigError
        If the catalog has no results store of ``sample``.
    """
    found = catalog.search(catalog_url=catalog_url, sample=sample)
    found = found[found["sample_id"] == sample]  # a "*" in the id matches more in search
    # search lists the newest first: the first store of a scale and stage is the current one
    results = found[found["store_kind"] == "results"].drop_duplicates(["modality", "stage"])
    if results.empty:
        raise ConfigError(
            f"sample {sample!r}: the catalog has no results of it (run the measure or simulate "
            "stage on its scans first)"
        )
    by_url = {row["url"]: row for _, row in found.iterrows()}
    scales = []
    for scale, rows in results.groupby("modality", sort=False):
        edges = pd.concat(
            [catalog.lineage(url, catalog_url=catalog_url) for url in rows["url"]],
            ignore_index=True,
        )
        edges = edges[edges["relation"] == "ancestor"]
        labels_url = _parent_with_role(edges, str(rows["url"].iloc[0]), "labels")
        grey = _parent_with_role(edges, labels_url, "volume") if labels_url else None
        order = graphlib.TopologicalSorter()
        for url in sorted({*edges["parent"], *edges["child"]}, key=lambda u: _made(by_url, u)):
            order.add(url, *edges.loc[edges["child"] == url, "parent"].unique())
        chain = [by_url[url] for url in order.static_order() if url in by_url]
        scales.append(
            ScaleStores(
                sample=sample,
                scale=str(scale),
                results={str(r["stage"]): r for _, r in rows.iterrows()},
                labels_url=labels_url,
                labels=by_url.get(labels_url) if labels_url else None,
                grey=grey,
                chain=pd.DataFrame(chain).reset_index(drop=True),
            )
        )
    unknown = [s for s in scales if math.isnan(s.voxel_m)]
    known = [s for s in scales if not math.isnan(s.voxel_m)]
    return sorted(known, key=lambda s: (-s.voxel_m, s.scale)) + sorted(
        unknown, key=lambda s: s.scale
    )


def _made(by_url: dict[str, pd.Series], url: str) -> tuple[float, str]:
    """Sort key: catalogued stores by creation time, the others (raw inputs) first, by URL."""
    row = by_url.get(url)
    return (row["created"].timestamp() if row is not None else -math.inf, url)
