"""Monte Carlo over seeds: squared distances to the minimiser per run and recorded step, and their mean with a
normal confidence interval (runs are independent: each seed draws its own samples)."""
from __future__ import annotations

import numpy as np

from .recorder import TrajectoryRecorder

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.


def squared_errors(recorders: list[TrajectoryRecorder], minimiser: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``|x_k - w*|^2`` per run (rows) and step of ``steps`` (columns); ``inf`` from the step where a run diverged
    on (a diverged run is a result: it makes the mean infinite, it is not dropped)."""
    steps = np.asarray(steps, dtype=np.int64)
    out = np.full((len(recorders), len(steps)), np.inf)
    w = np.asarray(minimiser, dtype=float)
    for i, rec in enumerate(recorders):
        cols = rec.columns()
        at = {int(k): j for j, k in enumerate(cols["step"])}
        for j, k in enumerate(steps.tolist()):
            if k in at and (rec.diverged_at is None or k < rec.diverged_at):
                out[i, j] = float(np.sum((np.asarray(cols["x"][at[k]]) - w) ** 2))
    return out


def mean_ci(values: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``axis`` and the half-width of its normal confidence interval (``inf`` where a value is)."""
    from scipy import stats
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    with np.errstate(invalid="ignore"):
        mean = values.mean(axis=axis)
        half = stats.norm.ppf(0.5 + confidence / 2) * values.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, np.where(np.isfinite(mean), half, np.inf)


def jackknife_ci(values: np.ndarray, statistic, confidence: float = 0.95, blocks: int = 20) -> tuple[float, float]:
    """``statistic`` of the mean over runs (rows) and the half-width of its delete-a-block jackknife interval
    (``blocks`` blocks of runs, t quantile): the Monte Carlo uncertainty of a statistic of a whole mean curve, such
    as a slope over its recorded steps, whose points share their runs and so are not independent."""
    from scipy import stats
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    estimate = float(statistic(values.mean(axis=0)))
    b = min(blocks, n)
    if b < 2 or not np.all(np.isfinite(values)):
        return estimate, float("inf")
    total = values.sum(axis=0)
    parts = np.array_split(np.arange(n), b)
    leave_out = np.array([float(statistic((total - values[i].sum(axis=0)) / (n - len(i)))) for i in parts])
    spread = np.sqrt((b - 1) / b * np.sum((leave_out - leave_out.mean()) ** 2))
    half = float(stats.t.ppf(0.5 + confidence / 2, b - 1) * spread)
    return estimate, half if np.isfinite(half) else float("inf")  # a leave-out statistic undefined: no interval


def ratio_ci(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """``mean(a) / mean(b)`` over paired runs and its delta-method half-width (pairs share their seed's samples,
    so their correlation narrows the interval)."""
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ma, mb = a.mean(), b.mean()
    ratio = ma / mb
    if not (np.isfinite(ratio) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float(ratio), float("inf")
    influence = (a - ratio * b) / mb  # linearisation of the ratio of means
    half = stats.norm.ppf(0.5 + confidence / 2) * influence.std(ddof=1) / np.sqrt(len(a))
    return float(ratio), float(half)
