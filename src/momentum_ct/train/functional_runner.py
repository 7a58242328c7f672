"""Plain torch loop over the functional recurrence: the fast path for one run."""
from __future__ import annotations

import torch

from ..optim import momentum_step
from ..problems import Problem
from .recorder import TrajectoryRecorder, has_diverged


def run_functional(problem: Problem, *, h: float, step: float, lam: float, a: float, n_steps: int,
                   record_at, batch_size: int | None = None, seed: int = 0) -> TrajectoryRecorder:
    """Iterate ``n_steps`` steps from ``problem.x0`` (with ``x_{-1} = x_0``), recording at ``record_at``.

    ``batch_size=None`` is full batch; otherwise seeded mini-batches (same order for every method).
    Stops at the first non-finite or overflowing iterate and records it as diverged.
    """
    recorder = TrajectoryRecorder(problem, h, step)
    wanted = set(int(k) for k in record_at)
    batches = None
    if batch_size is not None:
        batches = problem.minibatches(batch_size, torch.Generator().manual_seed(seed))
    x = problem.x0.clone()
    x_prev = x.clone()
    for k in range(n_steps + 1):
        if k in wanted:
            recorder.record(k, x, x_prev)
            if recorder.diverged_at is not None:
                break
        if k == n_steps:
            break
        data = problem.train_data if batches is None else next(batches)
        x, x_prev = momentum_step(x, x_prev, lambda y: problem.gradient(y, data), step, lam, a)
        if has_diverged(x):
            recorder.mark_diverged(k + 1, x, x_prev)
            break
    return recorder
