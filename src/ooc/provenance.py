"""Provenance: how a store was made (code version, parameters, input checksums, time, host, run).

Checksums are SHA-256 of file content. A file is hashed in segments of ``SEGMENT`` bytes, in
parallel; its digest is the SHA-256 of its segments' digests in order (a one-level hash tree),
and an input made of many files (a TIFF slice folder) gets the SHA-256 of its files' lines
``"<name> <digest>\\n"`` in z order. ``ooc history`` shows the records.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
import platform
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask

import ooc

__all__ = [
    "SEGMENT",
    "combine_digests",
    "file_digest_tasks",
    "input_digest",
    "make_record",
    "segment_digest",
]

SEGMENT = 256 * 2**20
_BUFFER = 8 * 2**20


def segment_digest(path: str | os.PathLike[str], start: int, length: int) -> str:
    """SHA-256 (hex) of ``length`` bytes of ``path`` from byte ``start``, read in 8 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            piece = f.read(min(_BUFFER, left))
            if not piece:
                raise OSError(f"{path}: ended {left} bytes early while hashing")
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def combine_digests(digests: Sequence[str]) -> str:
    """SHA-256 of the concatenated hex digests (one level of a hash tree)."""
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def file_digest_tasks(files: Sequence[Path]) -> list[Any]:
    """Dask tasks hashing every segment of ``files``; give their results to :func:`input_digest`."""
    tasks = []
    for path in files:
        size = Path(path).stat().st_size
        for start in range(0, max(size, 1), SEGMENT):
            tasks.append(
                dask.delayed(segment_digest, pure=True)(
                    str(path), start, min(SEGMENT, size - start)
                )
            )
    return tasks


def input_digest(files: Sequence[Path], segment_digests: Sequence[str]) -> dict[str, Any]:
    """The input's content checksum from the results of :func:`file_digest_tasks`, in order."""
    it = iter(segment_digests)
    lines = []
    total = 0
    for path in files:
        size = Path(path).stat().st_size
        total += size
        parts = [next(it) for _ in range(max(1, -(-size // SEGMENT)))]
        lines.append(f"{Path(path).name} {combine_digests(parts)}\n")
    digest = (
        lines[0].split()[1]
        if len(files) == 1
        else hashlib.sha256("".join(lines).encode()).hexdigest()
    )
    return {"sha256_tree": digest, "files": len(files), "bytes": total}


def make_record(
    step: str,
    *,
    parameters: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """A provenance record: what ran, with which parameters and inputs, when, where and by whom."""
    return {
        "step": step,
        "ooc_version": ooc.__version__,
        "parameters": parameters,
        "inputs": inputs or [],
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "python": platform.python_version(),
        "run_id": run_id,
    }
