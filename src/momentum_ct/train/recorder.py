"""Accumulates the recorded rows of one run and decides when a run has diverged."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

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


def metric_arrays(metrics: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """The evaluator's metrics as the recorder's columns: float64 (int64 for counts), whatever the run's dtype."""
    out = {}
    for name, v in metrics.items():
        a = v.cpu().numpy()
        out[name] = a.astype(np.float64) if a.dtype.kind == "f" else a.astype(np.int64)
    return out


class TrajectoryRecorder:
    """Rows ``step, t, loss, [test_loss, test_accuracy], grad_norm | sq_dist, x, m`` of one run.

    The vectors are the method's records (``Method.record``): for the heavy-ball family ``x`` is the
    recurrence's ``x_k`` (never a look-ahead point) and ``m = (x_k - x_{k-1}) / step_size`` its velocity.
    Metrics are evaluated at ``x``; ``t = k h`` uses the nominal learning rate ``h`` of the run. ``sq_dist``
    (problems with a known minimiser ``w*``) is ``|x - w*|^2``: measures of the distance need no vector then, and it
    stands in for the full-data gradient norm ``grad_norm`` (recorded for the other problems), which no measure reads.
    """

    def __init__(self, problem: Problem, h: float):
        self.problem, self.h = problem, h
        self.threshold = divergence_threshold(problem.x0)
        # blocks of rows in step order: (steps, metrics, vectors), each metric an array and each vector a
        # sequence of rows; engines that record many rows at once add them as one block (``extend``)
        self.blocks: list[tuple[np.ndarray, dict[str, np.ndarray], dict[str, Sequence[np.ndarray]]]] = []
        self.diverged_at: int | None = None
        self.vector_keys: tuple[str, ...] = ()  # the method's records, set by the first row

    def record(self, k: int, values: Mapping[str, Tensor]) -> None:
        """Record step ``k`` from one run's vectors (``x`` first), evaluating the metrics at ``x``."""
        x = values["x"].detach()
        metrics = None
        if not has_diverged(x, self.threshold):
            with torch.no_grad():
                metrics = self.problem.evaluate(x)
                if self.problem.minimiser is None:
                    metrics["grad_norm"] = float(torch.linalg.vector_norm(self.problem.full_grad(x)))
                else:
                    metrics["sq_dist"] = float(((x - self.problem.minimiser) ** 2).sum())
        self.append(k, metrics, {name: v.detach().to(torch.float64).cpu().numpy().copy() for name, v in values.items()})

    def append(self, k: int, metrics: dict[str, float] | None, vectors: Mapping[str, np.ndarray]) -> None:
        """Add the row of step ``k`` from values computed elsewhere. ``metrics``: ``loss``, [``test_loss``,
        ``test_accuracy``,] ``grad_norm`` or ``sq_dist`` in that order, or ``None`` for a diverged iterate;
        ``vectors``: the method's records, ``x`` first."""
        if metrics is None:
            self.diverged_at = int(k)
            metrics = dict(loss=math.inf, **{"grad_norm" if self.problem.minimiser is None else "sq_dist": math.inf})
        self.extend(np.array([int(k)]), {name: np.array([v]) for name, v in metrics.items()},
                    {name: [v] for name, v in vectors.items()})

    def extend(self, steps: np.ndarray, metrics: Mapping[str, np.ndarray],
               vectors: Mapping[str, Sequence[np.ndarray]]) -> None:
        """Add rows of finite iterates at ``steps`` (increasing, after the rows so far) at once: per metric an
        array, per vector a sequence of rows (the stacked engine evaluates many runs' records together)."""
        self.vector_keys = tuple(vectors)
        self.blocks.append((np.asarray(steps), dict(metrics), dict(vectors)))

    def mark_diverged(self, k: int, values: Mapping[str, Tensor]) -> None:
        if self.diverged_at is None:
            self.record(k, values)
            self.diverged_at = int(k)

    @property
    def rows(self) -> list[dict]:
        """The rows one by one (``step, t``, metrics, vectors): for inspection; ``columns`` is the table."""
        cols = self.columns()
        return [{name: values[i] for name, values in cols.items()} for i in range(len(cols.get("step", ())))]

    def columns(self) -> dict[str, np.ndarray | list]:
        """The table: one array per scalar column (the first row's metrics; a metric absent from a row is NaN
        there) and one list of rows per vector."""
        if not self.blocks:
            return {}
        steps = np.concatenate([b[0] for b in self.blocks])
        out: dict[str, np.ndarray | list] = {"step": steps, "t": steps * self.h}
        for name in self.blocks[0][1]:
            out[name] = np.concatenate([m[name] if name in m else np.full(len(k), np.nan) for k, m, _ in self.blocks])
        for name in self.vector_keys:
            out[name] = [row for _, _, v in self.blocks for row in v[name]]
        return out
