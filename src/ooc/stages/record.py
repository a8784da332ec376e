"""The contract every stage keeps: its cache key, its output's record, and lineage.

Every store a stage writes carries one record, ``ooc_stage`` (a Zarr store's root attribute, or a
key of a model folder's ``model.json``)::

    stage, code_version     which stage made it, and the version of that stage's numbers
    digest                  the output's identity: SHA-256 of stage, code version, parameters and
                            the parents' digests (the cache key); nothing about the machine
    parameters              what the stage was asked to do
    parents                 [{url, digest, role}]: the stores (or files) it was made from
    model_digest            SHA-256 of the model's weights, where a model was used
    sample_id, modality     carried over from the inputs, for the catalog
    store_kind              volume, labels, probabilities, uncertainty, model or results
    numbers                 flat key numbers (porosity, tau_z, permeability_mD_z, ...)
    status                  "writing" while the stage runs, "complete" once everything is in

A stage is skipped when its output holds a complete record with the digest it would write; an
output with another digest (other parameters or inputs, or an older stage version) is stale
and is replaced; anything else at the output path is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import fsspec
import zarr
from tqdm.auto import tqdm

import ooc
from ooc.cluster import progress_enabled
from ooc.errors import StoreError
from ooc.results import write_dataset

__all__ = [
    "COMPLETE",
    "RECORD",
    "WRITING",
    "Parent",
    "absolute_url",
    "complete_record",
    "file_parent",
    "model_weights_digest",
    "open_results_store",
    "prepare_output",
    "read_record",
    "remove",
    "stage_digest",
    "store_parent",
    "write_parts",
    "write_record",
]

RECORD = "ooc_stage"
COMPLETE = "complete"
WRITING = "writing"


@dataclass(frozen=True)
class Parent:
    """A store or file an output was made from: where it is, its identity, what it was for."""

    url: str
    digest: str
    role: str


def absolute_url(url: str) -> str:
    """A local path made absolute (so catalog entries open from any folder); URLs unchanged."""
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def stage_digest(
    stage: str, code_version: int, parameters: Mapping[str, Any], parents: Sequence[Parent]
) -> str:
    """The cache key of a stage run: SHA-256 of what determines its numbers.

    Parents enter by role and digest, not by URL, so moving a store keeps its results valid.
    """
    doc = {
        "stage": stage,
        "code_version": code_version,
        "parameters": _jsonable(dict(parameters)),
        "parents": sorted([p.role, p.digest] for p in parents),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _is_model_folder(url: str) -> bool:
    return "://" not in url and (Path(url) / "model.json").is_file()


def read_record(
    url: str, *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The ``ooc_stage`` record of the store or model folder at ``url``, or None if it has none."""
    if _is_model_folder(url):
        return json.loads((Path(url) / "model.json").read_text()).get(RECORD)
    try:
        group = zarr.open_group(url, mode="r", storage_options=storage_options or None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return None
    except zarr.errors.ContainsArrayError:
        raise StoreError(
            f"{url}: is an array inside a store; give the store itself (the folder above it)"
        ) from None
    record = group.attrs.get(RECORD)
    if record:
        return dict(record)
    # a volume store a stage began: its write plan names the stage and digest from the start
    plan = group.attrs.get("ooc_store", {}).get("plan", {})
    if "stage" in plan:
        return {"stage": plan["stage"], "digest": plan["stage_digest"], "status": WRITING}
    return None


def complete_record(
    url: str, digest: str, *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The record at ``url`` if it is complete and has ``digest`` (the stage can be skipped)."""
    record = read_record(url, storage_options=storage_options)
    if record and record.get("status") == COMPLETE and record.get("digest") == digest:
        return record
    return None


def _exists(url: str, storage_options: dict[str, Any] | None) -> bool:
    fs, path = fsspec.url_to_fs(url, **(storage_options or {}))
    return bool(fs.exists(path))


def prepare_output(
    url: str,
    stage: str,
    digest: str,
    *,
    storage_options: dict[str, Any] | None = None,
    replace_stale: bool = True,
    dry: bool = False,
) -> bool:
    """Make ``url`` ready for a run of ``stage`` with ``digest``; True when a partial output of
    the same run is there to resume.

    A stale output of the same stage (another digest) is removed (refused if not
    ``replace_stale``); anything else found at ``url`` (a store of another stage, a file, a
    foreign folder) is refused and left untouched. With ``dry``, nothing is removed (a check).
    """
    if not _exists(url, storage_options):
        return False
    record = read_record(url, storage_options=storage_options)
    if record is None or record.get("stage") != stage:
        made_by = f"made by stage {record['stage']!r}" if record else "not written by this stage"
        raise StoreError(
            f"{url}: already exists and is {made_by}; an existing store is never overwritten: "
            f"delete it or choose another output for {stage}"
        )
    if record.get("digest") == digest:
        return True
    if not replace_stale:
        raise StoreError(
            f"{url}: holds the {stage} output of another input or parameters; an existing store "
            "is never overwritten: delete it or choose another output"
        )
    if not dry:
        remove(url, storage_options=storage_options)
    return False


def remove(url: str, *, storage_options: dict[str, Any] | None = None) -> None:
    """Delete a stage output (a stale one, about to be replaced)."""
    if "://" not in url:
        shutil.rmtree(url, ignore_errors=True)
        return
    fs, path = fsspec.url_to_fs(url, **(storage_options or {}))
    fs.rm(path, recursive=True)


def number_name(text: str) -> str:
    """A key number's name as the catalog takes it: letters, digits and ``_`` (so
    ``fraction_micro-porous`` becomes ``fraction_micro_porous``)."""
    return re.sub(r"\W", "_", text)


def write_record(
    url: str,
    *,
    stage: str,
    code_version: int,
    digest: str,
    parameters: Mapping[str, Any],
    parents: Sequence[Parent],
    store_kind: str,
    status: str,
    sample_id: str | None = None,
    modality: str | None = None,
    model_digest: str | None = None,
    numbers: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
    seconds: float | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the ``ooc_stage`` record of the output at ``url`` and return it.

    Written with ``status="writing"`` before any data and ``status="complete"`` last, so a
    record that says complete means everything it describes is stored.
    """
    record = _jsonable(
        {
            "stage": stage,
            "code_version": code_version,
            "digest": digest,
            "parameters": dict(parameters),
            "parents": [asdict(p) for p in parents],
            "ooc_version": ooc.__version__,
            "model_digest": model_digest,
            "sample_id": sample_id,
            "modality": modality,
            "store_kind": store_kind,
            "numbers": {
                number_name(k): float(v)
                for k, v in (numbers or {}).items()
                if v is not None and math.isfinite(v)
            },
            "status": status,
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            if status == COMPLETE
            else None,
            "seconds": seconds,
            **dict(extra or {}),
        }
    )
    if _is_model_folder(url):
        path = Path(url) / "model.json"
        doc = json.loads(path.read_text())
        doc[RECORD] = record
        tmp = path.with_name("model.json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
        tmp.replace(path)
    else:
        group = zarr.open_group(url, mode="a", storage_options=storage_options or None)
        group.attrs[RECORD] = record
    return record


def store_parent(url: str, role: str, *, storage_options: dict[str, Any] | None = None) -> Parent:
    """A complete store (or model folder) as a parent, with its digest.

    Stores written before stages had records get a digest from their first provenance record
    (the input's checksum and the ingest parameters).
    """
    if _is_model_folder(url) and read_record(url) is None:
        # a model saved by ooc.segment.save_model outside a stage: its weights are its identity
        return Parent(absolute_url(url), model_weights_digest(url), role)
    record = read_record(url, storage_options=storage_options)
    if record is not None:
        if record.get("status") != COMPLETE:
            raise StoreError(
                f"{url}: field 'ooc_stage/status' is {record.get('status')!r}; expected "
                f"'complete' (re-run the {record.get('stage')} stage that writes it)"
            )
        return Parent(absolute_url(url), record["digest"], role)
    try:
        group = zarr.open_group(url, mode="r", storage_options=storage_options or None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreError(f"{url}: no store found (expected the {role} for this stage)") from None
    history = group.attrs.get("ooc_history") or []
    if group.attrs.get("ooc_store", {}).get("status") != COMPLETE or not history:
        raise StoreError(f"{url}: not a complete ooc store (expected the {role} for this stage)")
    identity = json.dumps(history[0], sort_keys=True, default=str)
    return Parent(absolute_url(url), hashlib.sha256(identity.encode()).hexdigest(), role)


def model_weights_digest(folder: str) -> str:
    """SHA-256 of a saved model's weights, as its ``model.json`` records it."""
    return json.loads((Path(folder) / "model.json").read_text())["weights"]["sha256"]


def open_results_store(
    url: str, stage: str, digest: str, *, storage_options: dict[str, Any] | None = None
) -> zarr.Group:
    """The results store a stage writes (created, with a "writing" record, if absent)."""
    so = storage_options or None
    if not _exists(url, storage_options):
        attrs = {RECORD: {"stage": stage, "digest": digest, "status": WRITING}, "parts_done": []}
        zarr.open_group(url, mode="w-", attributes=attrs, storage_options=so)
    return zarr.open_group(url, mode="a", storage_options=so)


def write_parts(
    group: zarr.Group,
    url: str,
    parts: Mapping[str, Callable[[], Any]],
    *,
    prefix: str,
    provenance: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
    desc: str,
    progress: bool | None = None,
) -> None:
    """Compute and write each part (a Dataset, as group ``<prefix>/<name>`` of the results store
    ``group`` at ``url``) that is not flagged in ``parts_done`` yet, flagging it once written:
    a killed stage resumes with the parts that are left. ``progress``: a bar (None: on a
    terminal, :func:`ooc.cluster.progress_enabled`)."""
    if progress is None:
        progress = progress_enabled()
    done = list(group.attrs.get("parts_done", []))
    for name, compute in tqdm(parts.items(), desc=desc, disable=not progress):
        if name in done:
            continue
        write_dataset(
            compute(),
            url,
            group=f"{prefix}/{name}",
            provenance=provenance,
            storage_options=storage_options,
        )
        done.append(name)
        group.attrs["parts_done"] = done


def file_parent(path: str, role: str) -> Parent:
    """A plain file (an annotation TIFF or JSON) as a parent: its content's SHA-256."""
    from ooc.provenance import segment_digest

    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{path}: file not found (expected the {role} for this stage)")
    return Parent(absolute_url(path), segment_digest(p, 0, p.stat().st_size), role)
