"""Plain torch loop over the method protocol: the fast path for one run (a state of one row)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..optim import GRAD, Oracle, check_needs, resolve_method
from ..problems import Problem
from .recorder import TrajectoryRecorder, has_diverged

PROVIDES = frozenset({GRAD})


class RunOracle(Oracle):
    """The gradient of one problem on the step's data, row by row (one row per run: here one)."""

    provides = PROVIDES

    def __init__(self, problem: Problem, data):
        self.problem, self.data = problem, data

    def grad(self, points: Tensor) -> Tensor:
        return torch.stack([self.problem.gradient(p, self.data) for p in points])


def one_run_columns(columns: Mapping[str, float], like: Tensor) -> dict[str, Tensor]:
    """A run's coefficients as ``1 x 1`` columns in the dtype and device of ``like``."""
    return {k: torch.tensor([[v]], dtype=like.dtype, device=like.device) for k, v in columns.items()}


def run_functional(problem: Problem, *, method: Any, h: float, lam: float, n_steps: int, record_at,
                   batch_size: int | None = None, seed: int = 0,
                   hyperparameters: Mapping[str, float] | None = None) -> TrajectoryRecorder:
    """Iterate ``n_steps`` steps from ``problem.x0``, recording at ``record_at``.

    Args:
        method: a name, label, ``Method`` or ``MethodSpec``; ``hyperparameters`` its own values.
        h, lam: the run's nominal learning rate and momentum (the method maps them to its coefficients).
        batch_size: ``None`` is full batch; otherwise seeded mini-batches (same order for every method).

    Stops at the first non-finite or overflowing iterate and records it as diverged.
    """
    spec = resolve_method(method, hyperparameters)
    m = spec.method
    check_needs(m, PROVIDES, "functional")
    recorder = TrajectoryRecorder(problem, h)
    wanted = set(int(k) for k in record_at)
    minibatches = None
    if batch_size is not None:
        minibatches = problem.minibatches(batch_size, torch.Generator().manual_seed(seed))
    x0 = problem.x0.clone().unsqueeze(0)
    state = m.init(x0, one_run_columns(spec.columns(h, lam), x0))
    for k in range(n_steps + 1):
        if k in wanted:
            recorder.record(k, _row(m.record(state)))
            if recorder.diverged_at is not None:
                break
        if k == n_steps:
            break
        data = problem.train_data if minibatches is None else next(minibatches)
        state = m.step(state, k, RunOracle(problem, data))
        if has_diverged(m.iterate(state)[0], recorder.threshold):
            recorder.mark_diverged(k + 1, _row(m.record(state)))
            break
    return recorder


def _row(values: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: v[0] for name, v in values.items()}
