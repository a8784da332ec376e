"""Results stores: ``xarray`` Datasets in Zarr v3 groups, tables as Parquet beside, with provenance.

One results store per sample and scale; each step writes its own group (``measure``,
``simulate/blocks``...). ``open_results`` gives the whole tree back as an ``xarray.DataTree``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import dask
import fsspec
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from ooc.errors import ConfigError
from ooc.io.store import blosc_codec

__all__ = ["open_results", "read_group", "read_table", "write_dataset", "write_table"]


def write_dataset(
    ds: xr.Dataset,
    url: str,
    *,
    group: str,
    provenance: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    desc: str | None = None,
    progress: bool | None = None,
) -> None:
    """Write ``ds`` as group ``group`` of the results store at ``url``, replacing that group.

    Numeric variables are compressed with Blosc/zstd; ``provenance`` is kept in the group's
    ``ooc_history`` attribute (as JSON text, so any nesting survives the round trip). With
    ``desc``, a Dask-backed ``ds`` is written slab by slab along ``z`` (its chunks) as tasks on
    the active scheduler, behind a progress bar of that name (:func:`ooc.cluster.run_tasks`).
    """
    # fixed-width unicode has no Zarr v3 spec yet (zarr warns); variable-length strings do
    ds = ds.assign_coords(
        {n: c.astype(object) for n, c in ds.coords.items() if c.dtype.kind == "U"}
    ).assign({n: v.astype(object) for n, v in ds.data_vars.items() if v.dtype.kind == "U"})
    if provenance is not None:
        ds.attrs["ooc_history"] = json.dumps([provenance])
    encoding = {
        name: {"compressors": blosc_codec(var.dtype)}
        for name, var in ds.variables.items()
        if var.dtype.kind in "biuf" and var.ndim > 0
    }
    where = {
        "group": group,
        "zarr_format": 3,
        "consolidated": False,
        "storage_options": storage_options or None,
    }
    slabs = desc is not None and "z" in ds.dims and ds.chunks.get("z") is not None
    ds.to_zarr(url, mode="w", encoding=encoding, compute=not slabs, **where)
    if slabs:  # the metadata and the in-memory coordinates are written: now the data
        from ooc.cluster import run_tasks

        bounds = np.cumsum((0, *ds.chunks["z"]))
        tasks = [
            dask.delayed(_write_slab)(ds.isel(z=slice(a, b)), url, slice(a, b), where)
            for a, b in itertools.pairwise(bounds)
        ]
        run_tasks(tasks, desc=desc, progress=progress)


def _write_slab(part: xr.Dataset, url: str, z: slice, where: dict[str, Any]) -> int:
    """Store the (computed) slab ``z`` of the variables along ``z`` in an initialised group."""
    along = part.drop_vars([n for n, v in part.variables.items() if "z" not in v.dims])
    along.to_zarr(url, region={"z": z}, **where)
    return 1


def read_group(
    url: str, group: str, *, storage_options: dict[str, Any] | None = None, load: bool = True
) -> xr.Dataset:
    """Group ``group`` of the results store at ``url`` as a Dataset, read into memory unless
    ``load`` is False."""
    ds = xr.open_zarr(
        url, group=group, zarr_format=3, consolidated=False, storage_options=storage_options or None
    )
    return ds.compute() if load else ds


def open_results(
    url: str | None = None,
    *,
    sample: str | None = None,
    scale: str | None = None,
    catalog_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> xr.DataTree:
    """Results as a lazy ``xarray.DataTree`` (values read when needed).

    With ``url``: the groups of that results store. With ``sample``: every complete results store
    of the sample in the catalog (default: the configured one), as ``<scale>/<stage>`` subtrees
    (scale = the modality, e.g. ``MicroCT/measure``, ``FIB-SEM/simulate``), optionally only
    ``scale``; each subtree's attrs name its store, digest and parents.
    """
    if url is not None:
        zarr.open_group(url, mode="r", storage_options=storage_options or None)  # clear error
        return xr.open_datatree(
            url,
            engine="zarr",
            consolidated=False,
            zarr_format=3,
            chunks={},
            storage_options=storage_options or None,
        )
    if sample is None:
        raise ConfigError("open_results: give a results store's url, or a sample")
    from ooc import catalog
    from ooc.config import load_settings

    found = catalog.search(
        catalog_url=catalog_url or load_settings().resolved_catalog_url,
        sample=sample,
        modality=scale,
        store_kind="results",
    )
    if found.empty:
        raise ConfigError(
            f"open_results: the catalog has no results of sample {sample!r}"
            + (f" at scale {scale!r}" if scale else "")
        )
    tree = xr.DataTree(name=sample)
    tree.attrs["sample"] = sample
    # newest first: an older store of the same scale and stage is shadowed by the newer one
    for row in reversed(list(found.itertuples(index=False))):
        store = open_results(row.url, storage_options=storage_options)
        made = store.attrs.get("ooc_stage", {})
        # a stage writes its groups under its own name: MicroCT/measure/fractions, not .../measure/measure/...
        sub = store[row.stage].copy() if row.stage in store.children else store
        parents = [p["url"] for p in made.get("parents", [])]
        sub.attrs.update({"url": row.url, "digest": row.digest, "parents": parents})
        tree[f"{row.modality}/{row.stage}"] = sub
    return tree


def write_table(
    df: pd.DataFrame, url: str, *, storage_options: dict[str, Any] | None = None
) -> None:
    """Write ``df`` as a Parquet file at ``url`` (beside a results store, not inside: a Zarr
    hierarchy must hold only Zarr nodes)."""
    fs, path = fsspec.url_to_fs(url, **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        df.to_parquet(f, index=False)


def read_table(url: str, *, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a Parquet table written by :func:`write_table`."""
    fs, path = fsspec.url_to_fs(url, **(storage_options or {}))
    with fs.open(path, "rb") as f:
        return pd.read_parquet(f)


def finished_step(
    url: str,
    step: str,
    parameters: dict[str, Any],
    *,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The summary a step stored with :func:`finish_step` if it ran with ``parameters``, else
    None (and any stale summary of ``step`` is removed, since its groups are about to change)."""
    try:
        group = zarr.open_group(url, mode="a", storage_options=storage_options or None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    done = group.attrs.get(f"{step}_summary")
    if done and done["parameters"] == json.loads(json.dumps(parameters)):
        return done["summary"]
    group.attrs.pop(f"{step}_summary", None)
    return None


def finish_step(
    url: str,
    step: str,
    parameters: dict[str, Any],
    summary: dict[str, Any],
    *,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record that ``step`` finished writing its groups; returns the summary as stored (JSON),
    so a re-run that finds it returns the same value. Written last: it marks completion."""
    group = zarr.open_group(url, mode="a", storage_options=storage_options or None)
    group.attrs[f"{step}_summary"] = json.loads(
        json.dumps({"parameters": parameters, "summary": summary}, default=float)
    )
    return group.attrs[f"{step}_summary"]["summary"]
