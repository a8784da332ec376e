"""Prefect servers a verb talks to, and those it starts and must not leave behind.

A verb runs its stage as a Prefect flow only when a Prefect server is configured
(:func:`prefect_server_configured`). ``ooc run`` and ``ooc reprocess`` always run flows: with no
``PREFECT_API_URL`` such a flow starts a temporary Prefect server as a child process. If the
verb is killed (``kill -9``), that server is orphaned and keeps running. Each verb marks its
environment with its own identity (:func:`mark_verb`), which the server inherits; the next verb
finds servers whose verb is gone and ends them (:func:`end_orphaned_servers`).
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from pathlib import Path

import psutil

__all__ = ["end_orphaned_servers", "mark_verb", "prefect_server_configured"]

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


def prefect_server_configured() -> str | None:
    """The API URL of the Prefect server configured for this process, or None.

    Read the way Prefect reads it, without importing Prefect (about a second): the
    ``PREFECT_API_URL`` environment variable, else the active profile of
    ``$PREFECT_HOME/profiles.toml`` (what ``prefect config set PREFECT_API_URL=...`` writes).
    """
    url = os.environ.get("PREFECT_API_URL")
    if url is not None:
        return url or None
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or None
