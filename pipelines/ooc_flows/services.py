"""Services a verb starts and must not leave behind: Prefect's temporary API server.

With no ``PREFECT_API_URL``, a flow starts a temporary Prefect server as a child process. If the
verb is killed (``kill -9``), that server is orphaned (re-parented to init) and keeps running.
The next verb with the same ``PREFECT_HOME`` finds such orphans and ends them.
"""

from __future__ import annotations

import contextlib

import psutil

__all__ = ["end_orphaned_servers"]

_SERVER = "prefect.server.api.server"


def end_orphaned_servers(prefect_home: str, *, timeout: float = 5.0) -> list[int]:
    """End temporary Prefect servers whose verb died (parent gone) and that use
    ``prefect_home``; returns their process ids. Servers of running verbs are left alone."""
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["ppid"] != 1 or not any(_SERVER in part for part in cmdline):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("PREFECT_HOME") == prefect_home:
                proc.terminate()
                found.append(proc)
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [p.pid for p in found]
