"""Start a Dask cluster on SLURM with dask-jobqueue and print its scheduler address.

Run on a login node (``pip install dask-jobqueue``); keep it running while flows use it:

    python deploy/slurm/start_cluster.py --jobs 8 --cores 32 --memory 256GiB --walltime 12:00:00
    export OOC_SCHEDULER=tcp://<printed address>

Each SLURM job runs one worker process per ``--processes`` with the memory split between them.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from dask_jobqueue import SLURMCluster

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--cores", type=int, default=32)
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--memory", default="256GiB")
    p.add_argument("--walltime", default="12:00:00")
    p.add_argument("--queue", default=None)
    p.add_argument("--local-directory", default="$TMPDIR", help="worker spill folder (node-local disk)")
    args = p.parse_args()
    cluster = SLURMCluster(
        cores=args.cores,
        processes=args.processes,
        memory=args.memory,
        walltime=args.walltime,
        queue=args.queue,
        local_directory=args.local_directory,
        job_script_prologue=["export OMP_NUM_THREADS=1"],
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
