"""deploy/prefect.yaml against a real Prefect server: deploy every flow to a process work pool,
run one through a worker, and check the schedules the server holds."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import yaml
import zarr

import ooc
from ooc.catalog import search
from ooc.config import Settings

pytestmark = pytest.mark.service

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deploy" / "prefect.yaml"


@pytest.fixture(scope="module")
def deployed(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The YAML's deployments, keyed by name, once ``prefect deploy --all`` has created them
    (from a folder outside the checkout: entrypoints are modules of the installed package)."""
    doc = yaml.safe_load(PREFECT_YAML.read_text())
    for pool in sorted({d["work_pool"]["name"] for d in doc["deployments"]}):
        prefect_server.cli("work-pool", "create", pool, "--type", "process")
    elsewhere = tmp_path_factory.mktemp("deploy-cwd")
    prefect_server.cli("deploy", "--all", "--prefect-file", str(PREFECT_YAML), cwd=elsewhere)
    return {d["name"]: d for d in doc["deployments"]}


def _on_server(prefect_server: Any) -> dict[str, dict[str, Any]]:
    """The server's deployments by name, each with its flow's name under ``flow_name``."""
    found = {}
    for d in prefect_server.api("POST", "/deployments/filter", {}):
        d["flow_name"] = prefect_server.api("GET", f"/flows/{d['flow_id']}")["name"]
        found[d["name"]] = d
    return found


def test_every_deployment_in_the_yaml_is_on_the_server(
    prefect_server: Any, deployed: dict[str, Any]
) -> None:
    server = _on_server(prefect_server)
    assert set(server) == set(deployed)
    for name, spec in deployed.items():
        got = server[name]
        assert got["entrypoint"] == spec["entrypoint"], name
        assert got["work_pool_name"] == spec["work_pool"]["name"], name
        assert got["pull_steps"] == [], name  # code comes from the installed package
        assert got["job_variables"] == spec["work_pool"]["job_variables"], name
        assert got["tags"] == spec["tags"], name
        assert got["global_concurrency_limit"]["limit"] == spec["concurrency_limit"], name


def _scheduled(deployed: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The YAML's schedules, by deployment name (at least one deployment has one)."""
    scheduled = {n: s["schedules"] for n, s in deployed.items() if s.get("schedules")}
    assert scheduled, "prefect.yaml holds no scheduled deployment"
    return scheduled


def test_cron_schedules_are_parsed(prefect_server: Any, deployed: dict[str, Any]) -> None:
    server = _on_server(prefect_server)
    for name, schedules in _scheduled(deployed).items():
        got = [
            (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
            for s in server[name]["schedules"]
        ]
        assert got == [(s["cron"], s["timezone"], s["active"]) for s in schedules]


def test_the_server_schedules_runs_at_the_cron_times(
    prefect_server: Any, deployed: dict[str, Any]
) -> None:
    server = _on_server(prefect_server)
    for name, schedules in _scheduled(deployed).items():
        assert [s["cron"] for s in schedules] == ["0 2 * * *"]  # the times checked below
        query = {"deployments": {"id": {"any_": [server[name]["id"]]}}}
        deadline = time.monotonic() + 60
        while not (runs := prefect_server.api("POST", "/flow_runs/filter", query)):
            assert time.monotonic() < deadline, f"no runs scheduled for {name} after 60 s"
            log = (prefect_server.logs / "server.log").read_text(errors="replace")
            failed = [ln for ln in log.splitlines() if "ERROR" in ln and "schedule_deploy" in ln]
            assert not failed, f"the server's scheduler failed:\n{log[-3000:]}"
            time.sleep(1)
        starts = [dt.datetime.fromisoformat(r["expected_start_time"]) for r in runs]
        assert {r["state_type"] for r in runs} == {"SCHEDULED"}
        assert {(t.astimezone(dt.UTC).hour, t.minute, t.second) for t in starts} == {(2, 0, 0)}
        assert min(starts) > dt.datetime.now(dt.UTC)


def test_ingest_deployment_runs_on_a_worker(
    prefect_server: Any, deployed: dict[str, Any], tmp_path: Path
) -> None:
    volume = np.random.default_rng(7).integers(0, 60000, size=(6, 10, 12), dtype=np.uint16)
    stack = tmp_path / "stack"
    stack.mkdir()
    for z, plane in enumerate(volume):
        tifffile.imwrite(stack / f"z{z:02d}.tif", plane)
    data = tmp_path / "data"
    output = data / "scan.zarr"
    params = {
        "source": str(stack),
        "output": str(output),
        "metadata": {
            "sample_id": "deployed-1",
            "modality": "MicroCT",
            "kind": "grey",
            "voxel_size": [2.0, 1.0, 1.0],
            "unit": "micrometer",
        },
        "chunks": [4, 8, 8],
    }
    deployment = _on_server(prefect_server)["ingest"]
    pool = deployed["ingest"]["work_pool"]["name"]
    worker_env = {
        "OOC_DATA_DIR": str(data),
        "OOC_N_WORKERS": "1",
        "OOC_MEMORY_LIMIT": "1GiB",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    worker = prefect_server.start(
        "worker", "worker", "start", "--pool", pool, env=worker_env, cwd=tmp_path
    )
    prefect_server.cli(
        "deployment", "run", f"{deployment['flow_name']}/ingest",
        "--params", json.dumps(params),
        "--watch", "--watch-interval", "1", "--watch-timeout", "180",
    )  # fmt: skip
    runs = prefect_server.api(
        "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}}
    )
    prefect_server.stop(worker)
    worker_log = (prefect_server.logs / "worker.log").read_text(errors="replace")
    assert [r["state_type"] for r in runs] == ["COMPLETED"], worker_log[-4000:]

    stored = ooc.open_volume(str(output))
    np.testing.assert_array_equal(stored.values, volume)
    # the store's provenance names the Prefect flow run that wrote it
    attrs = json.dumps(dict(zarr.open_group(str(output), mode="r").attrs))
    assert runs[0]["id"] in attrs
    rows = search(
        catalog_url=Settings(data_dir=str(data)).resolved_catalog_url, sample="deployed-1"
    )
    assert list(rows["url"]) == [str(output)]
    assert list(rows["stage"]) == ["ingest"]
    assert (rows["shape_z"][0], rows["shape_y"][0], rows["shape_x"][0]) == volume.shape


def _run_deployment(
    prefect_server: Any, deployed: dict[str, Any], name: str, params: dict, data: Path, cwd: Path
) -> tuple[list[dict[str, Any]], str]:
    """Run deployment ``name`` once on a process worker; its newest flow run and the worker's log."""
    deployment = _on_server(prefect_server)[name]
    worker_env = {
        "OOC_DATA_DIR": str(data),
        "OOC_N_WORKERS": "1",
        "OOC_MEMORY_LIMIT": "2GiB",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    pool = deployed[name]["work_pool"]["name"]
    worker = prefect_server.start(
        "worker", "worker", "start", "--pool", pool, env=worker_env, cwd=cwd
    )
    # a run that fails makes the watch exit non-zero: its state is checked by the caller
    with contextlib.suppress(pytest.fail.Exception):
        prefect_server.cli(
            "deployment", "run", f"{deployment['flow_name']}/{name}",
            "--params", json.dumps(params),
            "--watch", "--watch-interval", "1", "--watch-timeout", "600",
        )  # fmt: skip
    newest = {
        "deployments": {"id": {"any_": [deployment["id"]]}},
        "sort": "EXPECTED_START_TIME_DESC",
        "limit": 1,
    }
    runs = prefect_server.api("POST", "/flow_runs/filter", newest)
    prefect_server.stop(worker)
    return runs, (prefect_server.logs / "worker.log").read_text(errors="replace")


def test_the_spec_flow_runs_the_main_job_from_its_deployment(
    prefect_server: Any, deployed: dict[str, Any], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    runs, log = _run_deployment(
        prefect_server, deployed, "run", {"seed": 4, "shape": [32, 32, 32]}, data, tmp_path
    )
    assert [r["state_type"] for r in runs] == ["COMPLETED"], log[-4000:]
    rows = search(
        catalog_url=Settings(data_dir=str(data)).resolved_catalog_url, sample="synthetic-4"
    )
    assert set(rows["stage"]) >= {"ingest", "train", "segment", "measure", "simulate"}
    assert all(url.startswith(str(data)) for url in rows["url"])
    assert (rows[rows["stage"] == "simulate"]["porosity"] > 0).all()


def test_a_deployed_flow_refuses_stores_outside_the_data_roots(
    prefect_server: Any, deployed: dict[str, Any], tmp_path: Path
) -> None:
    np.save(tmp_path / "scan.npy", np.zeros((4, 4, 4), np.uint8))
    outside = tmp_path / "elsewhere" / "scan.zarr"
    params = {
        "source": str(tmp_path / "scan.npy"),
        "output": str(outside),
        "metadata": {"sample_id": "outside", "modality": "TEM", "kind": "grey", "voxel_size": [1.0, 1.0, 1.0], "unit": "nm"},
    }  # fmt: skip
    runs, log = _run_deployment(
        prefect_server, deployed, "ingest", params, tmp_path / "data", tmp_path
    )
    assert [r["state_type"] for r in runs] == ["FAILED"], log[-4000:]
    assert "outside the allowed data roots" in log
    assert not outside.exists()
