"""What the benchmarks share: running a route in its own process while sampling its memory,
and printing a table."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import psutil

__all__ = ["print_table", "run_measured"]


def run_measured(command: list[str], *, json_result: bool = False) -> tuple[float, int, Any]:
    """Run ``command``; return wall seconds, the peak summed RSS of its process tree (bytes),
    sampled every 50 ms, and (with ``json_result``) the JSON of its last output line."""
    start = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.PIPE if json_result else None, text=True)
    peak = 0
    while proc.poll() is None:
        rss = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                rss += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, rss)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with exit status {proc.returncode}")
    return seconds, peak, json.loads(out.strip().splitlines()[-1]) if json_result else None


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Print ``rows`` under ``header`` in left-aligned columns, then a blank line."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()
