"""Opening a stage's input volume: complete, of the kind the stage needs, with its digest."""

from __future__ import annotations

import xarray as xr

from ooc.config import Settings
from ooc.errors import StoreError
from ooc.io import open_volume
from ooc.stages.record import Parent, store_parent

__all__ = ["open_input", "phase_values_by_name"]

_NEEDS = {"grey": "a grey scan (ingested with kind grey)", "labels": "a label volume"}


def open_input(
    url: str, *, kind: str, role: str, settings: Settings
) -> tuple[xr.DataArray, Parent]:
    """The volume store at ``url`` as a lazy DataArray, and it as a parent of the stage.

    Raises
    ------
    StoreError
        One line naming the store: not found, unfinished, or not of ``kind`` ("grey" or
        "labels", from its metadata).
    """
    options = settings.storage_options(url)
    parent = store_parent(url, role, storage_options=options)
    volume = open_volume(url, storage_options=options)
    if volume.ndim != 3:
        raise StoreError(f"{url}: has a channel axis; expected {_NEEDS[kind]} (z, y, x)")
    if volume.attrs.get("kind") != kind:
        raise StoreError(
            f"{url}: field 'ooc/kind' is {volume.attrs.get('kind')!r}; this stage needs "
            f"{_NEEDS[kind]} as its {role}"
        )
    return volume, parent


def phase_values_by_name(
    url: str, volume: xr.DataArray, names: dict[str, float]
) -> dict[int, float]:
    """``{phase name: value}`` -> ``{label value: value}`` using the store's phase names (a
    name made of digits is taken as the label value itself).

    Raises
    ------
    StoreError
        Naming the store, the unknown phase and the phases it has.
    """
    by_name = {name: int(value) for value, name in (volume.attrs.get("labels") or {}).items()}
    out = {}
    for name, value in names.items():
        if name not in by_name and name.isdigit():
            out[int(name)] = float(value)  # a label value given as such
            continue
        if name not in by_name:
            raise StoreError(
                f"{url}: has no phase {name!r}; its phases are {sorted(by_name)} "
                "(field 'ooc/labels')"
            )
        out[by_name[name]] = float(value)
    return out
