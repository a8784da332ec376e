"""The main job's flow on a small synthetic sample, its re-run, and the Prefect deployments."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import yaml

import ooc
from ooc.catalog import search
from ooc.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def _ran(result: dict) -> set[tuple[str, str]]:
    """(scan, stage) pairs that did work in a run (the rest were skipped)."""
    return {
        (scan, stage)
        for scan, stages in result["scans"].items()
        for stage, out in stages.items()
        if isinstance(out, dict) and out.get("skipped") is False
    }


@pytest.mark.slow
def test_spec_runs_end_to_end_skips_when_rerun_and_reruns_only_what_changed(
    tmp_path: Path,
) -> None:
    from ooc.stages.spec import example_spec
    from ooc_flows.pipeline import pipeline_flow

    spec = yaml.safe_load(example_spec(seed=3, shape=[40, 48, 56]))
    spec["output"] = str(tmp_path / "out")
    # small finer scans keep the chain's solves short (96³ and 64³ by default)
    spec["synthesize"].update(fibsem_shape=[32, 32, 32], tem_shape=[24, 24, 24])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    overrides = {"data_dir": str(tmp_path / "data"), "n_workers": 2}
    first = pipeline_flow(spec=str(path), settings_overrides=overrides)
    micro = first["scans"]["MicroCT"]
    assert list(first["scans"]) == ["TEM", "FIB-SEM", "MicroCT"]  # the chain, finest first
    assert ("MicroCT", "segment") in _ran(first)
    assert (
        np.mean(list(micro["score"].values())) > 0.6
    )  # tiny scan; the 0.9 bar is in tests/segment
    measured = micro["measure"]["summary"]
    assert sum(measured["fractions"].values()) == pytest.approx(1.0)
    assert measured["objects"]["phase"] == "solid grain"
    assert Path(measured["objects_table"]).is_file()
    simulated = micro["simulate"]["summary"]
    assert simulated["route"] == "whole"
    assert simulated["converged"]
    assert all(t >= 1.0 for t in simulated["tau"].values())  # tau = eps D0 / D_eff >= 1
    assert all(k > 0 for k in simulated["permeability_mD"].values())
    # the segmentation is a label volume: measured and simulated, named, in the catalog
    seg = ooc.open_volume(micro["segment"]["url"])
    assert seg.attrs["kind"] == "labels"
    assert set(seg.attrs["labels"].values()) == {"pore", "solid grain", "micro-porous"}
    catalog_url = load_settings(**overrides).resolved_catalog_url
    found = search(catalog_url=catalog_url, sample="synthetic-3")
    assert set(found["stage"]) >= {"ingest", "train", "segment", "measure", "simulate", "upscale"}
    micro_sim = found[(found["stage"] == "simulate") & (found["modality"] == "MicroCT")]
    assert (micro_sim["permeability_mD_z"] > 0).all()
    assert "MicroCT" in first["text"]
    tree = ooc.open_results(sample="synthetic-3", catalog_url=catalog_url)
    assert set(tree.children) == {"MicroCT", "FIB-SEM", "TEM"}
    tau = tree["MicroCT/simulate/tortuosity"].to_dataset()["tortuosity"]
    assert float(tau.sel(direction="z")) == pytest.approx(simulated["tau"]["z"])
    assert tree["MicroCT/measure"].attrs["parents"] == [micro["segment"]["url"]]
    assert list(
        ooc.open_results(sample="synthetic-3", scale="TEM", catalog_url=catalog_url).children
    ) == ["TEM"]
    # the scale chain: each finer simulation upscaled into the next coarser scan's phase
    fib = first["scans"]["FIB-SEM"]
    for finer, coarse, phase in (
        ("TEM", "FIB-SEM", "nano-porous solid"),
        ("FIB-SEM", "MicroCT", "micro-porous"),
    ):
        up = first["scans"][finer]["upscale"]
        parents = first["scans"][coarse]["simulate"]["record"]["parents"]
        assert {
            "url": up["url"],
            "digest": up["record"]["digest"],
            "role": f"upscaled:{phase}",
        } in parents
        assert tree[f"{finer}/upscale"].attrs["parents"] == [
            first["scans"][finer]["simulate"]["url"]
        ]
        stored = tree[f"{finer}/upscale/properties"].to_dataset()
        passed = first["scans"][coarse]["simulate"]["summary"]["upscaled"][phase]
        for a in "zyx":
            d = float(stored["relative_diffusivity"].sel(direction=a))
            assert passed["relative_diffusivity"][a] == pytest.approx(d)
        assert f"{finer} -> {coarse} {phase}: porosity" in first["text"]
    # FIB-SEM passes up its whole D_eff/D0 (with the TEM phase), the one MicroCT conducts with
    fib_up = fib["upscale"]["summary"]
    assert fib_up["upscaled_in_finer"] == ["nano-porous solid"]
    for a in "zyx":
        assert fib_up["relative_diffusivity"][a] == pytest.approx(
            fib["simulate"]["summary"]["relative_conductivity"][a]
        )
    assert micro["simulate"]["summary"]["total_porosity"] > simulated["porosity"]

    stamps = {
        p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and "/c/" in str(p)
    }
    again = pipeline_flow(spec=str(path), settings_overrides=overrides)
    assert _ran(again) == set()
    assert again["scans"]["MicroCT"]["simulate"]["summary"] == simulated
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a re-run rewrote chunks"

    spec["scans"]["MicroCT"]["measure"]["connectivity"] = 26
    path.write_text(yaml.safe_dump(spec))
    changed = pipeline_flow(spec=str(path), settings_overrides=overrides)
    assert _ran(changed) == {("MicroCT", "measure")}

    # a changed finest result re-runs what was upscaled from it, up the chain
    spec["scans"]["TEM"]["simulate"]["block_shape"] = 32
    path.write_text(yaml.safe_dump(spec))
    finest = pipeline_flow(spec=str(path), settings_overrides=overrides)
    assert _ran(finest) == {
        ("TEM", "simulate"),
        ("TEM", "upscale"),
        ("FIB-SEM", "simulate"),
        ("FIB-SEM", "upscale"),
        ("MicroCT", "simulate"),
    }


def test_prefect_deployments_point_at_flows() -> None:
    from prefect import Flow

    config = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    assert {d["name"] for d in config["deployments"]} >= {"ingest", "run", "nightly-reprocess"}
    for deployment in config["deployments"]:
        module, name = deployment["entrypoint"].rsplit(".", 1)
        flow = getattr(importlib.import_module(module), name)
        assert isinstance(flow, Flow)
