"""Archive reprocessing: find every catalogued result the installed ooc would make differently,
and redo only those, parents first.

A store is stale when the digest its stage would compute now (:func:`~ooc.stages.record.stage_digest`
of the stage's current ``CODE_VERSION``, the recorded parameters and the parents' digests as they
will be once stale parents are redone) differs from the digest it holds: its stage's code version
changed, a parent was redone or replaced, or a parent is itself stale. A segmentation is also
stale when its model's weights are no longer those it recorded (``model_digest``), and a store a
stage began but did not finish is stale until it is finished. Re-running the stage with the
recorded parameters and the parents' URLs then redoes exactly what is stale.

Companion stores (a segmentation's probabilities and uncertainty) are redone with their labels
store and not listed on their own. Ingested volumes are stale only when ingest's code version
changed (their raw source is not read otherwise). Stores that are no longer there are not
listed: deleting a derived store is how space is freed, and reprocessing does not undo it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from sqlalchemy import select

import ooc.stages.ingest as ingest_stage
import ooc.stages.measure as measure_stage
import ooc.stages.segment as segment_stage
import ooc.stages.simulate as simulate_stage
import ooc.stages.train as train_stage
import ooc.stages.upscale as upscale_stage
from ooc import catalog
from ooc.catalog.engine import reading
from ooc.catalog.tables import Store
from ooc.config import Settings
from ooc.errors import ConfigError, OocError, StoreError
from ooc.io import open_reader
from ooc.stages._run import Outcome
from ooc.stages.record import (
    COMPLETE,
    Parent,
    file_parent,
    model_weights_digest,
    read_record,
    remove,
    stage_digest,
    store_parent,
)
from ooc.units import metres_per_unit

__all__ = ["STALE_COLUMNS", "format_stale", "reprocess", "stale_outputs"]

log = logging.getLogger(__name__)

STAGES: dict[str, ModuleType] = {
    "ingest": ingest_stage,
    "train": train_stage,
    "segment": segment_stage,
    "measure": measure_stage,
    "simulate": simulate_stage,
    "upscale": upscale_stage,
}
"""The stages reprocessing knows, by name: each module has ``CODE_VERSION`` and ``run_<stage>``."""

_ARGUMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "ingest": ("output", {"source": "source"}),
    "train": ("model", {"volume": "volume", "annotations": "annotations"}),
    "segment": ("output", {"volume": "volume", "model": "model"}),
    "measure": ("output", {"labels": "labels"}),
    "simulate": ("output", {"labels": "labels", "grey": "grey"}),
    "upscale": ("output", {"finer": "finer"}),
}
"""Per stage: the ``run_<stage>`` argument naming the output, and the one for each parent role."""

_COMPANION_KINDS = ("probabilities", "uncertainty")
_INPUT_ROLES = ("volume", "labels")  # the parent whose voxels are the work

STALE_COLUMNS = ("url", "sample_id", "modality", "stage", "why", "depth", "voxels", "voxel_m")
"""The columns of :func:`stale_outputs`."""


@dataclass
class _Judged:
    """One stage store as judged now: what it holds, what the installed ooc would write."""

    url: str
    stage: str
    record: dict[str, Any]  # the complete record to redo it from (parameters, parents)
    current: str  # the digest the store holds
    expected: str  # the digest its stage would write now
    complete: bool
    reasons: list[str] = field(default_factory=list)
    blocked: str | None = None  # why it cannot be redone (a parent or source is gone)
    depth: int = 0
    stale_parents: list[str] = field(default_factory=list)
    weights_changed: bool = False

    @property
    def stale(self) -> bool:
        return bool(self.reasons)


class _Judge:
    """Judges stores and their ancestors once each (memoised), parents before children."""

    def __init__(self, catalog_url: str, options: Callable[[str], dict[str, Any]]) -> None:
        self.catalog_url = catalog_url
        self.options = options
        self.memo: dict[str, _Judged | None] = {}
        self.visiting: set[str] = set()

    def store(self, url: str) -> _Judged | None:
        """``url`` judged, or None when it holds no store of a stage reprocessing knows."""
        url = url.rstrip("/")
        if url not in self.memo:
            if url in self.visiting:
                raise StoreError(f"{url}: its recorded parents lead back to itself (a cycle)")
            self.visiting.add(url)
            try:
                self.memo[url] = self._judge(url)
            finally:
                self.visiting.discard(url)
        return self.memo[url]

    def _catalogued_record(self, url: str) -> dict[str, Any] | None:
        """The record the catalog holds for ``url`` (of its last complete run)."""
        with reading(self.catalog_url) as connection:
            return connection.scalar(select(Store.record).where(Store.url == url))

    def _judge(self, url: str) -> _Judged | None:
        held = read_record(url, storage_options=self.options(url))
        if held is None or held.get("stage") not in STAGES:
            return None
        stage = str(held["stage"])
        complete = held.get("status") == COMPLETE
        record = held if complete else self._catalogued_record(url)
        judged = _Judged(url, stage, record or {}, held["digest"], held["digest"], complete)
        if not complete:
            judged.reasons.append("unfinished")
        if record is None or "parameters" not in record:
            judged.blocked = "no complete record of its parameters (not in the catalog)"
            return judged
        code = STAGES[stage].CODE_VERSION
        if record["code_version"] != code:
            judged.reasons.append(f"code version {record['code_version']} -> {code}")
        parents = []
        for recorded in record.get("parents", []):
            parent = Parent(str(recorded["url"]), recorded["digest"], str(recorded["role"]))
            digest = self._parent_digest(judged, parent)
            parents.append(Parent(parent.url, digest or parent.digest, parent.role))
        if stage == "segment":
            self._check_weights(judged)
        judged.expected = stage_digest(stage, code, record["parameters"], parents)
        if judged.expected != judged.current and not judged.reasons:
            judged.reasons.append("stored digest differs from the one computed now")
        return judged

    def _parent_digest(self, judged: _Judged, parent: Parent) -> str | None:
        """The digest ``parent`` will have once stale stores are redone (None: it is gone);
        notes on ``judged`` why it is stale or cannot be redone."""
        if judged.stage == "ingest":
            # the raw source is read only when the volume is to be redone anyway
            if not judged.reasons:
                return parent.digest
            digest = _source_digest(parent.url, judged.record["parameters"])
            if digest is None:
                judged.blocked = f"source {parent.url} missing"
                judged.reasons.append(judged.blocked)
            elif digest != parent.digest:
                judged.reasons.append(f"source {parent.url} changed")
            return digest
        above = None
        if "://" not in parent.url and Path(parent.url).is_file():
            digest: str | None = file_parent(parent.url, parent.role).digest
        else:
            above = self.store(parent.url)
            digest = above.expected if above is not None else self._other_digest(parent)
        if digest is None:
            judged.blocked = f"parent {parent.url} missing"
        elif above is not None and above.stale:
            judged.reasons.append(f"stale parent {parent.url}")
            judged.stale_parents.append(parent.url)
            judged.depth = max(judged.depth, above.depth + 1)
        elif digest != parent.digest:
            judged.reasons.append(f"parent {parent.url} changed")
        return digest

    def _other_digest(self, parent: Parent) -> str | None:
        """The digest of a parent no known stage wrote (a model saved outside a stage, a store
        from before stages, ...), or None when it is gone or unfinished."""
        try:
            return store_parent(
                parent.url, parent.role, storage_options=self.options(parent.url)
            ).digest
        except OocError:
            return None

    def _check_weights(self, judged: _Judged) -> None:
        recorded = judged.record.get("model_digest")
        for parent in judged.record.get("parents", []):
            folder = str(parent["url"])
            if parent["role"] != "model" or not (Path(folder) / "model.json").is_file():
                continue
            if recorded is not None and model_weights_digest(folder) != recorded:
                judged.reasons.append(f"model weights {folder} changed")
                judged.weights_changed = True


def _source_digest(source: str, parameters: dict[str, Any]) -> str | None:
    """The raw source's identity as ingest keys it, or None when it cannot be read."""
    try:
        reader = open_reader(source, **(parameters.get("reader_options") or {}))
        return ingest_stage._fingerprint_digest(reader)
    except (OocError, OSError):
        return None


def _judged_stale(
    judge: _Judge, *, catalog_url: str, sample: str | None, stage: str | None
) -> tuple[list[_Judged], pd.DataFrame]:
    """The stale stores matching ``sample``/``stage``, in the order to redo them, and the
    catalog rows of the sample(s) (for sizes)."""
    if stage is not None and stage not in STAGES:
        raise ConfigError(
            f"stage {stage!r}: not a stage ooc reprocesses; expected one of {', '.join(STAGES)}"
        )
    rows = catalog.search(catalog_url=catalog_url, sample=sample)
    wanted = rows[rows["stage"].isin([stage] if stage else list(STAGES))]
    wanted = wanted[~wanted["store_kind"].isin(_COMPANION_KINDS)]
    stale = [j for url in wanted["url"] if (j := judge.store(url)) is not None and j.stale]
    return stale, rows


def _sizes(judged: _Judged, by_url: pd.DataFrame) -> tuple[int | None, float]:
    """The input volume's voxel count (the work) and the store's largest voxel edge in metres
    (its scale), from the catalog rows ``by_url``; None/NaN where they do not say."""
    inputs = [str(p["url"]) for p in judged.record.get("parents", []) if p["role"] in _INPUT_ROLES]
    own = [judged.url]
    voxels, voxel_m = None, math.nan
    for url in [*inputs, *own] if judged.stage != "ingest" else own:
        if url in by_url.index and not pd.isna(by_url.at[url, "shape_z"]):
            row = by_url.loc[url]
            voxels = int(row["shape_z"]) * int(row["shape_y"]) * int(row["shape_x"])
            break
    for url in [*own, *inputs]:
        if url in by_url.index and not pd.isna(by_url.at[url, "voxel_z"]):
            row = by_url.loc[url]
            metres = metres_per_unit(str(row["unit"]))
            if metres is not None:
                voxel_m = max(float(row[f"voxel_{a}"]) for a in "zyx") * metres
                break
    return voxels, voxel_m


def _ordered(stale: list[_Judged], rows: pd.DataFrame) -> list[tuple[_Judged, dict[str, Any]]]:
    """Each stale store with its table row, parents first, then finest scale first."""
    by_url = rows.set_index("url")
    out = []
    for judged in stale:
        voxels, voxel_m = _sizes(judged, by_url)
        catalogued = by_url.loc[judged.url] if judged.url in by_url.index else None
        sample_id = catalogued["sample_id"] if catalogued is not None else None
        modality = catalogued["modality"] if catalogued is not None else None
        out.append(
            (
                judged,
                {
                    "url": judged.url,
                    "sample_id": sample_id or judged.record.get("sample_id"),
                    "modality": modality or judged.record.get("modality"),
                    "stage": judged.stage,
                    "why": "; ".join(judged.reasons),
                    "depth": judged.depth,
                    "voxels": voxels,
                    "voxel_m": voxel_m,
                },
            )
        )
    out.sort(  # an unknown scale last among its depth
        key=lambda item: (
            item[1]["depth"],
            math.inf if math.isnan(item[1]["voxel_m"]) else item[1]["voxel_m"],
            item[1]["url"],
        )
    )
    return out


def _options_for(storage_options: dict[str, Any] | None) -> Callable[[str], dict[str, Any]]:
    return lambda url: dict(storage_options or {}) if "://" in url else {}


def stale_outputs(
    *,
    catalog_url: str,
    sample: str | None = None,
    stage: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every catalogued stage output the installed ooc would make differently (see module).

    Parameters
    ----------
    catalog_url
        SQLAlchemy URL of the catalog.
    sample
        Sample id glob (``*`` matches any text), as :func:`ooc.catalog.search` takes it.
    stage
        Only outputs of this stage ("ingest", "train", "segment", "measure", "simulate").
        Ancestors outside ``sample``/``stage`` are still judged: a store whose parent is stale
        is listed with why "stale parent ...".
    storage_options
        fsspec options for stores at URLs (``s3://...``); local paths need none.

    Returns
    -------
    pandas.DataFrame
        One row per stale store, in the order to redo them (``depth``, then ``voxel_m``, then
        URL): ``url``; ``sample_id``; ``modality``; ``stage``; ``why`` (reasons joined by
        "; ", e.g. "code version 1 -> 2", "parent /x/seg.zarr changed", "stale parent
        /x/seg.zarr", "model weights /x/model changed", "unfinished", "source /x.npy missing");
        ``depth`` (0 when no parent is stale, else one more than its deepest stale parent);
        ``voxels`` the input volume's voxel count (the work; <NA> where unknown);
        ``voxel_m`` the largest voxel edge in metres (NaN where unknown).

    Raises
    ------
    ConfigError
        On an unknown ``stage``.
    """
    judge = _Judge(catalog_url, _options_for(storage_options))
    stale, rows = _judged_stale(judge, catalog_url=catalog_url, sample=sample, stage=stage)
    frame = pd.DataFrame([row for _, row in _ordered(stale, rows)], columns=list(STALE_COLUMNS))
    frame["depth"] = frame["depth"].astype(int)
    frame["voxels"] = frame["voxels"].astype("Int64")
    frame["voxel_m"] = frame["voxel_m"].astype(float)
    return frame


def _redo(
    judged: _Judged,
    settings: Settings,
    *,
    progress: bool | None,
    run_id: str | None,
) -> Outcome:
    """Run the stage of ``judged`` again with its recorded parameters and parents."""
    output_argument, role_arguments = _ARGUMENTS[judged.stage]
    run = getattr(STAGES[judged.stage], f"run_{judged.stage}")
    accepted = inspect.signature(run).parameters
    parameters = dict(judged.record["parameters"])
    inputs: dict[str, Any] = {}
    for parent in judged.record["parents"]:
        phase = str(parent["role"]).removeprefix("upscaled:")
        if phase != parent["role"]:  # a phase whose values come from an upscale store
            inputs.setdefault("upscaled", {})[phase] = str(parent["url"])
            continue
        if parent["role"] not in role_arguments:
            raise StoreError(
                f"{judged.url}: field 'ooc_stage/parents' has role {parent['role']!r}; "
                f"run_{judged.stage} takes {', '.join(role_arguments)}"
            )
        inputs[role_arguments[parent["role"]]] = str(parent["url"])
    unknown = sorted(set(parameters) - set(accepted))
    if unknown:
        raise StoreError(
            f"{judged.url}: field 'ooc_stage/parameters' has {', '.join(unknown)}, which "
            f"run_{judged.stage} of this ooc does not take; redo it by hand"
        )
    extras = {k: v for k, v in (("progress", progress), ("run_id", run_id)) if k in accepted}
    if _same_key(judged) or (judged.stage == "ingest" and judged.expected != judged.current):
        # the stage would skip an output whose key it finds unchanged, and ingest never replaces
        # one: remove it (with its companions) first
        for url in [*judged.record.get("companions", []), judged.url]:
            remove(url, storage_options=settings.storage_options(url))
    return run(
        **inputs,
        **{output_argument: judged.url},
        **parameters,
        settings=settings,
        **extras,
    )


def _same_key(judged: _Judged) -> bool:
    """Stale though its key is unchanged: new model weights, or a parent that is redone to the
    same key (and so, as far as the stage can tell, current)."""
    return judged.complete and judged.expected == judged.current


def reprocess(
    *,
    catalog_url: str,
    settings: Settings,
    sample: str | None = None,
    stage: str | None = None,
    progress: bool | None = None,
    run_id: str | None = None,
) -> list[Outcome]:
    """Redo the stale stores :func:`stale_outputs` lists, parents first, finest scale first.

    Each is redone by its stage's ``run_<stage>`` with the recorded parameters and the parents'
    URLs by role, into the same URL, on the active Dask scheduler; the stage re-registers it
    in ``catalog_url``. A store that cannot be redone (its raw source or a parent is gone) is
    left as it is and logged; its descendants stale only through it are then found current by
    their stage (``Outcome.skipped``) or, where their key would not change, left out.

    Returns
    -------
    list of Outcome
        One per stage run, in the order they ran.

    Raises
    ------
    ConfigError
        On an unknown ``stage``.
    StoreError
        If a record names a parent role or parameter its stage no longer takes.
    """
    settings = dataclasses.replace(settings, catalog_url=catalog_url)
    judge = _Judge(catalog_url, settings.storage_options)
    stale, rows = _judged_stale(judge, catalog_url=catalog_url, sample=sample, stage=stage)
    outcomes, redone = [], set()
    for judged, _ in _ordered(stale, rows):
        if judged.blocked:
            log.warning("%s: not redone (%s)", judged.url, judged.blocked)
            continue
        if (
            _same_key(judged)
            and not judged.weights_changed
            and redone.isdisjoint(judged.stale_parents)
        ):
            log.warning("%s: not redone (its stale parents were not redone)", judged.url)
            continue
        outcomes.append(_redo(judged, settings, progress=progress, run_id=run_id))
        redone.add(judged.url)
    return outcomes


def _work(voxels: Any) -> str:
    if voxels is None or pd.isna(voxels):
        return "?"
    for size, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if voxels >= size:
            return f"{voxels / size:.1f}{prefix} voxels"
    return f"{int(voxels)} voxels"


def format_stale(table: pd.DataFrame) -> str:
    """The table of :func:`stale_outputs` as aligned text: order, stage, store, why and the
    estimated work (input voxels), then a total line."""
    if table.empty:
        return "nothing is stale"
    rows = [("#", "stage", "store", "why", "work")]
    rows += [
        (str(i + 1), r.stage, r.url, r.why, _work(r.voxels))
        for i, r in enumerate(table.itertuples(index=False))
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    total = int(table["voxels"].fillna(0).sum())
    lines.append(f"{len(table)} stale store(s), about {_work(total)} to process")
    return "\n".join(line.rstrip() for line in lines)
