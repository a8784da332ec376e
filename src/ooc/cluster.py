"""The Dask cluster a run uses, and running many small tasks on it with a progress bar.

A cluster ooc starts itself listens on 127.0.0.1 only, with no dashboard or other HTTP
server; with TLS files configured it talks TLS too, so other users of a shared machine cannot
submit work to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import dask
from dask.delayed import Delayed
from distributed import Client, LocalCluster, Security, as_completed
from tqdm.auto import tqdm

from ooc.config import Settings, load_settings
from ooc.errors import ConfigError

__all__ = [
    "dask_client",
    "dask_security",
    "discard_cluster",
    "progress_enabled",
    "run_tasks",
    "start_local_cluster",
]

_TLS_SETTINGS = {
    "tls_ca_file": "OOC_TLS_CA_FILE",
    "tls_cert": "OOC_TLS_CERT",
    "tls_key": "OOC_TLS_KEY",
}


def progress_enabled() -> bool:
    """Whether long steps show progress bars: ``OOC_PROGRESS=1``/``0`` decides; otherwise yes
    when standard error is a terminal (bars would flood a log file)."""
    chosen = os.environ.get("OOC_PROGRESS")
    if chosen is not None:
        return chosen != "0"
    return sys.stderr.isatty()


def dask_security(settings: Settings) -> Security | None:
    """The ``distributed.Security`` (TLS) that ``settings`` ask for, or None for plain TCP.

    The same certificate and key serve the client, the scheduler and the workers, all signed
    by ``tls_ca_file``; encryption is then required on every connection.

    Raises
    ------
    ConfigError
        When only some of the three TLS files are set, a file does not exist, the scheduler is
        ``tls://`` without them, or they are set for a scheduler that is not ``tls://``.
    """
    files = {name: getattr(settings, name) for name in _TLS_SETTINGS}
    given = {name for name, path in files.items() if path}
    scheduler = settings.scheduler or ""
    if not given:
        if scheduler.startswith("tls://"):
            raise ConfigError(
                f"scheduler {scheduler!r} uses TLS but no certificates are configured; set "
                "tls_ca_file, tls_cert and tls_key (OOC_TLS_CA_FILE, OOC_TLS_CERT, OOC_TLS_KEY)"
            )
        return None
    missing = [f"{name} ({_TLS_SETTINGS[name]})" for name in _TLS_SETTINGS if name not in given]
    if missing:
        raise ConfigError(f"TLS is half configured: {', '.join(missing)} not set; set all three")
    for name, path in files.items():
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: file of setting '{name}' ({_TLS_SETTINGS[name]}) not found")
    if scheduler and not scheduler.startswith("tls://"):
        raise ConfigError(
            f"scheduler {scheduler!r} is not a tls:// address but TLS files are configured; "
            "use tls://host:port or unset tls_ca_file, tls_cert and tls_key"
        )
    cert, key = files["tls_cert"], files["tls_key"]
    return Security(
        tls_ca_file=files["tls_ca_file"],
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )


def _local_cluster(settings: Settings) -> LocalCluster:
    """The ``LocalCluster`` of ``settings.n_workers`` processes ooc starts on 127.0.0.1."""
    security = dask_security(settings)
    return LocalCluster(
        n_workers=settings.n_workers,
        threads_per_worker=settings.threads_per_worker,
        memory_limit=settings.memory_limit,
        processes=True,
        host="127.0.0.1",
        protocol="tls://" if security else None,
        security=security,
        # the scheduler's small HTTP server (health, metrics) on a free loopback port: the
        # default 8787 may be taken by another cluster, and distributed then warns on stderr
        dashboard_address="127.0.0.1:0",
        # BLAS/Blosc threads would oversubscribe the cores Dask already uses
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )


def start_local_cluster(settings: Settings) -> Future | None:
    """Start the local cluster on a background thread; ``None`` when a scheduler is configured.

    Its worker processes start while the caller imports and checks its inputs; hand the future
    to :func:`dask_client`, or to :func:`discard_cluster` when the run does not happen.
    """
    if settings.scheduler:
        return None
    future: Future = Future()

    def start() -> None:
        try:
            future.set_result(_local_cluster(settings))
        except BaseException as err:  # handed to whoever waits for the cluster
            future.set_exception(err)

    threading.Thread(target=start, name="ooc-cluster-start", daemon=True).start()
    return future


def discard_cluster(future: Future | None) -> None:
    """Close a cluster from :func:`start_local_cluster` that no run will use, quietly: workers
    closed just after they started may log heartbeats cut short, which would bury the one-line
    error that made the run stop."""
    if future is None or future.exception() is not None:
        return
    cluster = future.result()
    with Client(cluster) as client:
        client.run(_silence_distributed)
    cluster.close()


def _silence_distributed() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def dask_client(
    settings: Settings | None = None, *, cluster: Future | None = None
) -> Iterator[Client]:
    """A ``distributed.Client`` for the configured cluster, closed on exit.

    With ``settings.scheduler`` unset, a ``LocalCluster`` of ``n_workers`` processes is started
    for the run on 127.0.0.1 (its HTTP server on a free loopback port) and stopped afterwards
    (``cluster``: one already starting, from :func:`start_local_cluster`); otherwise the client
    connects to that scheduler. TLS settings (:func:`dask_security`) apply to both.
    """
    settings = settings or load_settings()
    security = dask_security(settings)
    if settings.scheduler:
        with Client(settings.scheduler, security=security) as client:
            yield client
        return
    with (
        cluster.result() if cluster is not None else _local_cluster(settings) as local,
        Client(local, security=security) as client,
    ):
        yield client


def _current_client() -> Client | None:
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


def run_tasks(tasks: Sequence[Delayed], *, desc: str, progress: bool | None = None) -> list[Any]:
    """Compute ``tasks`` (small results each) on the active scheduler, with a progress bar.

    On a ``distributed`` client, tasks are submitted at once and gathered as they finish; on
    Dask's local schedulers they run through ``dask.compute``. Results keep the input order.
    """
    if progress is None:
        progress = progress_enabled()
    client = _current_client()
    bar = tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress, leave=False)
    try:
        if client is None:
            from dask.callbacks import Callback

            wanted = {t.key for t in tasks}

            class _Bar(Callback):
                def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
                    if key in wanted:
                        bar.update(1)

            with _Bar():
                return list(dask.compute(*tasks))
        futures = client.compute(list(tasks))
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            results[index[future.key]] = future.result()
            bar.update(1)
        return results
    finally:
        bar.close()
