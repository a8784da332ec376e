"""Shared fixtures: a private data folder and Prefect home per test session, small volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Prefect's local API database, ooc's data and config away from the user's."""
    home = tmp_path_factory.mktemp("env")
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    os.environ["OOC_DATA_DIR"] = str(home / "ooc-data")
    os.environ["OOC_PROGRESS"] = "0"
    for name in ("OOC_CONFIG", "OOC_SCHEDULER", "OOC_CATALOG_URL"):
        os.environ.pop(name, None)


@pytest.fixture
def grey_volume() -> np.ndarray:
    """A small uint16 volume with odd sizes (so chunks do not divide it)."""
    rng = np.random.default_rng(42)
    return rng.integers(0, 60000, size=(37, 45, 51), dtype=np.uint16)
