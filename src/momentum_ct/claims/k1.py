"""Claim K1: the iterates follow the time-rescaled gradient flow to first order in h."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..ct.fit import loglog_slope, max_curvature, rescaling_factor
from ..ct.flows import gradient_flow
from ..ct.integrate import OdeOptions, integrate
from ..io import stack
from .common import fit_window, flow_scale, problem_of, regime_number, row, sup_errors

# Grid of the plain flow used to fit c: cubic-spline error ~ spacing^4 stays far below the O(h) effects
# measured even with the coarse grid, which keeps network predictions to tens of MB.
PLAIN_FLOW_POINTS = 4001
PLAIN_FLOW_POINTS_LARGE = 401
LARGE_DIM = 100


def predict(traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions = OdeOptions()) -> tuple[dict, dict]:
    """The rescaled flow at every recorded ``t``, and the plain flow on a grid (for fitting ``c``).

    Returns ``(columns, info)``; ``columns`` has ``kind`` (``rescaled_flow`` / ``plain_flow``), ``h``,
    ``step``, ``t`` and ``x``.
    """
    spec, problem = problem_of(meta)
    scale = flow_scale(spec)
    t = traj["t"].to_numpy()
    n_grid = PLAIN_FLOW_POINTS if problem.dim <= LARGE_DIM else PLAIN_FLOW_POINTS_LARGE
    s = np.linspace(0.0, 2.0 * scale * spec.t_max, n_grid)  # covers c up to twice its prediction
    # the rescaled flow at t is the plain flow at scale * t: one solve gives both
    both = integrate(gradient_flow(problem, 1.0), problem.x0, np.concatenate([scale * t, s]), ode).numpy()
    x, y = both[: len(t)], both[len(t):]
    curvature = path_curvature(problem, traj)
    columns = {
        "kind": ["rescaled_flow"] * len(t) + ["plain_flow"] * len(s),
        "h": np.concatenate([traj["h"].to_numpy(), np.full(len(s), np.nan)]),
        "step": np.concatenate([traj["step"].to_numpy(), np.full(len(s), -1)]),
        "t": np.concatenate([t, s]),
        "x": list(x) + list(y),
    }
    info = dict(claim="K1", ode=ode.as_dict(), curvature_max=curvature, flow_scale=scale)
    return columns, info


def rescaled_flow(problem, spec, t: np.ndarray, ode: OdeOptions = OdeOptions()) -> np.ndarray:
    """K1's time-rescaled gradient flow from ``x_0`` at the times ``t`` (rows x dimension): the plain flow at
    ``t / (1 - lam)``."""
    return integrate(gradient_flow(problem, 1.0), problem.x0, flow_scale(spec) * np.asarray(t), ode).numpy()


def path_curvature(problem, traj: pd.DataFrame, n_points: int = 5) -> float:
    """Largest Hessian eigenvalue met at ``n_points`` finite iterates of the finest run (SCIENCE.md 1.4a)."""
    finest = traj[traj["h"] == traj["h"].min()]
    finite = finest[np.isfinite(finest["loss"])]
    picks = finite.iloc[np.linspace(0, len(finite) - 1, min(n_points, len(finite))).astype(int)]
    return max_curvature(problem, stack(picks["x"])) if len(picks) else float("nan")


def errors(traj: pd.DataFrame, pred: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Sup distance to the rescaled flow per h, over the recorded rows (or a boolean subset of them)."""
    flow = pred[pred["kind"] == "rescaled_flow"]
    return sup_errors(traj, stack(flow["x"]), rows)


def measure(traj: pd.DataFrame, pred: pd.DataFrame, info: dict, meta: dict, *, fit_points: int = 4,
            confidence: float = 0.95) -> tuple[list[dict], pd.DataFrame]:
    """Fit rows (order, rescale_factor) and the per-h error points of one series."""
    spec, _ = problem_of(meta)
    curvature = info["curvature_max"]
    err = errors(traj, pred)
    err["regime"] = [regime_number(h, curvature, spec.lam) for h in err["h"]]
    window = fit_window(err, fit_points)
    fit = loglog_slope(window["h"], window["err"], confidence)
    diverged = [r["h"] for r in meta["runs"] if r["diverged"]]
    note = f"diverged at h={diverged}" if diverged else ""
    rows = [row("K1", spec, "order", 1.0, fit.slope, (fit.ci_low, fit.ci_high),
                h_min=window["h"].min(), h_max=window["h"].max(), regime=window["regime"].max(),
                n_points=fit.n_points, note=note)]
    rows.append(_rescale_row(traj, pred, spec, window, meta))
    points = err.assign(claim_id="K1", experiment=spec.experiment, problem=spec.problem, method=spec.method,
                        lam=spec.lam, seed=spec.seed, model="rescaled_flow")
    return rows, points


def _rescale_row(traj, pred, spec, window, meta) -> dict:
    predicted = flow_scale(spec)
    plain = pred[pred["kind"] == "plain_flow"]
    ok_h = [h for h in sorted(window["h"])][:2]
    estimates = []
    for h in ok_h:
        run = traj[(traj["h"] == h) & np.isfinite(traj["loss"])]
        estimates.append(rescaling_factor(run["t"].to_numpy(), stack(run["x"]), plain["t"].to_numpy(),
                                          stack(plain["x"]), (0.5 * predicted, 2.0 * predicted)))
    if not estimates:
        return row("K1", spec, "rescale_factor", predicted, float("nan"), note="no converged run")
    c = estimates[0]
    spread = abs(estimates[0] - estimates[1]) if len(estimates) > 1 else float("nan")
    regime = float(window.loc[window["h"] == min(ok_h), "regime"].iloc[0])
    return row("K1", spec, "rescale_factor", predicted, c, (c - spread, c + spread),
               h_min=min(ok_h), h_max=min(ok_h), regime=regime, n_points=len(estimates),
               note="fit at the finest h; interval from the change to the next-finest h")
