"""Ingest on a real distributed LocalCluster with two worker processes, and into an S3 API
server (moto's, on 127.0.0.1, started and stopped here)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

import ooc
from ooc.catalog import register, search
from ooc.cluster import dask_client
from ooc.config import Settings
from ooc.io import ingest, open_reader
from ooc.metadata import VolumeMetadata

META = VolumeMetadata("cluster-1", "TEM", (1.0, 1.0, 1.0), "nanometer")


@pytest.mark.cluster
def test_ingest_and_read_on_a_two_process_cluster(tmp_path: Path, grey_volume: np.ndarray) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    for z, plane in enumerate(grey_volume):
        tifffile.imwrite(stack / f"z{z}.tif", plane)
    out = str(tmp_path / "out.zarr")
    with dask_client(Settings(n_workers=2, threads_per_worker=1, memory_limit="1GiB")) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        report = ingest(
            open_reader(stack), out, META, chunks=(8, 16, 16), max_region_bytes=1, progress=False
        )
        vol = ooc.open_volume(out)
        total = int(vol.astype("int64").sum().compute())
        level1 = ooc.open_volume(out, level=1).values
    assert report.chunks_written > 0
    assert total == int(grey_volume.astype("int64").sum())
    assert level1.shape == (19, 23, 26)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with one bucket, stopped after the test."""
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import s3fs

        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir("scans")
        yield endpoint
    finally:
        server.stop()


def test_s3_round_trip(tmp_path: Path, grey_volume: np.ndarray, s3_endpoint: str) -> None:
    np.save(tmp_path / "in.npy", grey_volume)
    settings = Settings(s3_endpoint_url=s3_endpoint, data_dir=str(tmp_path))
    url = "s3://scans/rock/grey.zarr"
    options = settings.storage_options(url)
    ingest(
        open_reader(tmp_path / "in.npy"),
        url,
        META,
        chunks=(16, 16, 16),
        storage_options=options,
        progress=False,
    )
    vol = ooc.open_volume(url, storage_options=options)
    np.testing.assert_array_equal(vol.values, grey_volume)
    assert vol.attrs["history"][0]["inputs"][0]["bytes"] == (tmp_path / "in.npy").stat().st_size
    register(url, catalog_url=settings.resolved_catalog_url, storage_options=options)
    found = search(catalog_url=settings.resolved_catalog_url, modality="TEM")
    assert found["url"].tolist() == [url]
