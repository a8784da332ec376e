"""Length units: every name users type maps to the OME-NGFF name ooc stores, at every entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

from ooc.errors import MetadataError
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata, load_schema, validate
from ooc.units import NGFF_UNITS, metres_per_unit, ngff_unit, unit_symbol

TYPED = {
    "nm": ("nanometer", 1e-9),
    "nanometer": ("nanometer", 1e-9),
    "nanometre": ("nanometer", 1e-9),
    "Nanometres": ("nanometer", 1e-9),
    "um": ("micrometer", 1e-6),
    "\u00b5m": ("micrometer", 1e-6),  # micro sign
    "\u03bcm": ("micrometer", 1e-6),  # Greek small letter mu
    "micrometer": ("micrometer", 1e-6),
    "micrometre": ("micrometer", 1e-6),
    "microns": ("micrometer", 1e-6),
    " µm ": ("micrometer", 1e-6),
    "mm": ("millimeter", 1e-3),
    "millimetre": ("millimeter", 1e-3),
    "MILLIMETER": ("millimeter", 1e-3),
    "m": ("meter", 1.0),
    "metre": ("meter", 1.0),
    "meters": ("meter", 1.0),
}
DOC = {"sample_id": "rock-1", "modality": "MicroCT", "kind": "grey", "voxel_size": [2, 2, 2]}


@pytest.mark.parametrize(("typed", "expected"), list(TYPED.items()))
def test_typed_names_map_to_the_ngff_name(typed: str, expected: tuple[str, float]) -> None:
    assert ngff_unit(typed) == expected[0]
    assert metres_per_unit(typed) == expected[1]


def test_ngff_names_are_the_schema_units() -> None:
    assert sorted(NGFF_UNITS) == sorted(load_schema("volume")["properties"]["unit"]["enum"])
    assert {ngff_unit(name) for name in NGFF_UNITS} == set(NGFF_UNITS)


@pytest.mark.parametrize("typed", ["furlong", "NM", "M", "Mm", "µ", "", "micro meter"])
def test_unknown_unit_names_the_value_and_the_accepted_names(typed: str) -> None:
    with pytest.raises(MetadataError) as caught:
        ngff_unit(typed)
    assert str(caught.value) == (
        f"unit {typed!r} is not a length unit ooc knows; expected nanometer (nm, nanometre); "
        "micrometer (\u00b5m, um, \u03bcm, micrometre); millimeter (mm, millimetre); meter (m, metre)"
    )
    assert metres_per_unit(typed) is None


@given(st.text(max_size=12))
def test_any_text_is_mapped_to_an_ngff_name_or_refused(text: str) -> None:
    try:
        name = ngff_unit(text)
    except MetadataError:
        return
    assert name in NGFF_UNITS
    assert ngff_unit(name) == name


@pytest.mark.parametrize(
    ("unit", "symbol"),
    [
        ("micrometer", "\u00b5m"),
        ("um", "\u00b5m"),
        ("nanometre", "nm"),
        ("meter", "m"),
        ("voxel", "voxel"),
    ],
)
def test_unit_symbol_for_display(unit: str, symbol: str) -> None:
    assert unit_symbol(unit) == symbol


@pytest.mark.parametrize("typed", ["um", "\u00b5m", "\u03bcm", "nm", "millimetre", "m"])
def test_metadata_from_a_file_stores_the_ngff_name(typed: str) -> None:
    meta = VolumeMetadata.from_dict({**DOC, "unit": typed}, source="meta.json")
    assert meta.unit == TYPED[typed][0]
    assert meta.to_dict()["unit"] == TYPED[typed][0]
    validate({**DOC, "unit": typed}, "volume", source="meta.json")  # as the ingest flow checks


def test_metadata_made_in_python_stores_the_ngff_name() -> None:
    assert VolumeMetadata("rock-1", "MicroCT", (2.0, 2.0, 2.0), "µm").unit == "micrometer"


def test_unknown_unit_is_reported_with_the_other_bad_fields() -> None:
    with pytest.raises(MetadataError) as caught:
        VolumeMetadata.from_dict({**DOC, "modality": "XRM", "unit": "furlong"}, source="m.json")
    message = str(caught.value)
    assert message.startswith("m.json: invalid volume")
    modality = message.index("field 'modality': 'XRM' is not one of")
    unit = message.index(
        "field 'unit': unit 'furlong' is not a length unit ooc knows; expected nanometer (nm,"
    )
    assert modality < unit


def test_ingested_store_records_the_ngff_name(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6))
    meta = VolumeMetadata.from_dict({**DOC, "unit": "\u03bcm"}, source="command line")
    out = str(tmp_path / "out.zarr")
    ingest(open_reader(tmp_path / "in.npy"), out, meta, progress=False)
    attrs = json.loads(json.dumps(zarr.open_group(out, mode="r").attrs.asdict()))
    assert attrs["ooc"]["unit"] == "micrometer"
    axes = attrs["ome"]["multiscales"][0]["axes"]
    assert [a["unit"] for a in axes] == ["micrometer"] * 3
