"""What the catalog reads from a store: its stage record, scale, lineage and key numbers.

Every stage output carries an ``ooc_stage`` record (a Zarr store's root attribute, or a key of a
model folder's ``model.json``): stage, code version, digest, parameters, parents, model digest,
sample, modality, store kind, key numbers, status and finishing time. Volume stores written
before stages existed have no record; they are described by their ``ooc`` metadata alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr

from ooc.errors import MetadataError, StoreError
from ooc.metadata import VolumeMetadata
from ooc.units import metres_per_unit

__all__ = [
    "RECORD",
    "STORE_KINDS",
    "Description",
    "absolute_url",
    "describe",
    "json_safe",
    "utc",
]

RECORD = "ooc_stage"
COMPLETE = "complete"
STORE_KINDS = ("volume", "labels", "probabilities", "uncertainty", "model", "results")
NUMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Description:
    """A store as the catalog keeps it.

    ``columns`` are the values of its ``stores`` row (``created`` None where the store does not
    say), ``parents`` its lineage as
    ``{"url", "digest", "role"}`` dicts, ``numbers`` its key numbers (NaN where not a number).
    """

    url: str
    columns: dict[str, Any]
    parents: list[dict[str, str | None]]
    numbers: dict[str, float]


def absolute_url(url: str) -> str:
    """``url`` as the catalog stores it: a local path made absolute, an fsspec URL as given
    (both without a trailing slash)."""
    if "://" in url:
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())


def utc(when: dt.datetime) -> dt.datetime:
    """Aware UTC time; a naive time is taken as UTC (as stored)."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _field(url: str, name: str, expected: str, value: Any) -> MetadataError:
    where = f"{RECORD}/{name}" if name else RECORD
    return MetadataError(f"{url}: field '{where}' is {value!r}; expected {expected}")


def _read(url: str, storage_options: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """The attributes (or ``model.json``) at ``url`` and its Zarr group (None for a model)."""
    fs, path = fsspec.url_to_fs(url, **(storage_options or {}))
    model_json = f"{path.rstrip('/')}/model.json"
    if fs.isfile(model_json):
        try:
            return json.loads(fs.cat_file(model_json)), None
        except json.JSONDecodeError as err:
            raise StoreError(f"{url}: model.json is not JSON ({err})") from None
    try:
        group = zarr.open_group(url, mode="r", storage_options=storage_options or None)
    except (
        FileNotFoundError,
        zarr.errors.GroupNotFoundError,
        zarr.errors.NodeTypeValidationError,
    ) as err:
        raise StoreError(
            f"{url}: no Zarr group or model folder (model.json) found ({err})"
        ) from None
    return dict(group.attrs), group


def _check_record(url: str, record: Any) -> dict[str, Any]:
    """``record`` after checking the fields the catalog stores (raises MetadataError)."""
    if not isinstance(record, dict):
        raise _field(url, "", "an object (the stage record)", record)
    for name in ("stage", "digest", "store_kind", "status"):
        if not isinstance(record.get(name), str):
            raise _field(url, name, "a string", record.get(name))
    if record["status"] != COMPLETE:
        raise StoreError(
            f"{url}: unfinished store (field '{RECORD}/status' is {record['status']!r}; "
            f"expected {COMPLETE!r}); only complete stores are catalogued"
        )
    if record["store_kind"] not in STORE_KINDS:
        raise _field(url, "store_kind", f"one of {', '.join(STORE_KINDS)}", record["store_kind"])
    if len(record["stage"]) > 32:
        raise _field(url, "stage", "a stage name of at most 32 characters", record["stage"])
    for name in ("digest", "model_digest"):
        value = record.get(name)
        if (value is not None or name == "digest") and not _DIGEST.match(str(value)):
            raise _field(url, name, "64 lowercase hex digits (SHA-256)", value)
    if not isinstance(record.get("code_version"), int) or isinstance(record["code_version"], bool):
        raise _field(url, "code_version", "an integer", record.get("code_version"))
    for name, longest in (
        ("sample_id", 256),
        ("modality", 32),
        ("ooc_version", 32),
        ("finished", 64),
    ):
        value = record.get(name)
        if value is not None and not (isinstance(value, str) and len(value) <= longest):
            raise _field(url, name, f"a string of at most {longest} characters, or null", value)
    seconds = record.get("seconds")
    if seconds is not None and (not isinstance(seconds, int | float) or isinstance(seconds, bool)):
        raise _field(url, "seconds", "a number of seconds or null", seconds)
    return record


def _parents(url: str, record: dict[str, Any]) -> list[dict[str, str | None]]:
    parents = record.get("parents", [])
    if not isinstance(parents, list):
        raise _field(url, "parents", "a list of {url, digest, role}", parents)
    out: list[dict[str, str | None]] = []
    for i, parent in enumerate(parents):
        if not isinstance(parent, dict) or not isinstance(parent.get("url"), str):
            raise _field(url, f"parents/{i}", "an object with a string 'url'", parent)
        role, digest = parent.get("role"), parent.get("digest")
        if not isinstance(role, str) or not 0 < len(role) <= 64:
            raise _field(url, f"parents/{i}/role", "a role name of 1 to 64 characters", role)
        if digest is not None and not _DIGEST.match(str(digest)):
            raise _field(url, f"parents/{i}/digest", "64 lowercase hex digits or null", digest)
        out.append({"url": parent["url"].rstrip("/"), "digest": digest, "role": role})
    return out


def _numbers(url: str, record: dict[str, Any]) -> dict[str, float]:
    numbers = record.get("numbers") or {}
    if not isinstance(numbers, dict):
        raise _field(url, "numbers", "an object of name -> number", numbers)
    for name, value in numbers.items():
        if not NUMBER_NAME.match(name):
            raise _field(
                url, f"numbers/{name}", "a name of letters, digits and '_' (not first digit)", name
            )
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise _field(url, f"numbers/{name}", "a number", value)
    return {name: math.nan if value is None else float(value) for name, value in numbers.items()}


def _volume_columns(url: str, attrs: dict[str, Any], group: Any) -> dict[str, Any]:
    """Sample, modality, kind, voxel size, shape, dtype (or NULLs) and ``extra`` (a volume's
    acquisition) of a volume-like store."""
    columns: dict[str, Any] = dict.fromkeys(
        ("sample_id", "modality", "kind", "unit", "voxel_z", "voxel_y", "voxel_x", "voxel_m",
         "shape_z", "shape_y", "shape_x", "dtype"),
    )  # fmt: skip
    columns["extra"] = {}
    if "ooc" not in attrs:
        return columns
    meta = VolumeMetadata.from_dict(attrs["ooc"], source=f"{url} (zarr.json 'ooc')")
    columns.update(sample_id=meta.sample_id, modality=meta.modality, kind=meta.kind)
    columns["extra"] = {"acquisition": meta.acquisition}
    columns.update(_scale(meta.voxel_size, meta.unit))
    if group is not None and "0" in group:
        level0 = group["0"]
        if isinstance(level0, zarr.Array) and level0.ndim >= 3:
            columns.update(zip(("shape_z", "shape_y", "shape_x"), level0.shape[-3:], strict=True))
            columns["dtype"] = np.dtype(level0.dtype).name
    return columns


def _scale(voxel_size: Any, unit: str) -> dict[str, Any]:
    metres = metres_per_unit(unit)
    return {
        "unit": unit,
        "voxel_z": float(voxel_size[0]),
        "voxel_y": float(voxel_size[1]),
        "voxel_x": float(voxel_size[2]),
        "voxel_m": None if metres is None else max(map(float, voxel_size)) * metres,
    }


def _record_scale(url: str, record: dict[str, Any]) -> dict[str, Any]:
    """The voxel size a record names (results and models of one scale), or nothing."""
    voxel, unit = record.get("voxel_size"), record.get("unit")
    if voxel is None:
        return {}
    if not (
        isinstance(voxel, list)
        and len(voxel) == 3
        and all(isinstance(v, int | float) and v > 0 for v in voxel)
        and isinstance(unit, str)
    ):
        raise _field(url, "voxel_size", "three positive numbers (z, y, x) with a 'unit'", voxel)
    return _scale(voxel, unit)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as the string ``float()`` reads back ("inf",
    "-inf", "nan"): PostgreSQL's JSON, like the JSON standard, has no Infinity or NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _time(url: str, finished: str) -> dt.datetime:
    try:
        return utc(dt.datetime.fromisoformat(finished))
    except ValueError:
        raise _field(url, "finished", "an ISO 8601 time", finished) from None


def _legacy_digest(history: list[dict[str, Any]]) -> str | None:
    """A store without a record is identified by its first provenance record (as stages do)."""
    if not history:
        return None
    return hashlib.sha256(json.dumps(history[0], sort_keys=True, default=str).encode()).hexdigest()


def describe(url: str, *, storage_options: dict[str, Any] | None = None) -> Description:
    """Read what the catalog keeps about the complete store or model folder at ``url``.

    Raises
    ------
    StoreError
        If nothing is found at ``url``, it is not written by ooc, or it is unfinished.
    MetadataError
        If its record or metadata is malformed (naming the field and what was expected).
    """
    url = absolute_url(url)
    attrs, group = _read(url, storage_options)
    if RECORD not in attrs:
        if group is None:
            raise StoreError(
                f"{url}: model folder without an '{RECORD}' record in model.json (written "
                "before stages; re-run the train stage to catalogue it)"
            )
        if "ooc" not in attrs:
            raise StoreError(
                f"{url}: not an ooc store (zarr.json has neither '{RECORD}' nor 'ooc')"
            )
    store_status = attrs.get("ooc_store", {}).get("status")
    if store_status != COMPLETE and (store_status is not None or RECORD not in attrs):
        raise StoreError(
            f"{url}: unfinished store (field 'ooc_store/status' is {store_status!r}; expected "
            f"{COMPLETE!r}); only complete stores are catalogued"
        )
    history = attrs.get("ooc_history") or []
    columns = _volume_columns(url, attrs, group)
    if RECORD not in attrs:  # a volume store from before stages
        created = utc(dt.datetime.fromisoformat(history[0]["time"])) if history else None
        columns.update(store_kind="volume", digest=_legacy_digest(history), record=None)
        return Description(url, {**columns, "created": created}, [], {})
    record = _check_record(url, attrs[RECORD])
    if group is None:  # a model folder: its kind (forest, unet) and the scale it was trained at
        kind = attrs.get("kind")
        columns["kind"] = kind if isinstance(kind, str) and len(kind) <= 16 else None
        columns.update(_record_scale(url, {**attrs, **record}))
    elif "ooc" not in attrs:
        columns.update(_record_scale(url, record))
    finished = record.get("finished")
    columns.update(
        {
            "store_kind": record["store_kind"],
            "stage": record["stage"],
            "sample_id": record.get("sample_id") or columns["sample_id"],
            "modality": record.get("modality") or columns["modality"],
            "digest": record["digest"],
            "code_version": record["code_version"],
            "model_digest": record.get("model_digest"),
            "ooc_version": record.get("ooc_version"),
            "seconds": record.get("seconds"),
            "created": _time(url, finished) if finished else None,
            "record": json_safe(record),
        }
    )
    return Description(url, columns, _parents(url, record), _numbers(url, record))
