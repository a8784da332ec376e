"""A real Prefect server for deployment tests, and the processes started against it.

``prefect_server`` (one per session) runs ``prefect server start`` on 127.0.0.1 and a free
port with its own ``PREFECT_HOME`` and no telemetry, waits for ``/api/health`` and, at the end,
stops every process started through it (workers first, then the server): SIGTERM to the
process group, SIGTERM again after half the grace time (Prefect workers need two), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

PREFECT = str(Path(sys.executable).with_name("prefect"))
STARTUP_TIMEOUT_S = 120.0  # healthy after about 12 s on an idle machine; CI machines are busier
GRACE_S = 10.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "service: starts a real server (Prefect) on 127.0.0.1 for the test"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """Stop ``proc`` and its process group: SIGTERM, SIGTERM again, then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, grace_s / 2), (signal.SIGTERM, grace_s / 2)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
    # the group may outlive its leader (a flow-run process of a worker): end it in any case
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@dataclass
class PrefectServer:
    """A running Prefect server: its API URL, an environment for clients, and helpers."""

    api_url: str
    home: Path
    env: dict[str, str]
    logs: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        """Run ``prefect ARGS`` against this server; its output, or a failure showing it."""
        done = subprocess.run(
            [PREFECT, "--no-prompt", *args],
            env={**self.env, **(env or {})},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            pytest.fail(f"prefect {' '.join(args)} failed ({done.returncode}):\n{output[-4000:]}")
        return output

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``prefect ARGS`` in the background (its own process group, log in ``logs``);
        it is stopped before the server at the end of the session, or by :meth:`stop`."""
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [PREFECT, "--no-prompt", *args],
                env={**self.env, **(env or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop a process from :meth:`start` now."""
        _stop(proc)
        self.children.remove(proc)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the REST API (``path`` below ``/api``); the decoded JSON answer."""
        response = httpx.request(method, self.api_url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1, healthy, for the whole session."""
    root = tmp_path_factory.mktemp("prefect-server")
    logs = root / "logs"
    logs.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(root / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
        # the scheduler service turns cron schedules into runs every 60 s by default
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
    )
    log_path = logs / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api_url = f"http://127.0.0.1:{port}/api"
    handle = PrefectServer(api_url, root / "home", {**env, "PREFECT_API_URL": api_url}, logs)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited ({server.returncode}):\n{_tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(api_url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        yield handle
    finally:
        for child in reversed(handle.children):
            _stop(child)
        _stop(server)


def _write_temporary_tls(folder: Path, prefix: str) -> dict[str, str]:
    from distributed import Security

    temp = Security.temporary()  # a self-signed CA whose certificate also serves as the key pair's
    pems = {
        "tls_ca_file": temp.tls_ca_file,
        "tls_cert": temp.tls_client_cert,
        "tls_key": temp.tls_client_key,
    }
    paths = {}
    for name, pem in pems.items():
        paths[name] = str(folder / f"{prefix}-{name}.pem")
        Path(paths[name]).write_text(pem)
    return paths


@pytest.fixture
def temporary_tls() -> Callable[[Path, str], dict[str, str]]:
    """Makes fresh TLS files: ``temporary_tls(folder, prefix)`` writes a new CA, certificate and
    key as PEM files and returns their paths keyed by setting name (``tls_ca_file``...)."""
    return _write_temporary_tls


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """Temporary TLS files for the settings ``tls_ca_file``, ``tls_cert`` and ``tls_key``."""
    return _write_temporary_tls(tmp_path, "ooc")
