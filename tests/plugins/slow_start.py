"""A test plug-in: the quadratic problem, whose first gradient waits ``WAIT`` seconds in the first attempt.

It makes one training job outlast a SLURM time limit of one minute deterministically and without using
a CPU (tests/test_slurm_pipeline.py): SLURM ends the first attempt, the retry gets a longer limit and
finishes. The first attempt leaves a marker file in the working directory before it waits, so the retry
starts at once (the test then waits for one time limit, not two). Validation and dry runs never evaluate a
gradient, so they do not wait.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from momentum_ct.problems import Problem, register_problem
from momentum_ct.problems.quadratic import make_quadratic

# SLURM checks time limits every 30 s, so a job with a one-minute limit is ended 60 to 90 s after its start.
WAIT = 110.0

MARKER = Path(".slow_start_waited")


def _first_call_waits(grad):
    def wrapped(x, data=()):
        if not MARKER.exists():
            MARKER.touch()
            time.sleep(WAIT)
        return grad(x, data)
    return wrapped


def make_slow_start(*, seed: int = 0, dim: int = 4) -> Problem:
    problem = make_quadratic(seed=seed, dim=dim, condition=5.0, lipschitz=1.0)
    return dataclasses.replace(problem, name="slow_start", grad=_first_call_waits(problem.grad))


register_problem("slow_start", make_slow_start)
