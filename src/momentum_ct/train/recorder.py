"""Accumulates the recorded rows of one run and decides when a run has diverged."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from ..problems import Problem

# A run has diverged once its iterate is non-finite or its norm has grown this many times past the start's
# (|x_0|, or 1 for a start at the origin): far beyond any minimum of a problem started near it, and long
# before float64 overflows, so a diverging run is never recorded as a converged one.
DIVERGENCE_FACTOR = 1e6


def divergence_threshold(x0: Tensor) -> float:
    """The norm beyond which a run started at ``x0`` counts as diverged."""
    return DIVERGENCE_FACTOR * max(float(torch.linalg.vector_norm(x0.to(torch.float64))), 1.0)


def has_diverged(x: Tensor, threshold: float) -> bool:
    norm = float(torch.linalg.vector_norm(x))
    return not math.isfinite(norm) or norm > threshold


class TrajectoryRecorder:
    """Rows ``step, t, loss, [test_loss, test_accuracy], grad_norm, [sq_dist], x, m`` of one run.

    The vectors are the method's records (``Method.record``): for the heavy-ball family ``x`` is the
    recurrence's ``x_k`` (never a look-ahead point) and ``m = (x_k - x_{k-1}) / step_size`` its velocity.
    Metrics are evaluated at ``x``; ``t = k h`` uses the nominal learning rate ``h`` of the run. ``sq_dist``
    (problems with a known minimiser ``w*``) is ``|x - w*|^2``: measures of the distance need no vector then.
    """

    def __init__(self, problem: Problem, h: float):
        self.problem, self.h = problem, h
        self.threshold = divergence_threshold(problem.x0)
        self.rows: list[dict] = []
        self.diverged_at: int | None = None
        self.vector_keys: tuple[str, ...] = ()  # the method's records, set by the first row

    def record(self, k: int, values: Mapping[str, Tensor]) -> None:
        """Record step ``k`` from one run's vectors (``x`` first), evaluating the metrics at ``x``."""
        x = values["x"].detach()
        metrics = None
        if not has_diverged(x, self.threshold):
            with torch.no_grad():
                metrics = self.problem.evaluate(x)
                metrics["grad_norm"] = float(torch.linalg.vector_norm(self.problem.full_grad(x)))
                if self.problem.minimiser is not None:
                    metrics["sq_dist"] = float(((x - self.problem.minimiser) ** 2).sum())
        self.append(k, metrics, {name: v.detach().to(torch.float64).cpu().numpy().copy() for name, v in values.items()})

    def append(self, k: int, metrics: dict[str, float] | None, vectors: Mapping[str, np.ndarray]) -> None:
        """Add the row of step ``k`` from values computed elsewhere (the stacked engine computes them for
        many runs at once). ``metrics``: ``loss``, [``test_loss``, ``test_accuracy``,] ``grad_norm``,
        [``sq_dist``] in that order, or ``None`` for a diverged iterate; ``vectors``: the method's records, ``x`` first."""
        row = {"step": int(k), "t": k * self.h}
        if metrics is None:
            self.diverged_at = int(k)
            row.update(loss=math.inf, grad_norm=math.inf)
            if self.problem.minimiser is not None:
                row["sq_dist"] = math.inf
        else:
            row.update(metrics)
        self.vector_keys = tuple(vectors)
        row.update(vectors)
        self.rows.append(row)

    def mark_diverged(self, k: int, values: Mapping[str, Tensor]) -> None:
        if self.diverged_at is None:
            self.record(k, values)
            self.diverged_at = int(k)

    def columns(self) -> dict[str, np.ndarray | list]:
        keys = [k for k in self.rows[0] if k not in self.vector_keys] if self.rows else []
        out: dict[str, np.ndarray | list] = {k: np.array([r.get(k, np.nan) for r in self.rows]) for k in keys}
        for k in self.vector_keys:
            out[k] = [r[k] for r in self.rows]
        return out
