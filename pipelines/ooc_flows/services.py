"""Services a verb starts and must not leave behind: Prefect's temporary API server.

With no ``PREFECT_API_URL``, a flow starts a temporary Prefect server as a child process. If the
verb is killed (``kill -9``), that server is orphaned and keeps running. Each verb marks its
environment with its own identity (:func:`mark_verb`), which the server inherits; the next verb
finds servers whose verb is gone and ends them (:func:`end_orphaned_servers`).
"""

from __future__ import annotations

import contextlib
import os

import psutil

__all__ = ["end_orphaned_servers", "mark_verb"]

_SERVER = "prefect.server.api.server"
_MARK = "OOC_VERB"


def _identity(proc: psutil.Process) -> str:
    return f"{proc.pid}:{proc.create_time():.3f}"


def mark_verb() -> None:
    """Record this process as the verb that owns the services it starts (inherited by them)."""
    os.environ[_MARK] = _identity(psutil.Process())


def _alive(identity: str) -> bool:
    pid = identity.partition(":")[0]
    try:
        return _identity(psutil.Process(int(pid))) == identity
    except (psutil.Error, ValueError):
        return False


def end_orphaned_servers(*, timeout: float = 5.0) -> list[int]:
    """End temporary Prefect servers whose verb has died; returns their process ids. Servers of
    running verbs, and servers ooc did not start, are left alone."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if not any(_SERVER in part for part in proc.info["cmdline"] or []):
            continue
        with contextlib.suppress(psutil.Error):
            owner = proc.environ().get(_MARK)
            if owner and not _alive(owner):
                proc.terminate()
                found.append(proc)
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [p.pid for p in found]
