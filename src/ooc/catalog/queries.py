"""Questions to the catalog, answered in SQL: which stores match, where a store came from, and
what was made from it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.engine import Connection

from ooc.catalog.conditions import OPERATORS, Condition, parse_condition
from ooc.catalog.engine import reading
from ooc.catalog.records import absolute_url, utc
from ooc.catalog.tables import Number, Parent, Store
from ooc.errors import ConfigError, StoreError
from ooc.units import metres_per_unit

__all__ = ["COLUMNS", "LINEAGE_COLUMNS", "descendants", "lineage", "search"]

COLUMNS = (
    "url", "sample_id", "modality", "store_kind", "kind", "stage", "created", "registered",
    "voxel_z", "voxel_y", "voxel_x", "unit", "shape_z", "shape_y", "shape_x", "dtype",
    "digest", "code_version", "model_digest", "ooc_version", "seconds", "extra",
)  # fmt: skip
"""The columns of :func:`search` (then one column per key number, by name)."""

LINEAGE_COLUMNS = (
    "relation", "depth", "url", "stage", "store_kind", "sample_id", "digest",
    "parent", "child", "role", "recorded_digest", "parent_changed",
)  # fmt: skip
"""The columns of :func:`lineage`."""
_INTEGERS = ("shape_z", "shape_y", "shape_x", "code_version")
_FLOATS = ("voxel_z", "voxel_y", "voxel_x", "seconds")
_MAX_DEPTH = 100  # lineage deeper than this is not followed (a guard against cycles)
_BATCH = 500  # URLs per IN (...) list


def _frame(
    connection: Connection, filters: Sequence[ColumnElement[bool]], order: Sequence[Any]
) -> pd.DataFrame:
    """One row per store meeting ``filters``, in ``order``, with its key numbers."""
    table = Store.__table__
    rows = connection.execute(
        select(table.c.id, *(table.c[c] for c in COLUMNS)).where(*filters).order_by(*order)
    ).all()
    numbers = connection.execute(
        select(Number.store_id, Number.name, Number.value).where(
            Number.store_id.in_(select(Store.id).where(*filters))
        )
    ).all()
    frame = pd.DataFrame([r[1:] for r in rows], columns=list(COLUMNS))
    for name in ("created", "registered"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    for name in _FLOATS:
        frame[name] = frame[name].astype(float)
    for name in _INTEGERS:
        frame[name] = frame[name].astype("Int64")
    if numbers:
        wide = pd.DataFrame(numbers, columns=["id", "name", "value"]).pivot(
            index="id", columns="name", values="value"
        )
        wide = wide.reindex(index=[r.id for r in rows], columns=sorted(wide.columns))
        frame = pd.concat([frame, wide.astype(float).reset_index(drop=True)], axis=1)
        frame.columns.name = None
    return frame


def _number_filter(condition: Condition) -> ColumnElement[bool]:
    matching = select(Number.store_id).where(
        Number.name == condition.name,
        *(OPERATORS[op](Number.value, value) for op, value in condition.bounds),
    )
    return Store.id.in_(matching)


def _conditions(connection: Connection, where: str | Sequence[str]) -> list[Condition]:
    conditions = [parse_condition(text) for text in ([where] if isinstance(where, str) else where)]
    names = {c.name for c in conditions}
    known = set(
        connection.scalars(select(Number.name).where(Number.name.in_(names)).group_by(Number.name))
    )
    for condition in conditions:
        if condition.name not in known:
            raise ConfigError(
                f"where condition {condition.text!r}: no catalogued store has a number named "
                f"{condition.name!r}"
            )
    return conditions


def search(
    *,
    catalog_url: str,
    sample: str | None = None,
    modality: str | None = None,
    kind: str | None = None,
    store_kind: str | None = None,
    stage: str | None = None,
    min_voxel: float | None = None,
    max_voxel: float | None = None,
    voxel_unit: str = "micrometer",
    dtype: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    min_voxels: int | None = None,
    url_contains: str | None = None,
    where: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Catalogued stores matching every filter given, newest first, as a table.

    Parameters
    ----------
    catalog_url
        SQLAlchemy URL of the catalog.
    sample
        Sample id; ``*`` (or SQL ``%``) matches any text, every other character itself.
    modality, kind, store_kind, stage
        Exact matches: e.g. "MicroCT"; "grey"/"labels" (volume-like stores) or "forest"/"unet"
        (models); "volume", "labels", "probabilities", "uncertainty", "model", "results";
        "ingest", "segment", ...
    min_voxel, max_voxel, voxel_unit
        Bounds on the largest voxel edge in ``voxel_unit``, whatever unit each store uses.
    dtype
        NumPy dtype name of a volume-like store's voxels.
    since, until
        Bounds on the creation time (naive times are UTC).
    min_voxels
        Lower bound on the voxel count.
    url_contains
        Text the URL must contain.
    where
        Conditions on key numbers, all of which must hold, e.g. ``["permeability_mD_z > 1",
        "0.2 <= porosity <= 0.4"]`` (grammar: :mod:`ooc.catalog.conditions`). A store without
        the number, or with NaN, does not match.

    Returns
    -------
    pandas.DataFrame
        One row per store: the columns of :data:`COLUMNS` (``created``/``registered`` UTC
        timestamps, voxel size in ``unit``, shape in voxels, NaN/<NA>/None where unknown,
        ``extra`` a dict: a volume's acquisition and what the caller of :func:`register` gave),
        then one float column per key number any of these stores has, sorted by name.

    Raises
    ------
    ConfigError
        On an unknown ``voxel_unit``, a malformed condition or one on a number no store has.
    """
    scale = metres_per_unit(voxel_unit)
    if scale is None:
        raise ConfigError(
            f"voxel_unit {voxel_unit!r}: not a known length unit (e.g. 'micrometer', 'nm')"
        )
    filters: list[ColumnElement[bool]] = []
    if sample:
        pattern = sample.replace("\\", "\\\\").replace("_", "\\_").replace("*", "%")
        filters.append(Store.sample_id.like(pattern, escape="\\"))
    for column, value in (
        (Store.modality, modality),
        (Store.kind, kind),
        (Store.store_kind, store_kind),
        (Store.stage, stage),
        (Store.dtype, np.dtype(dtype).name if dtype else None),
    ):
        if value:
            filters.append(column == value)
    # a relative tolerance so that 2.0 µm entered by a user matches 2e-6 m stored
    if min_voxel is not None:
        filters.append(Store.voxel_m >= min_voxel * scale * (1 - 1e-9))
    if max_voxel is not None:
        filters.append(Store.voxel_m <= max_voxel * scale * (1 + 1e-9))
    if since:
        filters.append(Store.created >= utc(since))
    if until:
        filters.append(Store.created <= utc(until))
    if min_voxels:
        filters.append(Store.shape_z * Store.shape_y * Store.shape_x >= min_voxels)
    if url_contains:
        filters.append(Store.url.contains(url_contains, autoescape=True))
    with reading(catalog_url) as connection:
        if where:
            filters.extend(_number_filter(c) for c in _conditions(connection, where))
        return _frame(connection, filters, (Store.created.desc(), Store.id.desc()))


def _known(connection: Connection, url: str) -> None:
    catalogued = connection.scalar(select(func.count()).where(Store.url == url))
    named = connection.scalar(select(func.count()).where(Parent.url == url))
    if not catalogued and not named:
        raise StoreError(f"{url}: not in the catalog (neither registered nor a parent of a store)")


def descendants(url: str, *, catalog_url: str) -> pd.DataFrame:
    """Every catalogued store made from ``url``, directly or through others.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`search` after ``depth``: the length of the longest chain of
        parents from ``url`` to the store, so sorting by depth (as returned, then by URL) puts
        every store after all its parents that are descendants too (an order to redo them in).

    Raises
    ------
    StoreError
        If ``url`` is neither catalogued nor the parent of a catalogued store.
    """
    url = absolute_url(url)
    stores, parents = Store.__table__, Parent.__table__
    down = (
        select(parents.c.child_id.label("id"), literal(1).label("depth"))
        .where(parents.c.url == url)
        .cte("down", recursive=True)
    )
    step = (
        select(parents.c.child_id, down.c.depth + 1)
        .join_from(down, stores, stores.c.id == down.c.id)
        .join(parents, parents.c.url == stores.c.url)
        .where(down.c.depth < _MAX_DEPTH)
    )
    down = down.union(step)
    deepest = (
        select(stores.c.url, func.max(down.c.depth))
        .join_from(down, stores, stores.c.id == down.c.id)
        .group_by(stores.c.url)
    )
    with reading(catalog_url) as connection:
        _known(connection, url)
        depth = dict(connection.execute(deepest).all())
        frame = _frame(connection, [Store.id.in_(select(down.c.id))], (Store.url,))
    frame.insert(0, "depth", frame["url"].map(depth).astype(int))
    return frame.sort_values(["depth", "url"], ignore_index=True)


def _edges(connection: Connection, url: str, *, up: bool) -> list[Any]:
    """Lineage edges reached from ``url`` towards its parents (``up``) or its children."""
    stores, parents = Store.__table__, Parent.__table__
    edge = (
        stores.c.url.label("child"),
        parents.c.url.label("parent"),
        parents.c.role,
        parents.c.digest,
    )
    first = select(*edge, literal(1).label("depth")).join_from(
        parents, stores, stores.c.id == parents.c.child_id
    )
    walk = first.where(stores.c.url == url if up else parents.c.url == url).cte(
        "walk", recursive=True
    )
    follow = stores.c.url == walk.c.parent if up else parents.c.url == walk.c.child
    step = (
        select(*edge, walk.c.depth + 1)
        .join_from(parents, stores, stores.c.id == parents.c.child_id)
        .join(walk, follow)
        .where(walk.c.depth < _MAX_DEPTH)
    )
    walk = walk.union(step)
    return connection.execute(
        select(
            walk.c.child, walk.c.parent, walk.c.role, walk.c.digest, func.min(walk.c.depth)
        ).group_by(walk.c.child, walk.c.parent, walk.c.role, walk.c.digest)
    ).all()


def lineage(url: str, *, catalog_url: str) -> pd.DataFrame:
    """Where ``url`` came from (its ancestors) and what was made from it (its descendants).

    Returns
    -------
    pandas.DataFrame
        One row per lineage edge (``parent`` -> ``child``, in ``role``) reached from ``url``:
        ``relation`` "ancestor" (then ``url`` is the edge's parent) or "descendant" (``url`` is
        its child); ``depth`` the fewest edges from ``url``; ``stage``, ``store_kind``,
        ``sample_id``, ``digest`` of ``url`` as catalogued (None if it is not);
        ``recorded_digest`` the parent's digest the child recorded; ``parent_changed`` whether
        the parent's catalogued digest differs from it (<NA> if the parent is not catalogued).
        Ancestors come first, each part sorted by depth and URL.

    Raises
    ------
    StoreError
        If ``url`` is neither catalogued nor the parent of a catalogued store.
    """
    url = absolute_url(url)
    with reading(catalog_url) as connection:
        _known(connection, url)
        ups, downs = _edges(connection, url, up=True), _edges(connection, url, up=False)
        urls = sorted({u for e in [*ups, *downs] for u in (e.child, e.parent)})
        known: dict[str, Any] = {}
        for i in range(0, len(urls), _BATCH):
            batch = urls[i : i + _BATCH]
            for row in connection.execute(
                select(
                    Store.url, Store.stage, Store.store_kind, Store.sample_id, Store.digest
                ).where(Store.url.in_(batch))
            ):
                known[row.url] = row
    records = []
    for relation, edges in (("ancestor", ups), ("descendant", downs)):
        for child, parent, role, recorded, depth in edges:
            target = parent if relation == "ancestor" else child
            row, parent_row = known.get(target), known.get(parent)
            records.append(
                {
                    "relation": relation,
                    "depth": depth,
                    "url": target,
                    "stage": row.stage if row else None,
                    "store_kind": row.store_kind if row else None,
                    "sample_id": row.sample_id if row else None,
                    "digest": row.digest if row else None,
                    "parent": parent,
                    "child": child,
                    "role": role,
                    "recorded_digest": recorded,
                    "parent_changed": pd.NA
                    if parent_row is None
                    else parent_row.digest != recorded,
                }
            )
    frame = pd.DataFrame(records, columns=list(LINEAGE_COLUMNS))
    frame["depth"] = frame["depth"].astype(int)
    frame["parent_changed"] = frame["parent_changed"].astype("boolean")
    # "ancestor" sorts before "descendant"
    return frame.sort_values(["relation", "depth", "url", "child"], ignore_index=True)
