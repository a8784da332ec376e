"""Catalog fixtures: a real PostgreSQL server on 127.0.0.1, an empty catalog per test on SQLite
and on that server, and stores made by hand with an ``ooc_stage`` record, as stages write them."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from glob import glob
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from sqlalchemy import create_engine, text

from ooc.metadata import VolumeMetadata

INSTALL = "apt-get update && apt-get install -y postgresql"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "service: starts a real service on 127.0.0.1")


def _server_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest installed PostgreSQL)."""
    found = sorted(
        (Path(p).parent for p in glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found; install them: {INSTALL}",
            pytrace=False,
        )
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server started for this session on 127.0.0.1 (trust authentication, data in a
    temporary folder, stopped at the end); yields the SQLAlchemy URL of its database ``ooc``.

    As root, the server runs as the ``postgres`` user (``initdb`` refuses root).
    """
    binaries = _server_binaries()
    root = Path(tempfile.mkdtemp(prefix="ooc-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres").pw_name
        shutil.chown(root, user, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{log}")

    run(
        str(binaries / "initdb"),
        "-D",
        str(data),
        "-U",
        "ooc",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = f"-h 127.0.0.1 -p {port} -k {root} -F -c max_connections=300"
    pg_ctl = str(binaries / "pg_ctl")
    run(
        pg_ctl,
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        admin = create_engine(
            f"postgresql+psycopg://ooc@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE ooc"))
        admin.dispose()
        yield f"postgresql+psycopg://ooc@127.0.0.1:{port}/ooc"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def new_catalog(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str | None], str]:
    """Makes an empty catalog and returns its URL: a SQLite file, or (given the URL of a
    PostgreSQL database) a new database on that server (which goes when the server stops)."""
    numbering = itertools.count()

    def make(server: str | None) -> str:
        if server is None:
            url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.sqlite'}"
        else:
            name = f"catalog_{next(numbering)}"
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            admin.dispose()
            url = f"{server.rsplit('/', 1)[0]}/{name}"
        return url

    return make


def server_for(request: pytest.FixtureRequest, backend: str) -> str | None:
    """The PostgreSQL URL for backend "postgresql" (starting the server), None for "sqlite"."""
    return request.getfixturevalue("postgres_url") if backend == "postgresql" else None


@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest, new_catalog: Callable[[str | None], str]) -> str:
    """An empty catalog, on SQLite and on PostgreSQL."""
    return new_catalog(server_for(request, request.param))


VOLUME_LIKE = ("volume", "labels", "probabilities", "uncertainty")


def digest_of(stage: str, parameters: dict[str, Any], parents: Sequence[dict[str, Any]]) -> str:
    """A stage output's identity: SHA-256 of stage, code version 1, parameters, parents."""
    doc = {
        "stage": stage,
        "code_version": 1,
        "parameters": parameters,
        "parents": sorted([str(p.get("role")), str(p.get("digest"))] for p in parents),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def write_store(
    path: Path,
    *,
    stage: str,
    store_kind: str,
    parents: Sequence[dict[str, Any]] = (),
    numbers: dict[str, float] | None = None,
    sample_id: str = "rock-1",
    modality: str = "MicroCT",
    status: str = "complete",
    parameters: dict[str, Any] | None = None,
    voxel_size: tuple[float, float, float] = (2.0, 2.0, 2.0),
    unit: str = "micrometer",
    shape: tuple[int, ...] = (4, 5, 6),
    **fields: Any,
) -> dict[str, Any]:
    """Write a small stage output at ``path`` (a Zarr store, or a model folder for store kind
    "model") with its ``ooc_stage`` record, as stages do; returns the record."""
    parameters = parameters or {"path": path.name}
    record = {
        "stage": stage,
        "code_version": 1,
        "digest": digest_of(stage, parameters, parents),
        "parameters": parameters,
        "parents": list(parents),
        "ooc_version": "0.1.0",
        "model_digest": None,
        "sample_id": sample_id,
        "modality": modality,
        "store_kind": store_kind,
        "numbers": numbers or {},
        "status": status,
        "finished": "2026-11-30T21:00:00+00:00",
        "seconds": 1.5,
        **fields,
    }
    if store_kind == "model":
        path.mkdir(parents=True)
        (path / "forest.skops").write_bytes(b"weights")
        doc = {
            "format": "ooc-model",
            "kind": "forest",
            "voxel_size": list(voxel_size),
            "unit": unit,
        }
        (path / "model.json").write_text(json.dumps({**doc, "ooc_stage": record}))
        return record
    group = zarr.open_group(str(path), mode="w")
    attrs: dict[str, Any] = {"ooc_stage": record}
    if store_kind in VOLUME_LIKE:
        kind = "labels" if store_kind == "labels" else "grey"
        meta = VolumeMetadata(sample_id, modality, voxel_size, unit, kind)
        dtype = np.uint8 if kind == "labels" else np.float32
        group.create_array("0", shape=shape, dtype=dtype, dimension_names=None)
        attrs.update(ooc=meta.to_dict(), ooc_store={"status": status}, ooc_history=[])
    group.attrs.update(attrs)
    return record


def parent(path: Path, record: dict[str, Any], role: str) -> dict[str, Any]:
    """The lineage entry a child records for the store at ``path``."""
    return {"url": str(path.resolve()), "digest": record["digest"], "role": role}


@pytest.fixture(scope="session")
def make_store() -> Callable[..., dict[str, Any]]:
    """:func:`write_store`, for tests (conftest functions are not importable)."""
    return write_store


@pytest.fixture(scope="session")
def parent_of() -> Callable[[Path, dict[str, Any], str], dict[str, Any]]:
    """:func:`parent`, for tests."""
    return parent
