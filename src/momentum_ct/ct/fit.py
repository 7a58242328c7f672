"""Fits shared by the claims: log-log orders with confidence intervals, time-rescaling factors, curvature."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..problems import Problem

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.


@dataclass(frozen=True)
class Slope:
    slope: float
    ci_low: float
    ci_high: float
    n_points: int


def loglog_slope(h, err, confidence: float = 0.95) -> Slope:
    """Least-squares slope of ``log err`` against ``log h`` with a t-based confidence interval.

    Non-finite or non-positive errors are dropped; fewer than three points give NaN bounds.
    """
    from scipy import stats
    h, err = np.asarray(h, dtype=float), np.asarray(err, dtype=float)
    ok = np.isfinite(err) & (err > 0) & np.isfinite(h) & (h > 0)
    h, err = h[ok], err[ok]
    if len(h) < 2:
        return Slope(np.nan, np.nan, np.nan, len(h))
    fit = stats.linregress(np.log(h), np.log(err))
    if len(h) < 3:
        return Slope(float(fit.slope), np.nan, np.nan, len(h))
    half = stats.t.ppf(0.5 + confidence / 2, len(h) - 2) * fit.stderr
    return Slope(float(fit.slope), float(fit.slope - half), float(fit.slope + half), len(h))


def geometric_ratio(values, confidence: float = 0.95) -> Slope:
    """Per-step ratio ``r`` of ``values[k] ~ C r^k`` (``k = 0, 1, ...``): ``exp`` of the least-squares slope
    of ``log values`` against ``k``, with the exponentiated t-based interval. Needs positive values."""
    from scipy import stats
    y = np.log(np.asarray(values, dtype=float))
    k = np.arange(len(y), dtype=float)
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return Slope(np.nan, np.nan, np.nan, len(y))
    fit = stats.linregress(k, y)
    half = stats.t.ppf(0.5 + confidence / 2, len(y) - 2) * fit.stderr
    return Slope(float(np.exp(fit.slope)), float(np.exp(fit.slope - half)), float(np.exp(fit.slope + half)), len(y))


def rescaling_factor(times, xs, flow_times, flow_xs, bracket: tuple[float, float]) -> float:
    """The ``c`` minimising ``sum_k |x_k - y(c t_k)|^2``, with ``y`` a plain gradient flow given on a grid.

    ``y`` is interpolated by a cubic spline (fourth order), so the grid error is far below the
    O(h) effects being measured.
    """
    from scipy import optimize
    from scipy.interpolate import CubicSpline
    spline = CubicSpline(np.asarray(flow_times), np.asarray(flow_xs), axis=0)

    def cost(c):
        return float(np.sum((np.asarray(xs) - spline(c * np.asarray(times))) ** 2))

    res = optimize.minimize_scalar(cost, bounds=bracket, method="bounded", options=dict(xatol=1e-10))
    return float(res.x)


def max_curvature(problem: Problem, points, iterations: int = 50, seed: int = 0) -> float:
    """Largest |Hessian eigenvalue| met at ``points``, by power iteration on Hessian-vector products.

    The points iterate together: one vmapped product per iteration for all of them (on a network, several
    times faster than one point after another, and the same numbers). A point whose product vanishes or is
    not finite stops there; a NaN estimate is ignored."""
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in points]
    if not xs:
        return 0.0
    # one draw per point, in order: the same start vectors as drawing them one point at a time
    v = torch.stack([torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in xs])
    v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
    xs = torch.stack(xs)
    hvp = torch.func.vmap(problem.hvp)
    est = torch.zeros(len(xs), dtype=torch.float64)
    active = torch.ones(len(xs), dtype=torch.bool)
    for _ in range(iterations):
        hv = hvp(xs, v)
        norm = torch.linalg.vector_norm(hv, dim=1)
        est = torch.where(active, norm, est)
        active = active & (norm != 0.0) & torch.isfinite(norm)
        if not bool(active.any()):
            break
        v = torch.where(active.unsqueeze(1), hv / norm.unsqueeze(1), v)
    est = est[~torch.isnan(est)]
    return max(0.0, float(est.max())) if len(est) else 0.0
