"""Two processes registering at once into one new catalog lose nothing and duplicate nothing:
both race to create the schema, then register 50 stores each plus 10 that both register."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ooc.catalog import lineage, search

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
