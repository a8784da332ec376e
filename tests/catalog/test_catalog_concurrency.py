"""Two processes registering at once into one new catalog lose nothing and duplicate nothing:
both race to create the schema, then register 50 stores each plus 10 that both register. A
forked process opens its own connections."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ooc.catalog import lineage, register, search
from ooc.catalog.engine import engine_for

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]
EACH, SHARED = 50, 10
WORKER = """
import pathlib, sys, time
from ooc.catalog import register
catalog, ready, go, *urls = sys.argv[1:]
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.005)
for url in urls:
    register(url, catalog_url=catalog)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_register_at_once(
    backend: str,
    request: pytest.FixtureRequest,
    new_catalog: Callable[[str | None], str],
    make_store: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    catalog = new_catalog(
        request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    )
    source = {"url": str(tmp_path / "grey.zarr"), "digest": "0" * 64, "role": "volume"}
    urls = []
    for i in range(2 * EACH + SHARED):
        path = tmp_path / f"r{i:03d}.zarr"
        make_store(
            path,
            stage="measure",
            store_kind="results",
            parents=[source],
            numbers={"porosity": i / 1000},
        )
        urls.append(str(path))
    shared = urls[2 * EACH :]
    jobs = [urls[:EACH] + shared, urls[EACH : 2 * EACH] + shared[::-1]]
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, catalog, str(tmp_path / f"ready{i}"), str(go), *job],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, job in enumerate(jobs)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(w.poll() is None for w in workers), [w.communicate()[1] for w in workers]
        time.sleep(0.01)
    go.touch()  # both start registering, and creating the catalog's tables, now
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors
    found = search(catalog_url=catalog)
    assert sorted(found["url"]) == urls
    assert sorted(found["porosity"]) == [i / 1000 for i in range(len(urls))]
    children = lineage(source["url"], catalog_url=catalog)
    assert sorted(children["url"]) == urls


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forked_process_opens_its_own_connections(
    backend: str,
    request: pytest.FixtureRequest,
    new_catalog: Callable[[str | None], str],
    make_store: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    """A process forked after the parent used the catalog (a Dask or Prefect worker) must not
    share the parent's pooled connections."""
    catalog = new_catalog(
        request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    )
    for name in ("parent", "child"):
        make_store(tmp_path / f"{name}.zarr", stage="measure", store_kind="results")
    register(str(tmp_path / "parent.zarr"), catalog_url=catalog)
    parents_engine = engine_for(catalog)
    pid = os.fork()
    if pid == 0:  # the child leaves with a status only, never through pytest
        try:
            fresh = engine_for(catalog) is not parents_engine
            register(str(tmp_path / "child.zarr"), catalog_url=catalog)
            os._exit(0 if fresh else 3)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine_for(catalog) is parents_engine
    assert sorted(Path(u).stem for u in search(catalog_url=catalog)["url"]) == ["child", "parent"]
