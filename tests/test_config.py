"""Configuration: defaults, a TOML file, environment variables over both, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ooc.config import load_settings
from ooc.errors import ConfigError


def test_defaults_are_a_local_cluster_and_a_sqlite_catalog(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OOC_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.scheduler is None
    assert s.resolved_catalog_url == f"sqlite:///{tmp_path / 'ooc-data' / 'catalog.sqlite'}"
    assert s.storage_options("s3://b/x") == {}


def test_environment_wins_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "ooc.toml"
    toml.write_text(
        '[ooc]\ndata_dir = "/scratch"\nn_workers = 8\nchunks = [64, 128, 128]\n'
        's3_endpoint_url = "http://127.0.0.1:9000"\n'
    )
    monkeypatch.delenv("OOC_DATA_DIR")
    monkeypatch.setenv("OOC_CONFIG", str(toml))
    monkeypatch.setenv("OOC_N_WORKERS", "3")
    monkeypatch.setenv("OOC_SCHEDULER", "tcp://127.0.0.1:8786")
    s = load_settings()
    assert (s.data_dir, s.n_workers, s.chunks) == ("/scratch", 3, (64, 128, 128))
    assert s.scheduler == "tcp://127.0.0.1:8786"
    assert s.storage_options("s3://b/x") == {"endpoint_url": "http://127.0.0.1:9000"}
    assert load_settings(n_workers=5).n_workers == 5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[ooc]\nn_workers = 0\n", r"'n_workers' = 0 is not valid.*positive integer"),
        ("[ooc]\nchunks = [1, 2]\n", r"'chunks' = \[1, 2\] is not valid.*three positive integers"),
        ("[ooc]\nworkers = 2\n", r"unknown key\(s\) \['workers'\]"),
        ("[ooc\n", "not valid TOML"),
    ],
)
def test_bad_toml_names_the_file_and_field(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OOC_THREADS_PER_WORKER", "many")
    with pytest.raises(ConfigError, match="environment variable OOC_THREADS_PER_WORKER"):
        load_settings()
