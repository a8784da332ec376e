"""Stages: one contract for every step of the data flow.

A stage reads input stores, calls the domain packages (which compute and return), and writes
exactly one output store: resumably, marked complete last, with its record (parents and their
digests, parameters, ooc version, the stage's code version, model digest; see
:mod:`ooc.stages.record`) and a catalog entry naming its parents. It is skipped when its output
already holds a complete result with the same key (inputs' digests + parameters + code version).
Every stage's output can be the next stage's input.

- :func:`run_ingest` - raw scan -> volume store
- :func:`run_features` - grey volume -> one filter of the bank, to look at
- :func:`run_train` - grey volume + sparse labels -> model folder
- :func:`run_segment` - grey volume + model -> label volume store (+ probabilities, uncertainty)
- :func:`run_measure` - label volume -> measurements results store
- :func:`run_simulate` - label volume -> transport results store
- :func:`run_upscale` - a finer scan's transport results -> a coarser scan's phase properties

Each runs on the active Dask scheduler (see :func:`ooc.cluster.dask_client`).
"""

from importlib import import_module
from typing import Any

# name -> module; imported on first use, so checking one stage's inputs loads only that stage
_WHERE = {
    "Outcome": "_run",
    "run_ingest": "ingest",
    "run_features": "features",
    "run_train": "train",
    "run_segment": "segment",
    "run_measure": "measure",
    "run_simulate": "simulate",
    "plan_simulation": "simulate",
    "run_upscale": "upscale",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ooc.stages.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ooc.stages' has no attribute {name!r}")
