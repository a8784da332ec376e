"""The upscale stage and the scale chain: a finer scan's simulation becomes a phase of a coarser
scan's simulation, with lineage (a changed finer result makes the coarse simulation stale)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

import ooc
from ooc.config import Settings, load_settings
from ooc.errors import ConfigError, StoreError
from ooc.simulate import conductivity, permeability, property_map, tortuosity
from ooc.simulate.result import MILLIDARCY_M2
from ooc.stages import run_ingest, run_simulate, run_upscale
from ooc.stages.record import read_record
from ooc.stages.spec import example_spec, scan_plans
from ooc.upscale import from_block_map, from_results, rev_curve, upscale_blocks
from ooc.upscale.testing import finer_scan, two_scale_case

AXES = ("z", "y", "x")
FINER_VOXEL_M = (1.5e-7, 1e-7, 1e-7)  # anisotropic, as a FIB-SEM's: the axes differ
COARSE_VOXEL_M = (2e-6, 2e-6, 2e-6)
FINER_PHASES = {"0": "pore", "1": "solid"}
COARSE_PHASES = {"0": "pore", "1": "solid grain", "2": "micro-porous"}


def _ingest(
    root: Path, name: str, labels: np.ndarray, voxel_m: tuple, phases: dict, settings: Settings
) -> str:
    np.save(root / f"{name}.npy", labels)
    meta = {
        "sample_id": "two-scale",
        "modality": "FIB-SEM" if name == "finer" else "MicroCT",
        "kind": "labels",
        "voxel_size": [v * 1e9 for v in voxel_m],
        "unit": "nanometer",
        "labels": phases,
    }
    url = str(root / f"{name}.zarr")
    run_ingest(str(root / f"{name}.npy"), url, metadata=meta, settings=settings)
    return url


@pytest.fixture(scope="module")
def two_scale(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finer scan of the matrix (20³, pore 0 / solid 1) and a coarse scan (16³: pore, solid
    grain, micro-porous matrix) of one synthetic material; the finer scan simulated whole and
    upscaled into the coarse scan's micro-porous phase. Never changed by the tests."""
    root = tmp_path_factory.mktemp("upscale")
    settings = load_settings(data_dir=str(root / "data"))
    case = two_scale_case(1, shape=16, ratio=2, macro_fraction=0.2, grain_radius=(2.0, 4.0))
    finer = np.where(finer_scan(case, shape=20), 0, 1).astype(np.uint8)
    coarse = case.coarse_labels.astype(np.uint8)
    urls = {
        "finer": _ingest(root, "finer", finer, FINER_VOXEL_M, FINER_PHASES, settings),
        "coarse": _ingest(root, "coarse", coarse, COARSE_VOXEL_M, COARSE_PHASES, settings),
        "finer_sim": str(root / "finer-simulate.zarr"),
        "up": str(root / "upscale.zarr"),
    }
    run_simulate(urls["finer"], urls["finer_sim"], settings=settings, route="whole")
    run_upscale(
        urls["finer_sim"], urls["up"], settings=settings, phase="micro-porous", target="MicroCT"
    )
    return {"settings": settings, "finer_arr": finer, "coarse_arr": coarse, **urls}


def test_upscale_record_numbers_equal_from_results_on_the_same_solves(two_scale: dict) -> None:
    finer, vm = two_scale["finer_arr"], FINER_VOXEL_M
    ref = from_results(
        diffusion=tortuosity(finer, 0, voxel_size=vm),
        conduction=conductivity(finer, {0: 1.0, 1: 0.0}, voxel_size=vm),
        flow=permeability(finer, pore_label=0, voxel_size=vm),
    )
    record = read_record(two_scale["up"])
    numbers = record["numbers"]
    assert numbers["porosity"] == pytest.approx(ref.porosity, rel=1e-12)
    assert numbers["porosity"] == pytest.approx(float((finer == 0).mean()), rel=1e-12)
    for i, a in enumerate(AXES):
        assert numbers[f"relative_diffusivity_{a}"] == pytest.approx(
            ref.relative_diffusivity[i], rel=1e-9
        )
        assert numbers[f"conductivity_{a}"] == pytest.approx(ref.conductivity[i], rel=1e-9)
        assert numbers[f"permeability_m2_{a}"] == pytest.approx(ref.permeability[i], rel=1e-9)
        assert numbers[f"permeability_mD_{a}"] == pytest.approx(
            ref.permeability[i] / MILLIDARCY_M2, rel=1e-9
        )
    # the anisotropic voxel makes the axes differ; all of them percolate
    assert min(ref.relative_diffusivity) > 0
    assert len(set(ref.relative_diffusivity)) == 3
    summary = record["summary"]
    assert summary["stands_for"] == "micro-porous of MicroCT"
    assert (summary["phase"], summary["target"], summary["route"]) == (
        "micro-porous",
        "MicroCT",
        "whole",
    )
    assert [(p["url"], p["role"]) for p in record["parents"]] == [(two_scale["finer_sim"], "finer")]
    assert record["parents"][0]["digest"] == read_record(two_scale["finer_sim"])["digest"]
    stored = ooc.open_results(two_scale["up"])["upscale/properties"].to_dataset()
    tensor = stored["diffusivity_tensor"].values
    np.testing.assert_allclose(np.diag(tensor), ref.relative_diffusivity, rtol=1e-9)
    assert stored.attrs["porosity"] == pytest.approx(ref.porosity)


def test_coarse_simulation_takes_the_upscaled_values(two_scale: dict, tmp_path: Path) -> None:
    """The stage's coarse solve equals the solvers given the upscale store's numbers by hand."""
    numbers = read_record(two_scale["up"])["numbers"]
    d = tuple(numbers[f"relative_diffusivity_{a}"] for a in AXES)
    k = tuple(numbers[f"permeability_m2_{a}"] for a in AXES)
    out = run_simulate(
        two_scale["coarse"],
        str(tmp_path / "coarse.zarr"),
        settings=two_scale["settings"],
        route="whole",
        properties=["conductivity", "permeability"],
        # hand-typed values for the phase are overridden by the upscaled ones
        phase_values={"pore": 1.0, "micro-porous": 0.9},
        porous_phases={"micro-porous": 1e-12},
        upscaled={"micro-porous": two_scale["up"]},
    )
    assert out is not None
    coarse, vm = two_scale["coarse_arr"], COARSE_VOXEL_M
    cond = conductivity(coarse, {0: 1.0, 1: 0.0, 2: d}, voxel_size=vm)
    flow = permeability(coarse, pore_label=0, voxel_size=vm, porous_phases={2: k})
    s = out.summary
    for a in AXES:
        assert s["relative_conductivity"][a] == pytest.approx(cond.relative[a], rel=1e-9)
        assert s["permeability_m2"][a] == pytest.approx(flow.k_m2[a], rel=1e-9)
    assert s["solver"]["phase_values"]["2"] == list(d)
    assert s["solver"]["porous_phases"]["2"] == list(k)
    # the sub-resolution phase conducts: more than the resolved pore alone, less than all pore
    alone = conductivity(coarse, {0: 1.0, 1: 0.0, 2: 0.0}, voxel_size=vm)
    assert all(alone.relative[a] < s["relative_conductivity"][a] < 1 for a in AXES)
    fractions = np.bincount(coarse.ravel(), minlength=3) / coarse.size
    assert s["total_porosity"] == pytest.approx(fractions[0] + fractions[2] * numbers["porosity"])
    assert s["upscaled"]["micro-porous"]["fraction"] == pytest.approx(fractions[2])
    roles = {p["role"]: p["url"] for p in out.record["parents"]}
    assert roles == {"labels": two_scale["coarse"], "upscaled:micro-porous": two_scale["up"]}


def test_changed_finer_result_makes_the_coarse_simulation_stale(
    two_scale: dict, tmp_path: Path
) -> None:
    settings = two_scale["settings"]
    sim, up, coarse = (str(tmp_path / f"{n}.zarr") for n in ("finer-sim", "up", "coarse"))

    def chain(block_shape: int) -> list:
        return [
            run_simulate(
                two_scale["finer"],
                sim,
                settings=settings,
                route="whole",
                properties=["tortuosity"],
                block_shape=block_shape,
            ),
            run_upscale(sim, up, settings=settings, phase="micro-porous", target="MicroCT"),
            run_simulate(
                two_scale["coarse"],
                coarse,
                settings=settings,
                route="whole",
                properties=["conductivity"],
                upscaled={"micro-porous": up},
            ),
        ]

    first = chain(64)
    assert [o.skipped for o in chain(64)] == [True, True, True]
    redone = chain(32)  # another parameter of the finer simulation only
    assert [o.skipped for o in redone] == [False, False, False]
    for before, after in zip(first, redone, strict=True):
        assert before.record["digest"] != after.record["digest"]
    coarse_parent = {p["role"]: p["digest"] for p in redone[2].record["parents"]}
    assert coarse_parent["upscaled:micro-porous"] == redone[1].record["digest"]
    # the finer numbers are the same (block_shape does not enter a whole solve), so are these
    assert redone[2].summary["relative_conductivity"] == first[2].summary["relative_conductivity"]


def test_finer_scan_with_upscaled_phase_passes_up_its_conduction(
    two_scale: dict, tmp_path: Path
) -> None:
    """A middle scale (simulated with an upscaled phase) passes up its whole D_eff/D0 - the
    conduction solve with the phase, not its pore-only tortuosity - and its total porosity."""
    settings = two_scale["settings"]
    sim, up = str(tmp_path / "middle.zarr"), str(tmp_path / "middle-up.zarr")
    middle = run_simulate(
        two_scale["coarse"],
        sim,
        settings=settings,
        route="whole",
        properties=["tortuosity", "conductivity"],
        upscaled={"micro-porous": two_scale["up"]},
    )
    out = run_upscale(sim, up, settings=settings, phase="matrix", target="Coarsest")
    assert middle is not None
    assert out is not None
    s = out.summary
    assert s["upscaled_in_finer"] == ["micro-porous"]
    assert s["porosity"] == pytest.approx(middle.summary["total_porosity"])
    for a in AXES:
        whole = middle.summary["relative_conductivity"][a]  # the pore phase's value is 1
        assert s["relative_diffusivity"][a] == pytest.approx(whole, rel=1e-9)
        assert s["relative_diffusivity"][a] > middle.summary["relative_diffusivity"][a]
        assert s["tortuosity"][a] == pytest.approx(s["porosity"] / whole, rel=1e-9)


def test_finer_laminate_impermeable_along_z(two_scale: dict, tmp_path: Path) -> None:
    """Pore slabs normal to z: D_eff/D0 is 0 along z and the porosity along y and x (parallel
    laminate); the coarse Brinkman solve takes k_z = 1e-9 of the largest k (a finite drag)."""
    settings = two_scale["settings"]
    laminate = np.where(np.arange(12)[:, None, None] % 4 < 2, 0, 1) * np.ones(
        (12, 12, 12), np.uint8
    )
    finer = _ingest(
        tmp_path, "finer", laminate.astype(np.uint8), FINER_VOXEL_M, FINER_PHASES, settings
    )
    sim, up = str(tmp_path / "sim.zarr"), str(tmp_path / "up.zarr")
    run_simulate(
        finer, sim, settings=settings, route="whole", properties=["tortuosity", "permeability"]
    )
    n = run_upscale(sim, up, settings=settings, phase="micro-porous", target="MicroCT").record[
        "numbers"
    ]
    assert n["porosity"] == 0.5
    assert n["relative_diffusivity_z"] == 0.0
    assert n["relative_diffusivity_y"] == pytest.approx(0.5, rel=1e-4)
    assert n["relative_diffusivity_x"] == pytest.approx(0.5, rel=1e-4)
    assert n["permeability_m2_z"] == 0.0
    assert n["permeability_m2_y"] == pytest.approx(n["permeability_m2_x"], rel=1e-3)
    out = run_simulate(
        two_scale["coarse"],
        str(tmp_path / "coarse.zarr"),
        settings=settings,
        route="whole",
        properties=["permeability"],
        upscaled={"micro-porous": up},
    )
    k = [n["permeability_m2_z"], n["permeability_m2_y"], n["permeability_m2_x"]]
    assert out.summary["upscaled"]["micro-porous"]["permeability_m2"] == dict(
        zip(AXES, k, strict=True)
    )
    assert out.summary["solver"]["porous_phases"]["2"] == [1e-9 * max(k), k[1], k[2]]
    assert out.summary["converged"]


def test_block_map_route_and_rev_curve(two_scale: dict, tmp_path: Path) -> None:
    settings, finer, vm = two_scale["settings"], two_scale["finer_arr"], FINER_VOXEL_M
    sim, up = str(tmp_path / "blocks.zarr"), str(tmp_path / "up.zarr")
    run_simulate(
        two_scale["finer"],
        sim,
        settings=settings,
        route="blocks",
        block_shape=10,
        properties=["tortuosity"],
    )
    out = run_upscale(
        sim,
        up,
        settings=settings,
        phase="micro-porous",
        target="MicroCT",
        statistic="geometric",
        rev_block_sizes=[10, 20],
    )
    assert out is not None
    blocks = property_map(
        finer, block_shape=10, voxel_size=vm, pore_label=0, properties=["diffusivity"]
    )
    ref = from_block_map(blocks, statistic="geometric")
    n = out.record["numbers"]
    assert out.summary["route"] == "blocks"
    assert out.summary["n_blocks"] == 8
    assert n["porosity"] == pytest.approx(ref.porosity, rel=1e-9)
    for i, a in enumerate(AXES):
        assert n[f"relative_diffusivity_{a}"] == pytest.approx(
            ref.relative_diffusivity[i], rel=1e-9
        )
    rev = xr.open_zarr(up, group="upscale/rev", zarr_format=3, consolidated=False).compute()
    expected = rev_curve(finer, [10, 20], voxel_size=vm, properties=["diffusivity"], pore_label=0)
    assert list(rev["block_size"].values) == [10, 20]
    for var in (
        "relative_diffusivity_mean",
        "relative_diffusivity_cv",
        "porosity_mean",
        "n_blocks",
    ):
        np.testing.assert_allclose(rev[var].values, expected[var].values, rtol=1e-9)


def test_block_map_of_a_scan_with_upscaled_phase_passes_up_its_conduction(
    two_scale: dict, tmp_path: Path
) -> None:
    settings = two_scale["settings"]
    sim, up = str(tmp_path / "blocks.zarr"), str(tmp_path / "up.zarr")
    middle = run_simulate(
        two_scale["coarse"],
        sim,
        settings=settings,
        route="blocks",
        block_shape=8,
        properties=["conductivity"],
        upscaled={"micro-porous": two_scale["up"]},
    )
    out = run_upscale(
        sim, up, settings=settings, phase="matrix", target="Coarsest", rev_block_sizes=[]
    )
    assert middle is not None
    assert out is not None
    maps = ooc.open_results(sim)["simulate/blocks"].to_dataset()
    for a in AXES:  # mean over the 8 blocks of their conductivity (the pore phase's value is 1)
        mean = float(maps["conductivity"].sel(direction=a).mean())
        assert out.summary["relative_diffusivity"][a] == pytest.approx(mean, rel=1e-9)
    assert out.summary["porosity"] == pytest.approx(middle.summary["total_porosity"])
    assert out.summary["rev_block_sizes"] == []
    assert set(ooc.open_results(up)["upscale"].children) == {"properties"}


def _bad_call(case: str, two_scale: dict, tmp_path: Path) -> Callable[[], object]:
    """The call that must fail in ``case``, after its set-up (stores it needs)."""
    settings, coarse = two_scale["settings"], two_scale["coarse"]
    out, made = str(tmp_path / "out.zarr"), str(tmp_path / "made.zarr")
    sim = {"settings": settings, "route": "whole", "check_only": True}
    up = {"settings": settings, "phase": "p", "target": "T", "check_only": True}
    if case == "upscale a label store":
        return lambda: run_upscale(two_scale["finer"], out, **up)
    if case == "upscaled from a simulate store":
        return lambda: run_simulate(
            coarse, out, upscaled={"micro-porous": two_scale["finer_sim"]}, **sim
        )
    if case == "upscaled without permeability":
        run_simulate(
            two_scale["finer"], made, settings=settings, route="whole", properties=["tortuosity"]
        )
        run_upscale(
            made,
            str(tmp_path / "u.zarr"),
            settings=settings,
            phase="micro-porous",
            target="MicroCT",
        )
        return lambda: run_simulate(
            coarse, out, upscaled={"micro-porous": str(tmp_path / "u.zarr")}, **sim
        )
    if case == "upscaled unknown phase":
        return lambda: run_simulate(coarse, out, upscaled={"micro": two_scale["up"]}, **sim)
    if case == "upscaled pore phase":
        return lambda: run_simulate(coarse, out, upscaled={"pore": two_scale["up"]}, **sim)
    if case == "upscaled missing store":
        return lambda: run_simulate(coarse, out, upscaled={"micro-porous": made}, **sim)
    if case == "chain without conduction":
        run_simulate(
            coarse,
            made,
            settings=settings,
            route="whole",
            properties=["tortuosity"],
            upscaled={"micro-porous": two_scale["up"]},
        )
        return lambda: run_upscale(made, out, **up)
    run_simulate(
        two_scale["finer"],
        made,
        settings=settings,
        route="blocks",
        block_shape=10,
        properties=["tortuosity"],
    )
    return lambda: run_upscale(made, out, rev_block_sizes=[8, 24], **up)


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        (
            "upscale a label store",
            StoreError,
            r"field 'ooc_stage/stage' is 'ingest'; upscale reads a simulate",
        ),
        (
            "upscaled from a simulate store",
            StoreError,
            r"field 'ooc_stage/stage' is 'simulate'; the upscaled phase 'micro-porous' needs",
        ),
        (
            "upscaled without permeability",
            StoreError,
            r"'upscale/properties/permeability' is missing; the permeability of phase 'micro-porous'",
        ),
        ("upscaled unknown phase", StoreError, r"has no phase 'micro'; its phases are"),
        ("upscaled pore phase", ConfigError, r"upscaled: phase 'pore' is the pore phase"),
        (
            "upscaled missing store",
            StoreError,
            r"no store found \(expected the upscaled:micro-porous",
        ),
        (
            "chain without conduction",
            StoreError,
            r"has upscaled phases \['micro-porous'\] but no conduction solve",
        ),
        (
            "rev blocks too large",
            ConfigError,
            r"rev_block_sizes: \[8, 24\] exceed the finer scan's smallest edge 20",
        ),
    ],
)
def test_bad_inputs_one_line_errors(
    two_scale: dict, tmp_path: Path, case: str, error: type, match: str
) -> None:
    call = _bad_call(case, two_scale, tmp_path)
    with pytest.raises(error, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.zarr").exists()


# ---- the scale chain in a spec ---------------------------------------------------------------


def _spec() -> dict[str, Any]:
    """Three labels scans chained C -> B -> A (finest to coarsest)."""

    def scan(modality: str, phases: list[str]) -> dict[str, Any]:
        return {
            "source": f"{modality}.npy",
            "modality": modality,
            "voxel_size": 1.0,
            "kind": "labels",
            "phases": {str(i): p for i, p in enumerate(phases)},
        }

    return {
        "sample": "s",
        "scans": {
            "A": {**scan("MicroCT", ["pore", "grain", "micro"]), "simulate": {}},
            "B": {
                **scan("FIB-SEM", ["pore", "nano"]),
                "represents": {"scan": "A", "phase": "micro"},
            },
            "C": {**scan("TEM", ["pore", "solid"]), "represents": {"scan": "B", "phase": "nano"}},
        },
    }


def test_spec_chain_runs_finest_first_with_derived_simulations(tmp_path: Path) -> None:
    plans = scan_plans(_spec(), base=str(tmp_path), output=str(tmp_path / "out"))
    assert [p.name for p in plans] == ["C", "B", "A"]
    by = {p.name: p for p in plans}
    assert by["A"].upscaled == {"micro": by["B"].upscale}
    assert by["B"].upscaled == {"nano": by["C"].upscale}
    assert by["C"].upscaled == {}
    assert by["C"].upscale.endswith("/s/C/upscale.zarr")
    # A computes all three: B needs its conduction (it has a finer scan) and permeability
    assert by["B"].simulate == {"properties": ["conductivity", "permeability"]}
    assert by["C"].simulate == {"properties": ["tortuosity", "permeability"]}
    spec = _spec()
    spec["scans"]["A"]["simulate"] = {"properties": ["conductivity"]}
    by = {p.name: p for p in scan_plans(spec, base=str(tmp_path), output=str(tmp_path))}
    assert by["B"].simulate == {"properties": ["conductivity"]}
    assert by["C"].simulate == {"properties": ["tortuosity"]}


def test_example_spec_is_the_three_scale_chain(tmp_path: Path) -> None:
    spec = yaml.safe_load(example_spec(seed=0, shape=[32, 64, 256]))
    # the finer scans shrink with MicroCT (96³ and 64³ at its default 128³)
    assert spec["synthesize"]["fibsem_shape"] == [32, 48, 192]
    assert spec["synthesize"]["tem_shape"] == [24, 32, 128]
    assert "fibsem_shape" not in yaml.safe_load(example_spec(seed=0))["synthesize"]
    assert "phase_values" not in spec["scans"]["MicroCT"]["simulate"]
    assert "porous_phases" not in spec["scans"]["MicroCT"]["simulate"]
    plans = scan_plans(spec, base=str(tmp_path), output=str(tmp_path))
    assert [p.name for p in plans] == ["TEM", "FIB-SEM", "MicroCT"]
    by = {p.name: p for p in plans}
    assert by["MicroCT"].upscaled == {"micro-porous": by["FIB-SEM"].upscale}
    assert by["FIB-SEM"].upscaled == {"nano-porous solid": by["TEM"].upscale}


def _set(spec: dict, path: str, value: Any) -> None:
    *keys, last = path.split("/")
    node = spec["scans"]
    for key in keys:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize(
    ("edits", "match"),
    [
        (
            {"B/represents/scan": "X"},
            r"field 'scans/B/represents/scan': 'X' is not a scan of this spec \(its scans: A, B, C\)",
        ),
        (
            {"B/represents/phase": "nope"},
            r"field 'scans/B/represents/phase': 'nope' is not a phase of scan 'A' \(its phases: pore, grain, micro\)",
        ),
        (
            {"B/represents/phase": "pore"},
            r"field 'scans/B/represents/phase': 'pore' is the pore phase of scan 'A'",
        ),
        (
            {"B/represents/scan": "B", "B/represents/phase": "nano"},
            r"field 'scans/B/represents/scan': a scan cannot stand for a phase of itself",
        ),
        (
            {"A/represents": {"scan": "C", "phase": "solid"}},
            r"field 'scans/A/represents': A -> C -> B -> A is a cycle",
        ),
        (
            {"C/represents": {"scan": "A", "phase": "micro"}},
            r"field 'scans/C/represents': scan 'B' already stands for 'micro' of 'A'",
        ),
        (
            {"A/simulate": False},
            r"field 'scans/A/simulate': is false, but scan 'B' stands for its phase 'micro'",
        ),
        (
            {"C/simulate": False},
            r"field 'scans/C/simulate': is false, but the scan stands for 'nano' of 'B'",
        ),
        (
            {"B/simulate": {"properties": ["conductivity"]}},
            r"field 'scans/B/simulate/properties': lacks \['permeability'\], which the simulation of 'A' needs",
        ),
        (
            {"C/simulate": {"properties": ["permeability"]}},
            r"field 'scans/C/simulate/properties': lacks \['tortuosity'\]",
        ),
    ],
)
def test_spec_chain_errors_name_the_field(tmp_path: Path, edits: dict, match: str) -> None:
    from ooc.stages.spec import load_spec

    spec = _spec()
    for path, value in edits.items():
        _set(spec, path, value)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=f"^{path}: {match}") as caught:
        load_spec(str(path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("seed", [0, 1])
def test_block_route_gives_the_whole_volume_by_a_coarse_solve_over_its_map(
    seed: int, tmp_path: Path
) -> None:
    """The block route's whole-volume values are upscale_blocks of its stored map, under the
    whole route's keys, and near the whole route's answer: a 48³ two-phase volume (anisotropic
    voxels) in 16³ blocks, measured D_eff/D0 within 6.6 % and k within 9.5 % (seeds 0, 1)."""
    from scipy import ndimage

    settings = load_settings(data_dir=str(tmp_path / "data"))
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((48,) * 3), 1.5)
    labels = (field > np.quantile(field, 0.55)).astype(np.uint8)  # 55 % pore (label 0)
    url = _ingest(tmp_path, "finer", labels, FINER_VOXEL_M, FINER_PHASES, settings)
    kw = {"settings": settings, "properties": ["tortuosity", "permeability"]}
    whole = run_simulate(url, str(tmp_path / "whole.zarr"), route="whole", **kw).summary
    blocks_url = str(tmp_path / "blocks.zarr")
    blocks = run_simulate(url, blocks_url, route="blocks", block_shape=16, **kw)
    maps = ooc.open_results(blocks_url)["simulate/blocks"].to_dataset()
    got = blocks.summary["whole_volume"]
    numbers = blocks.record["numbers"]
    for quantity, key in (("relative_diffusivity", "relative_diffusivity"), ("permeability", "permeability_m2")):  # fmt: skip
        expected = upscale_blocks(maps, quantity).effective
        for a in AXES:
            assert got[key][a] == pytest.approx(expected[a], rel=1e-12)
            assert numbers[f"{key}_{a}"] == got[key][a]
            assert got[key][a] == pytest.approx(whole[key][a], rel=0.1 if "diff" in key else 0.15)
    for a in AXES:
        assert got["tau"][a] == pytest.approx(got["porosity"] / got["relative_diffusivity"][a])
        assert got["permeability_mD"][a] == pytest.approx(got["permeability_m2"][a] / MILLIDARCY_M2)
    assert got["porosity"] == pytest.approx(whole["porosity"], rel=1e-9)


def test_block_route_with_unequal_blocks_says_why_it_has_no_whole_volume_values(
    two_scale: dict, tmp_path: Path
) -> None:
    out = run_simulate(
        two_scale["finer"],
        str(tmp_path / "blocks.zarr"),
        settings=two_scale["settings"],
        route="blocks",
        block_shape=8,  # 20 = 8 + 8 + 4
        properties=["tortuosity"],
    )
    assert "blocks differ in size" in out.summary["whole_volume"]["skipped"]
    assert "tau_z" not in out.record["numbers"]
    assert "tau_median_z" in out.record["numbers"]
