"""One volume convention: the DataArray ``ooc.open_volume`` returns, or an array with geometry
keywords, is accepted alike by every public function that takes a volume."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import ooc
from ooc.errors import ConfigError
from ooc.io import ingest, open_reader
from ooc.measure import local_thickness, phase_connectivity, phase_fractions, surface_area
from ooc.metadata import VolumeMetadata
from ooc.volume import as_volume


@pytest.fixture(scope="module")
def labels_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("convention")
    rng = np.random.default_rng(0)
    labels = (rng.random((20, 24, 28)) > 0.55).astype(np.uint8)
    np.save(root / "labels.npy", labels)
    meta = VolumeMetadata(
        "c", "FIB-SEM", (30.0, 20.0, 20.0), "nm", "labels", {"0": "solid", "1": "pore"}
    )
    ingest(
        open_reader(str(root / "labels.npy")),
        str(root / "labels.zarr"),
        meta,
        chunks=(8, 8, 8),
        progress=False,
    )
    return str(root / "labels.zarr")


@pytest.mark.parametrize("measure", [phase_fractions, surface_area, phase_connectivity])
def test_measure_takes_the_opened_store_like_an_array_with_keywords(
    labels_store: str, measure
) -> None:
    volume = ooc.open_volume(labels_store)
    phases = {"solid": 0, "pore": 1}
    keyworded = measure(volume.data, voxel_size=(30.0, 20.0, 20.0), unit="nanometer", phases=phases)
    opened = measure(volume, phases=phases)
    for name in keyworded.data_vars:
        np.testing.assert_array_equal(opened[name].values, keyworded[name].values)
    assert opened.attrs.get("unit", "nanometer") == "nanometer"


def test_a_mask_of_an_opened_store_keeps_its_geometry(labels_store: str) -> None:
    volume = ooc.open_volume(labels_store)
    from_mask = local_thickness(volume == 1).compute()
    keyworded = local_thickness(volume.data == 1, voxel_size=(30.0, 20.0, 20.0)).compute()
    np.testing.assert_array_equal(from_mask, keyworded)


def test_an_array_without_geometry_is_refused() -> None:
    with pytest.raises(ValueError, match="give voxel_size"):
        phase_fractions(da.zeros((4, 4, 4), dtype=np.uint8))


@pytest.mark.parametrize(
    ("unit", "metres"), [("nanometer", 1e-9), ("um", 1e-6), ("µm", 1e-6), ("mm", 1e-3)]
)
def test_voxel_size_in_metres_from_any_unit(unit: str, metres: float) -> None:
    vol = as_volume(np.zeros((2, 3, 4)), voxel_size=(3.0, 2.0, 2.0), unit=unit)
    assert vol.voxel_size_m == pytest.approx((3 * metres, 2 * metres, 2 * metres))
    assert as_volume(np.zeros((2, 3, 4)), voxel_size=2.0, unit=unit).voxel_size == (2.0, 2.0, 2.0)


def test_voxel_units_have_no_metres() -> None:
    with pytest.raises(ConfigError, match="not a length"):
        _ = as_volume(np.zeros((2, 3, 4))).voxel_size_m


def test_opened_store_geometry_and_overrides(labels_store: str) -> None:
    vol = as_volume(ooc.open_volume(labels_store))
    assert vol.voxel_size == (30.0, 20.0, 20.0)
    assert vol.unit == "nanometer"
    assert vol.voxel_size_m == pytest.approx((30e-9, 20e-9, 20e-9))
    assert Path(vol.attrs["url"]).name == "labels.zarr"
    assert as_volume(
        ooc.open_volume(labels_store), voxel_size=1.0, unit="um"
    ).voxel_size_m == pytest.approx((1e-6,) * 3)


def test_solvers_take_the_opened_store_in_its_unit(labels_store: str) -> None:
    from ooc.simulate import conductivity, permeability, property_map, tortuosity

    volume = ooc.open_volume(labels_store)  # nanometres
    metres = (30e-9, 20e-9, 20e-9)
    array = volume.values
    tau = tortuosity(volume, 1, direction="x")
    # equal to rounding (the solver's parallel sums are not ordered)
    assert tau.tau["x"] == pytest.approx(
        tortuosity(array, 1, voxel_size=metres, direction="x").tau["x"], rel=1e-9
    )
    cond = conductivity(volume, {0: 0.1, 1: 1.0}, direction="z")
    expected = conductivity(array, {0: 0.1, 1: 1.0}, voxel_size=metres, direction="z").relative
    assert cond.relative["z"] == pytest.approx(expected["z"], rel=1e-9)
    perm = permeability(volume, pore_label=1, direction="y")
    keyworded = permeability(array, pore_label=1, voxel_size=metres, direction="y")
    assert perm.k_m2["y"] == pytest.approx(keyworded.k_m2["y"], rel=1e-9)
    assert perm.k_m2["y"] > 0
    maps = property_map(volume, block_shape=10, pore_label=1, properties=("diffusivity",))
    np.testing.assert_allclose(maps["z"].values, [5 * 30e-9, 15 * 30e-9], rtol=1e-12)  # centres, m
