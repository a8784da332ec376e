"""Conditions on key numbers: the grammar, its boundaries, its refusals, and (hypothesis) that
SQL answers as a brute-force evaluation in Python does, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ooc.catalog import register, search
from ooc.catalog.conditions import Condition, parse_condition
from ooc.errors import ConfigError

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]
SAMPLES = {  # sample -> key numbers
    "s1": {"porosity": 0.1, "permeability_mD_z": 0.5, "permeability_m2_z": 4.9e-16},
    "s2": {"porosity": 0.2, "permeability_mD_z": 1.0, "permeability_m2_z": 9.9e-16},
    "s3": {"porosity": 0.3, "permeability_mD_z": 1404.0, "permeability_m2_z": 1.4e-12},
    "s4": {"porosity": 0.4, "permeability_mD_z": 3.0},
    "s5": {"porosity": 0.5, "tau_z": math.inf},
    "s6": {"porosity": None, "tau_z": 2.5},  # None: NaN, a number that could not be computed
}


@pytest.fixture(scope="module", params=BACKENDS)
def catalog(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    new_catalog: Callable[[str | None], str],
    make_store: Callable[..., dict[str, Any]],
) -> str:
    """One results store per sample of :data:`SAMPLES`, with its key numbers."""
    server = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    url = new_catalog(server)
    root = tmp_path_factory.mktemp("where")
    for sample, numbers in SAMPLES.items():
        path = root / f"{sample}.zarr"
        make_store(path, stage="measure", store_kind="results", sample_id=sample, numbers=numbers)
        register(str(path), catalog_url=url)
    return url


def _found(catalog: str, where: str | list[str]) -> list[str]:
    return sorted(search(catalog_url=catalog, where=where)["sample_id"])


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("porosity > 0.2", ["s3", "s4", "s5"]),
        ("porosity >= 0.2", ["s2", "s3", "s4", "s5"]),
        ("porosity < 0.2", ["s1"]),
        ("porosity<=.2", ["s1", "s2"]),
        ("porosity == 0.3", ["s3"]),
        ("porosity = 0.3", ["s3"]),
        ("porosity != 0.3", ["s1", "s2", "s4", "s5"]),  # NaN matches nothing
        ("0.2 <= porosity <= 0.4", ["s2", "s3", "s4"]),
        ("0.2 < porosity < 0.4", ["s3"]),
        ("0.2 < porosity <= 0.4", ["s3", "s4"]),
        ("0.4 >= porosity > 0.2", ["s3", "s4"]),
        ("1 < permeability_mD_z", ["s3", "s4"]),
        ("1 <= permeability_mD_z", ["s2", "s3", "s4"]),
        ("permeability_mD_z > 1", ["s3", "s4"]),
        ("permeability_m2_z > 1e-15", ["s3"]),
        ("permeability_m2_z >= 9.9E-16", ["s2", "s3"]),
        ("-1 < porosity < +0.15", ["s1"]),
        ("tau_z > 1000", ["s5"]),  # inf: a closed pore space
        (["permeability_mD_z > 1", "0.2 <= porosity <= 0.4"], ["s3", "s4"]),
        (["permeability_mD_z > 1", "porosity > 0.35"], ["s4"]),
        (["tau_z > 0", "porosity > 0"], ["s5"]),
    ],
)
def test_where_filters_at_the_boundaries(
    catalog: str, where: str | list[str], expected: list[str]
) -> None:
    assert _found(catalog, where) == expected


def test_where_combines_with_other_filters(catalog: str) -> None:
    found = search(catalog_url=catalog, sample="s*", modality="MicroCT", where="porosity > 0.1")
    assert sorted(found["sample_id"]) == ["s2", "s3", "s4", "s5"]
    assert list(search(catalog_url=catalog, sample="s3", where="porosity > 0.1")["sample_id"]) == [
        "s3"
    ]
    assert search(catalog_url=catalog, stage="segment", where="porosity > 0.1").empty


def test_number_columns_are_those_of_the_stores_found(catalog: str) -> None:
    found = search(catalog_url=catalog, where="tau_z < 3")
    assert list(found["sample_id"]) == ["s6"]
    assert found.columns[-2:].tolist() == ["porosity", "tau_z"]
    assert math.isnan(found["porosity"].item())
    assert found["tau_z"].item() == 2.5
    everything = search(catalog_url=catalog)
    assert sorted(everything.columns[-4:]) == sorted(
        ["permeability_mD_z", "permeability_m2_z", "porosity", "tau_z"]
    )


@pytest.mark.parametrize(
    "where",
    [
        "porosity >",
        "> 0.2",
        "porosity",
        "porosity > abc",
        "porosity > 0.2 and permeability_mD_z > 1",
        "porosity > 1 or 1 = 1",
        "porosity > 0; DROP TABLE stores",
        "porosity > '0'",
        "0.2 <= porosity >= 0.4",
        "0.2 < porosity == 0.4",
        "1 < 2",
        "porosity > inf",
        "porosity > 1e999",
        "porosity > 0x10",
        "porosity > 1.2.3",
        "2porosity > 1",
        "__import__('os').system('true') > 1",
        "",
    ],
)
def test_bad_conditions_are_refused_naming_them(catalog: str, where: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"where condition {where!r}")):
        search(catalog_url=catalog, where=["porosity > 0", where])


def test_a_condition_on_an_unknown_number_is_refused(catalog: str) -> None:
    with pytest.raises(ConfigError, match="no catalogued store has a number named 'porosty'"):
        search(catalog_url=catalog, where="porosty > 0.2")


VALUES = [-1.0, 0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 1404.0, 4.9e-16, 1.4e-12]
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}  # fmt: skip


def _holds(condition: Condition, value: float | None) -> bool:
    """The reference: a missing or NaN number meets no condition."""
    if value is None or math.isnan(value):
        return False
    return all(_OPS[op](value, bound) for op, bound in condition.bounds)


bound = st.one_of(st.sampled_from(VALUES), st.floats(-2, 2000, allow_subnormal=False))
name = st.sampled_from(["porosity", "permeability_mD_z", "tau_z"])
single = st.builds(
    lambda n, op, v, flip: f"{v!r} {op} {n}" if flip else f"{n} {op} {v!r}",
    name,
    st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "="]),
    bound,
    st.booleans(),
)
ranged = st.builds(
    lambda lo, n, hi, ops: f"{lo!r} {ops[0]} {n} {ops[1]} {hi!r}",
    bound,
    name,
    bound,
    st.sampled_from(
        [("<", "<"), ("<=", "<"), ("<", "<="), ("<=", "<="), (">", ">="), (">=", ">=")]
    ),
)


@settings(max_examples=40, deadline=None)
@given(conditions=st.lists(st.one_of(single, ranged), min_size=1, max_size=2))
def test_sql_answers_as_brute_force(catalog: str, conditions: list[str]) -> None:
    parsed = [parse_condition(c) for c in conditions]
    expected = sorted(
        sample
        for sample, numbers in SAMPLES.items()
        if all(_holds(c, numbers.get(c.name)) for c in parsed)
    )
    assert _found(catalog, conditions) == expected
