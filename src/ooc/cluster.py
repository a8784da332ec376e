"""The Dask cluster a run uses, and running many small tasks on it with a progress bar."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import dask
from dask.delayed import Delayed
from distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from ooc.config import Settings, load_settings

__all__ = ["dask_client", "progress_enabled", "run_tasks"]


def progress_enabled() -> bool:
    """Whether long steps show progress bars: yes unless ``OOC_PROGRESS=0``."""
    return os.environ.get("OOC_PROGRESS", "1") != "0"


@contextlib.contextmanager
def dask_client(settings: Settings | None = None) -> Iterator[Client]:
    """A ``distributed.Client`` for the configured cluster, closed on exit.

    With ``settings.scheduler`` unset, a ``LocalCluster`` of ``n_workers`` processes is started
    for the run and stopped afterwards; otherwise the client connects to that scheduler.
    """
    settings = settings or load_settings()
    if settings.scheduler:
        with Client(settings.scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=settings.n_workers,
            threads_per_worker=settings.threads_per_worker,
            memory_limit=settings.memory_limit,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # BLAS/Blosc threads would oversubscribe the cores Dask already uses
            env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        ) as cluster,
        Client(cluster) as client,
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
