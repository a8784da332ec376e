"""Stages: one contract for every step of the data flow.

A stage reads input stores, calls the domain packages (which compute and return), and writes
exactly one output store: resumably, marked complete last, with its record (parents and their
digests, parameters, ooc version, the stage's code version, model digest; see
:mod:`ooc.stages.record`) and a catalog entry naming its parents. It is skipped when its output
already holds a complete result with the same key (inputs' digests + parameters + code version).
Every stage's output can be the next stage's input.

- :func:`run_ingest` - raw scan -> volume store
- :func:`run_train` - grey volume + sparse labels -> model folder
- :func:`run_segment` - grey volume + model -> label volume store (+ probabilities, uncertainty)
- :func:`run_measure` - label volume -> measurements results store
- :func:`run_simulate` - label volume -> transport results store

Each runs on the active Dask scheduler (see :func:`ooc.cluster.dask_client`).
"""

from ooc.stages._run import Outcome
from ooc.stages.ingest import run_ingest
from ooc.stages.measure import run_measure
from ooc.stages.segment import run_segment
from ooc.stages.simulate import plan_simulation, run_simulate
from ooc.stages.train import run_train

__all__ = [
    "Outcome",
    "plan_simulation",
    "run_ingest",
    "run_measure",
    "run_segment",
    "run_simulate",
    "run_train",
]
