"""compare_samples, format_comparison and plot_comparison on two small samples (conftest)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ooc
from ooc.errors import ConfigError
from ooc.report import compare_samples, format_comparison, plot_comparison
from ooc.stages.record import read_record

ROWS = [("rep-a", "MicroCT"), ("rep-a", "FIB-SEM"), ("rep-b", "MicroCT")]
LABELS = {
    ("rep-a", "MicroCT"): ("segmentation.zarr", 1),  # (label store, pore label value)
    ("rep-a", "FIB-SEM"): ("volume.zarr", 0),
    ("rep-b", "MicroCT"): ("volume.zarr", 1),
}


@pytest.fixture(scope="module")
def table(samples) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return compare_samples(["rep-a", "rep-b", "rep-a"], catalog_url=samples.catalog_url)


def test_one_row_per_sample_and_scale_coarsest_first(table: pd.DataFrame) -> None:
    assert list(zip(table["sample"], table["scale"], strict=True)) == ROWS
    assert list(table["unit"]) == ["micrometer", "nanometer", "micrometer"]
    assert table[["voxel_z", "voxel_y", "voxel_x"]].values.tolist() == [
        [2, 2, 2],
        [30, 20, 20],
        [2, 2, 2],
    ]
    assert list(table.columns[:7]) == [
        "sample", "scale", "unit", "voxel_z", "voxel_y", "voxel_x", "porosity",
    ]  # fmt: skip
    taus = [c for c in table.columns if c.startswith("tau_")]
    assert taus == ["tau_z", "tau_y", "tau_x"]


@pytest.mark.parametrize(("sample", "scale"), ROWS)
def test_numbers_are_the_stores_records(samples, table, sample: str, scale: str) -> None:  # type: ignore[no-untyped-def]
    row = table[(table["sample"] == sample) & (table["scale"] == scale)].iloc[0]
    measure = read_record(samples.stores[(sample, scale, "measure.zarr")])["numbers"]
    simulate_url = samples.stores.get((sample, scale, "simulate.zarr"))
    simulate = read_record(simulate_url)["numbers"] if simulate_url else {}
    expected = {**simulate, **measure}  # porosity: the measured one
    got = {k: row[k] for k in table.columns[6:] if pd.notna(row[k])}
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
    # and against a count of the voxels themselves
    store, pore = LABELS[(sample, scale)]
    labels = ooc.open_volume(samples.stores[(sample, scale, store)]).values
    assert row["porosity"] == pytest.approx(np.mean(labels == pore), rel=1e-12)
    if simulate:
        assert row["porosity"] == pytest.approx(simulate["porosity"], rel=1e-12)
        tree = ooc.open_results(sample=sample, scale=scale, catalog_url=samples.catalog_url)
        tau = tree[f"{scale}/simulate/tortuosity"].to_dataset()["tortuosity"]
        for axis in "zyx":
            value = float(tau.sel(direction=axis))
            assert math.isfinite(value) is pd.notna(row[f"tau_{axis}"])
            if math.isfinite(value):
                assert row[f"tau_{axis}"] == pytest.approx(value, rel=1e-12)


def test_a_property_one_sample_lacks_is_missing_not_zero(table: pd.DataFrame) -> None:
    # rep-b was simulated without permeability; the FIB-SEM scan was not simulated at all
    assert table["permeability_mD_z"].notna().tolist() == [True, False, False]
    assert table["relative_conductivity_x"].notna().tolist() == [True, False, True]


def test_unknown_sample_is_refused(samples) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"'rep-z'.*no results"):
        compare_samples(["rep-a", "rep-z"], catalog_url=samples.catalog_url)


def test_format_comparison_prints_every_number(table: pd.DataFrame) -> None:
    text = format_comparison(table)
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split() == ["sample", "rep-a", "rep-a", "rep-b"]
    assert lines[1].split() == ["scale", "MicroCT", "FIB-SEM", "MicroCT"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert set(rows) == set(table.columns) - {"sample", "scale"}
    assert rows["porosity"] == [f"{v:.4g}" for v in table["porosity"]]
    assert rows["permeability_mD_z"][1:] == ["-", "-"]
    assert rows["unit"] == ["micrometer", "nanometer", "micrometer"]


_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.text("ab-", min_size=1, max_size=6)
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.text("xyz", min_size=1, max_size=8), _cells, _cells), min_size=1))
def test_format_comparison_is_aligned_for_any_values(
    rows: list[tuple[str, object, object]],
) -> None:
    table = pd.DataFrame(
        [{"sample": s, "scale": "MicroCT", "first": a, "second": b} for s, a, b in rows]
    )
    lines = format_comparison(table).splitlines()
    assert len(lines) == 3 + 2
    assert len({len(line) for line in lines}) == 1
    for line, column in zip(lines[3:], ["first", "second"], strict=True):
        name, *cells = line.split()
        assert name == column
        for cell, value in zip(cells, table[column], strict=True):
            if isinstance(value, float):
                assert cell == ("-" if not math.isfinite(value) else f"{value:.4g}")
            else:
                assert cell == value


def test_plot_comparison_draws_properties_and_distributions(samples, table, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trees = {
        s: ooc.open_results(sample=s, catalog_url=samples.catalog_url) for s in ("rep-a", "rep-b")
    }
    path = plot_comparison(table, trees, tmp_path / "compare.png")
    assert path == tmp_path / "compare.png"
    image = mpimg.imread(path)[..., :3]
    assert image.shape[0] >= 600
    assert image.shape[1] >= 1000
    top, bottom = image[: image.shape[0] // 2], image[image.shape[0] // 2 :]
    for half in (top, bottom):  # properties above, size distributions below
        assert half.std() > 0.05
        assert (half.min(axis=2) < 0.9).mean() > 0.02  # more than a few lines of text
