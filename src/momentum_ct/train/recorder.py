"""Accumulates the recorded rows of one run and decides when a run has diverged."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..problems import Problem

# Beyond this norm a float64 run is treated as diverged: its next steps overflow or lose all digits.
DIVERGENCE_NORM = 1e100


def has_diverged(x: Tensor) -> bool:
    norm = float(torch.linalg.vector_norm(x))
    return not math.isfinite(norm) or norm > DIVERGENCE_NORM


class TrajectoryRecorder:
    """Rows ``step, t, loss, grad_norm, [test_loss, test_accuracy], x, m`` of one run.

    ``x`` is the recurrence's ``x_k`` (never a look-ahead point) and ``m = (x_k - x_{k-1}) / step``
    its velocity; ``t = k h`` uses the nominal learning rate ``h`` of the run.
    """

    def __init__(self, problem: Problem, h: float, step_size: float):
        self.problem, self.h, self.step_size = problem, h, step_size
        self.rows: list[dict] = []
        self.diverged_at: int | None = None

    def record(self, k: int, x: Tensor, x_prev: Tensor) -> None:
        x, x_prev = x.detach(), x_prev.detach()
        metrics = None
        if not has_diverged(x):
            with torch.no_grad():
                metrics = self.problem.evaluate(x)
                metrics["grad_norm"] = float(torch.linalg.vector_norm(self.problem.full_grad(x)))
        self.append(k, metrics, x.to(torch.float64).cpu().numpy().copy(),
                    ((x - x_prev) / self.step_size).to(torch.float64).cpu().numpy().copy())

    def append(self, k: int, metrics: dict[str, float] | None, x: np.ndarray, m: np.ndarray) -> None:
        """Add the row of step ``k`` from values computed elsewhere (the batched engine computes them for
        many runs at once). ``metrics``: ``loss``, [``test_loss``, ``test_accuracy``,] ``grad_norm`` in that
        order, or ``None`` for a diverged iterate."""
        row = {"step": int(k), "t": k * self.h}
        if metrics is None:
            self.diverged_at = int(k)
            row.update(loss=math.inf, grad_norm=math.inf)
        else:
            row.update(metrics)
        row["x"] = x
        row["m"] = m
        self.rows.append(row)

    def mark_diverged(self, k: int, x: Tensor, x_prev: Tensor) -> None:
        if self.diverged_at is None:
            self.record(k, x, x_prev)
            self.diverged_at = int(k)

    def columns(self) -> dict[str, np.ndarray | list]:
        keys = [k for k in self.rows[0] if k not in ("x", "m")] if self.rows else []
        out: dict[str, np.ndarray | list] = {k: np.array([r.get(k, np.nan) for r in self.rows]) for k in keys}
        out["x"] = [r["x"] for r in self.rows]
        out["m"] = [r["m"] for r in self.rows]
        return out
