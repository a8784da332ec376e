"""Security: local servers listen on 127.0.0.1 only, Dask over TLS, data roots, no pickles."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import dask
import psutil
import pytest
from distributed import LocalCluster, Security
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ooc.cluster import dask_client, dask_security
from ooc.config import Settings, check_store_url, load_settings
from ooc.errors import ConfigError, InputError
from ooc.segment import load_model


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    """(IP, port) of every listening TCP socket of ``process`` and its descendants."""
    found = set()
    for proc in [process, *process.children(recursive=True)]:
        for c in proc.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                found.add((c.laddr.ip, c.laddr.port))
    return found


@pytest.mark.cluster
def test_local_cluster_listens_on_loopback_only() -> None:
    me = psutil.Process()
    before = _listening(me)
    with dask_client(Settings(n_workers=1, memory_limit="1GiB")) as client:
        info = client.scheduler_info()
        comms = [info["address"], *info["workers"]]
        # distributed always runs a small HTTP server (health, metrics; the dashboard needs
        # bokeh): on the scheduler and each worker, here on loopback too
        http_ports = [info["services"]["dashboard"]]
        http_ports += [w["services"]["dashboard"] for w in info["workers"].values()]
        new = _listening(me) - before
        assert client.submit(sum, [1, 2]).result() == 3
    assert all(a.startswith("tcp://127.0.0.1:") for a in comms), comms
    comm_ports = {int(a.rsplit(":", 1)[1]) for a in comms}
    # scheduler (this process), nanny and worker: every socket they opened is on loopback
    assert {ip for ip, _ in new} == {"127.0.0.1"}
    assert comm_ports | set(http_ports) <= {port for _, port in new}


def test_client_talks_tls_to_a_tls_scheduler(
    tls_files: dict[str, str], temporary_tls: Callable[[Path, str], dict[str, str]]
) -> None:
    with LocalCluster(
        n_workers=1,
        processes=False,
        protocol="tls://",
        host="127.0.0.1",
        security=Security(
            tls_ca_file=tls_files["tls_ca_file"],
            tls_scheduler_cert=tls_files["tls_cert"],
            tls_scheduler_key=tls_files["tls_key"],
            tls_worker_cert=tls_files["tls_cert"],
            tls_worker_key=tls_files["tls_key"],
            tls_client_cert=tls_files["tls_cert"],
            tls_client_key=tls_files["tls_key"],
            require_encryption=True,
        ),
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with dask_client(Settings(scheduler=address, **tls_files)) as client:
            assert client.submit(pow, 3, 4).result() == 81
        with (
            pytest.raises(ConfigError, match=r"uses TLS but no certificates.*OOC_TLS_CA_FILE"),
            dask_client(Settings(scheduler=address)),
        ):
            pass
        # a certificate from another authority is turned away
        other = temporary_tls(Path(tls_files["tls_cert"]).parent, "other")
        with (
            dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
            pytest.raises(OSError, match=r"Timed out|certificate"),
            dask_client(Settings(scheduler=address, **other)),
        ):
            pass


@pytest.mark.cluster
def test_local_cluster_uses_tls_when_configured(tls_files: dict[str, str]) -> None:
    settings = Settings(n_workers=1, memory_limit="1GiB", **tls_files)
    with dask_client(settings) as client:
        info = client.scheduler_info()
        assert info["address"].startswith("tls://127.0.0.1:")
        assert all(w.startswith("tls://127.0.0.1:") for w in info["workers"])
        assert client.submit(sum, [4, 5]).result() == 9


def test_tls_settings_come_from_the_environment(
    tls_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, path in tls_files.items():
        monkeypatch.setenv(f"OOC_{name.upper()}", path)
    monkeypatch.setenv("OOC_SCHEDULER", "tls://127.0.0.1:8786")
    security = dask_security(load_settings())
    assert security is not None
    assert security.require_encryption
    assert security.tls_ca_file == tls_files["tls_ca_file"]
    assert security.tls_client_cert == security.tls_worker_cert == tls_files["tls_cert"]
    assert security.tls_scheduler_key == tls_files["tls_key"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tls_key": None}, r"half configured: tls_key \(OOC_TLS_KEY\) not set"),
        (
            {"tls_cert": "/nonexistent/cert.pem"},
            r"/nonexistent/cert.pem: file of setting 'tls_cert'",
        ),
        ({"scheduler": "tcp://127.0.0.1:8786"}, r"'tcp://127.0.0.1:8786' is not a tls:// address"),
    ],
)
def test_bad_tls_settings_are_named(
    tls_files: dict[str, str], change: dict[str, str | None], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        dask_security(Settings(**{"scheduler": "tls://127.0.0.1:8786", **tls_files, **change}))


def test_no_tls_means_plain_tcp() -> None:
    assert dask_security(Settings()) is None
    assert dask_security(Settings(scheduler="tcp://127.0.0.1:8786")) is None


# ---- data roots -------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> Settings:
    """Two local roots (one with a link pointing outside) and an S3 prefix."""
    (tmp_path / "data").mkdir()
    (tmp_path / "scratch").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "data" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "data" / "inner").mkdir()
    (tmp_path / "scratch-link").symlink_to(tmp_path / "data" / "inner")
    return Settings(
        data_roots=(str(tmp_path / "data"), f"file://{tmp_path / 'scratch'}", "s3://scans/rock")
    )


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("data/a.zarr", True),
        ("data", True),
        ("data/new/deeper/a.zarr", True),
        ("file://{tmp}/scratch/b.zarr", True),
        ("scratch/b.zarr", True),
        ("scratch-link/c.zarr", True),  # a link from outside into a root: its target counts
        ("data/../outside/a.zarr", False),
        ("data/link/a.zarr", False),  # a link inside a root pointing outside it
        ("data-old/a.zarr", False),  # a sibling whose name starts like a root
        ("outside/a.zarr", False),
        ("s3://scans/rock/a.zarr", True),
        ("S3://scans/rock/x/../b.zarr", True),
        ("s3://scans/rock/../other/a.zarr", False),
        ("s3://scans/rocky/a.zarr", False),
        ("s3://other/rock/a.zarr", False),
        ("gs://scans/rock/a.zarr", False),
        ("memory://scans/rock/a.zarr", False),
    ],
)
def test_store_urls_are_checked_against_data_roots(
    roots: Settings, tmp_path: Path, url: str, allowed: bool
) -> None:
    url = url.replace("{tmp}", str(tmp_path))
    if "://" not in url:
        url = str(tmp_path / url)
    if allowed:
        check_store_url(url, roots)
    else:
        with pytest.raises(ConfigError, match="is outside the allowed data roots") as info:
            check_store_url(url, roots)
        assert repr(url) in str(info.value)
        assert "s3://scans/rock" in str(info.value)
        assert "OOC_DATA_ROOTS" in str(info.value)


def test_chained_urls_are_refused(roots: Settings) -> None:
    with pytest.raises(ConfigError, match=r"chained fsspec URLs"):
        check_store_url("zip://a.zarr::s3://scans/rock/x.zip", roots)


def test_default_root_is_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OOC_DATA_DIR")
    settings = load_settings()
    assert settings.resolved_data_roots == ("ooc-data",)
    check_store_url("ooc-data/a.zarr", settings)
    check_store_url(str(tmp_path / "ooc-data" / "b" / "c.zarr"), settings)
    with pytest.raises(ConfigError, match=r"\['ooc-data'\]"):
        check_store_url("elsewhere/a.zarr", settings)
    monkeypatch.setenv("OOC_DATA_ROOTS", f"{tmp_path}/a, s3://b/p ,")
    assert load_settings().resolved_data_roots == (f"{tmp_path}/a", "s3://b/p")


def _reference_inside(root_parts: list[str], steps: list[str]) -> bool:
    """Walk ``steps`` from the root with a stack (``..`` pops, never above '/')."""
    stack = list(root_parts)
    for step in steps:
        if step == "..":
            stack = stack[:-1]
        elif step != ".":
            stack.append(step)
    return stack[: len(root_parts)] == root_parts


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.sampled_from(["a", "b", "root", "..", "."]), min_size=1, max_size=8))
def test_local_paths_agree_with_a_component_walk(tmp_path: Path, steps: list[str]) -> None:
    root = tmp_path / "x" / "root"  # nothing exists under tmp_path/x: pure '..' arithmetic
    base = Path(os.path.realpath(tmp_path))
    root_parts = [*base.parts, "x", "root"]
    url = str(root) + "/" + "/".join(steps)
    inside = _reference_inside(root_parts, steps)
    try:
        check_store_url(url, Settings(data_roots=(str(root),)))
        assert inside, url
    except ConfigError:
        assert not inside, url


# ---- no pickle from storage -------------------------------------------------------------


class _Marker:
    """Unpickling this calls ``os.mkdir(path)``: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.path,))


def _write_model_json(folder: Path, weights: str) -> None:
    import hashlib

    digest = hashlib.sha256((folder / weights).read_bytes()).hexdigest()
    doc = {
        "format": "ooc-model",
        "version": 1,
        "kind": "forest",
        "classes": [0, 1],
        "class_names": {},
        "voxel_size": [1.0, 1.0, 1.0],
        "unit": "voxel",
        "provenance": {},
        "ndim": 3,
        "spec": {},
        "weights": {"file": weights, "sha256": digest},
    }
    (folder / "model.json").write_text(json.dumps(doc))


def _skops_with_reduce(path: Path) -> None:
    """A real forest's skops archive whose trees are to be rebuilt by calling ``os.mkdir``."""
    import numpy as np
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0)
    sio.dump(forest.fit(np.arange(8.0)[:, None], np.arange(8) % 2), path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}

    def poison(node: object) -> int:
        """Point every tree node at ``os.mkdir``; returns how many were changed."""
        if isinstance(node, list):
            return sum(poison(item) for item in node)
        if not isinstance(node, dict):
            return 0
        hit = node.get("__class__") == "Tree" and node.get("__module__") == "sklearn.tree._tree"
        if hit:
            node.update({"__class__": "mkdir", "__module__": "os"})
        return int(hit) + sum(poison(value) for value in node.values())

    schema = json.loads(members["schema.json"])
    assert poison(schema) == 2
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _skops_with_object_npy(path: Path) -> None:
    """A skops archive whose array member is an object-dtype .npy (a pickle inside)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.array([_Marker(str(path.parent / "marker-npy"))], dtype=object))
    schema = {
        "__class__": "ndarray",
        "__module__": "numpy",
        "__loader__": "NdArrayNode",
        "type": "numpy",
        "file": "a.npy",
        "protocol": 2,
        "_skops_version": "0.16.0",
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        archive.writestr("a.npy", buffer.getvalue())


def _plain_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(_Marker(str(path.parent / "marker-pickle"))))


# (weights file, how it is crafted, test id)
_CRAFTED = [
    ("forest.skops", _plain_pickle, "pickle-renamed-skops"),
    ("forest.skops", _skops_with_reduce, "skops-reduce-os-mkdir"),
    ("forest.skops", _skops_with_object_npy, "skops-object-npy-pickle"),
    ("model.pkl", _plain_pickle, "model-json-names-pickle"),
]


def _crafted_folder(tmp_path: Path, weights: str, write: Callable[[Path], None]) -> Path:
    """A model folder with crafted weights, a matching ``model.json`` and a stray ``model.pkl``."""
    folder = tmp_path / "model"
    folder.mkdir()
    write(folder / weights)
    _plain_pickle(folder / "model.pkl")  # a stray pickle beside the weights is never read
    _write_model_json(folder, weights)
    return folder


@pytest.mark.parametrize(("weights", "write"), [pytest.param(w, f, id=i) for w, f, i in _CRAFTED])
def test_crafted_pickles_in_a_model_folder_run_no_code(
    tmp_path: Path, weights: str, write: Callable[[Path], None]
) -> None:
    folder = _crafted_folder(tmp_path, weights, write)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the next test pins the type
        load_model(folder)
    assert [p.name for p in folder.iterdir() if p.name.startswith("marker")] == []


@pytest.mark.parametrize(
    ("weights", "write"),
    [pytest.param(w, f, id=i) for w, f, i in _CRAFTED],
)
def test_crafted_pickles_in_a_model_folder_are_refused_with_an_input_error(
    tmp_path: Path, weights: str, write: Callable[[Path], None]
) -> None:
    folder = _crafted_folder(tmp_path, weights, write)
    with pytest.raises(InputError, match=str(folder / weights)):
        load_model(folder)
