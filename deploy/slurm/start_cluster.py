"""Start a Dask cluster on SLURM with dask-jobqueue and print its scheduler address.

Run on a login node (``pip install dask-jobqueue`` in ooc's environment); keep it running while
flows use it:

    python deploy/slurm/start_cluster.py --interface ib0 --jobs 8 --cores 32 --memory 256GiB
    export OOC_SCHEDULER=<printed address>

Each SLURM job runs ``--processes`` Dask worker processes (``python -m distributed.cli.dask_worker``
of the Python that runs this script, so the nodes must see the same environment), sharing the
job's cores and memory. The scheduler listens on the interface or address you name (compute
nodes must reach it); its HTTP server (health, metrics) stays on 127.0.0.1. With ooc's TLS
settings (``OOC_TLS_CA_FILE``, ``OOC_TLS_CERT``, ``OOC_TLS_KEY``) it talks TLS, so other users
of the login node cannot submit work to it.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

# what ooc's own LocalCluster sets: BLAS and Blosc threads would oversubscribe Dask's threads
PROLOGUE = ["export OMP_NUM_THREADS=1", "export OPENBLAS_NUM_THREADS=1", "export OOC_PROGRESS=0"]


def slurm_cluster(
    *,
    cores: int,
    processes: int,
    memory: str,
    walltime: str,
    interface: str | None = None,
    host: str | None = None,
    queue: str | None = None,
    account: str | None = None,
    local_directory: str = "$TMPDIR",
    python: str = sys.executable,
) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` for ooc (no jobs submitted until it is scaled).

    Parameters
    ----------
    cores, processes, memory, walltime
        Per SLURM job: CPU cores, Dask worker processes, memory ("256GiB"), time limit.
    interface, host
        Where the scheduler listens: a network interface of the login node ("ib0") or one of
        its addresses; one of the two is required.
    queue, account
        SLURM partition and account (``#SBATCH -p``/``-A``); default the site's.
    local_directory
        Worker spill folder on node-local disk.
    python
        The Python that runs the workers (with ooc installed); default this one.

    With ooc's TLS settings set, scheduler and workers talk TLS (:func:`ooc.cluster.dask_security`;
    the files must be readable on the compute nodes too).
    """
    from dask_jobqueue import SLURMCluster

    from ooc.cluster import dask_security
    from ooc.config import load_settings

    if (interface is None) == (host is None):
        raise ValueError("give exactly one of interface (e.g. 'ib0') or host (an address)")
    # this cluster is the scheduler: a configured OOC_SCHEDULER is not one to check against
    security = dask_security(replace(load_settings(), scheduler=None))
    scheduler_options: dict[str, Any] = {"dashboard_address": "127.0.0.1:8787"}
    if host is not None:
        scheduler_options["host"] = host
    return SLURMCluster(
        cores=cores,
        processes=processes,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        interface=interface,
        local_directory=local_directory,
        python=python,
        job_script_prologue=PROLOGUE,
        scheduler_options=scheduler_options,
        protocol="tls://" if security else None,
        security=security,
    )


def main(argv: list[str] | None = None) -> None:
    """Start the cluster, submit ``--jobs`` jobs, print the job script and the address."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="login-node interface the nodes reach (e.g. ib0)")
    where.add_argument("--host", help="login-node address the nodes reach")
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--cores", type=int, default=32)
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--memory", default="256GiB")
    p.add_argument("--walltime", default="12:00:00")
    p.add_argument("--queue", default=None)
    p.add_argument("--account", default=None)
    p.add_argument("--local-directory", default="$TMPDIR", help="worker spill folder")
    args = p.parse_args(argv)
    cluster = slurm_cluster(
        cores=args.cores,
        processes=args.processes,
        memory=args.memory,
        walltime=args.walltime,
        interface=args.interface,
        host=args.host,
        queue=args.queue,
        account=args.account,
        local_directory=args.local_directory,
    )
    cluster.scale(jobs=args.jobs)
    print(cluster.job_script())
    print(f"OOC_SCHEDULER={cluster.scheduler_address}", flush=True)
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
