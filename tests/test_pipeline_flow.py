"""The main job's flow on a small synthetic sample, its re-run, and the Prefect deployments."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

import ooc
from ooc.catalog import search
from ooc.config import load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pipeline_flow_end_to_end_and_rerun(tmp_path: Path) -> None:
    from ooc_flows.pipeline import pipeline_flow

    overrides = {"data_dir": str(tmp_path), "n_workers": 2}
    summary = pipeline_flow(
        seed=3, shape=[40, 48, 56], sample_id="tiny", settings_overrides=overrides
    )
    assert [r["scale"] for r in summary["rows"]] == ["MicroCT", "FIB-SEM", "TEM"]
    assert all(r["matches_generator"] for r in summary["rows"])
    micro = summary["rows"][0]
    assert micro["shape"] == [40, 48, 56]
    assert abs(sum(micro["fractions"]) - 1) < 1e-12
    for row in summary["rows"]:  # measured on the stored labels = the generator's accounting
        assert list(summary["measure"][row["scale"]]["fractions"].values()) == row["fractions"]
    assert summary["measure"]["MicroCT"]["objects"]["phase"] == "solid grain"
    assert Path(summary["measure"]["MicroCT"]["objects_table"]).is_file()
    segmented = summary["segment"]
    assert segmented["scribbled_fraction"] <= 0.001
    assert segmented["mean_iou"] > 0.6  # a tiny scan with few scribbles; the 0.9 bar is in tests/segment
    simulated = summary["simulate"]
    assert simulated["route"] == "whole"
    assert simulated["converged"]
    assert all(t >= 1.0 for t in simulated["tau"].values())  # tau = eps D0 / D_eff >= 1
    assert all(k > 0 for k in simulated["permeability_mD"].values())
    vol = ooc.open_volume(summary["stores"]["MicroCT"]["grey"])
    assert vol.attrs["history"][0]["run_id"]
    entries = search(catalog_url=load_settings(**overrides).resolved_catalog_url, sample="tiny")
    assert len(entries) == 6

    stamps = {
        p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and "/c/" in str(p)
    }
    again = pipeline_flow(
        seed=3, shape=[40, 48, 56], sample_id="tiny", settings_overrides=overrides
    )
    assert any("results.zarr" in str(p) for p in stamps)
    assert again["rows"] == summary["rows"]
    # as JSON: with no grain wholly inside this tiny volume, object sizes are NaN (NaN != NaN)
    assert json.dumps(again["measure"]) == json.dumps(summary["measure"])
    assert again["simulate"] == simulated
    assert again["segment"] == segmented
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a re-run rewrote chunks"


def test_prefect_deployments_point_at_flows() -> None:
    from prefect import Flow

    config = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    assert {d["name"] for d in config["deployments"]} >= {"ingest", "pipeline", "nightly-reprocess"}
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        assert (REPO / path).is_file(), path
        flow = getattr(importlib.import_module(f"ooc_flows.{Path(path).stem}"), name)
        assert isinstance(flow, Flow)
        assert deployment["work_pool"]["name"] == "ooc"
