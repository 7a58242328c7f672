"""Claim K1: the iterates follow the time-rescaled gradient flow to first order in h."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..ct.fit import loglog_slope, max_curvature, rescaling_factor
from ..ct.flows import gradient_flow
from ..ct.integrate import OdeOptions, integrate
from ..io import stack
from ..train.series import SeriesSpec
from .common import distances, fit_window, flow_scale, keeps_vectors, problem_of, regime_number, row, sup_errors

# Grid of the plain flow used to fit c: cubic-spline error ~ spacing^4 stays far below the O(h) effects
# measured even with the coarse grid, which keeps network predictions to tens of MB.
PLAIN_FLOW_POINTS = 4001
PLAIN_FLOW_POINTS_LARGE = 401
LARGE_DIM = 100


def predict(traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions = OdeOptions()) -> tuple[dict, dict]:
    """The rescaled flow at every recorded ``t``, and the plain flow on a grid, from which ``c`` is fitted here.

    Returns ``(columns, info)``; ``columns`` has ``kind`` (``rescaled_flow``; ``plain_flow`` where vectors are
    kept), ``h``, ``step``, ``t``, ``err`` (``|x_k - x(t_k)|`` on the rescaled flow's rows) and, up to
    ``VECTOR_MAX_DIM`` dimensions, the predicted ``x``; ``info["rescale_factor"]`` holds ``c`` per h for the two
    finest h with finite errors above round-off (those the measure reports).
    """
    return predict_batch([(traj, meta)], ode)[0]


def predict_batch(items: list[tuple[pd.DataFrame, dict[str, Any]]], ode: OdeOptions = OdeOptions()) -> list:
    """``predict`` for every series of a shard, the plain flow of each problem instance solved once
    (``plain_flows``): the series of one seed differ in method and lam, not in their flow."""
    return [_predict(traj, meta, ode, problem, both)
            for (traj, meta), (problem, both) in zip(items, plain_flows(items, _flow_times, ode))]


def _plain_grid(spec, problem) -> np.ndarray:
    """The grid of the plain flow that ``c`` is fitted on; it covers ``c`` up to twice its prediction."""
    n_grid = PLAIN_FLOW_POINTS if problem.dim <= LARGE_DIM else PLAIN_FLOW_POINTS_LARGE
    return np.linspace(0.0, 2.0 * flow_scale(spec) * spec.t_max, n_grid)


def _flow_times(traj: pd.DataFrame, spec, problem) -> np.ndarray:
    """The plain-flow times a series needs: ``scale * t`` at its recorded ``t``, then the grid ``c`` is fitted on."""
    return np.concatenate([flow_scale(spec) * traj["t"].to_numpy(), _plain_grid(spec, problem)])


def plain_flows(items, times_of, ode: OdeOptions = OdeOptions()) -> list[tuple[Any, np.ndarray]]:
    """``(problem, plain gradient flow from x_0 at times_of(traj, spec, problem))`` per series.

    One solve per problem instance (problem, options and seed), at the union of its series' times. An adaptive
    solver's steps do not depend on the output times (``OdeOptions.adaptive``), so each series gets exactly the
    values a solve of its own would give; a fixed-grid solver steps through its output times, and solves each
    series alone.
    """
    specs = [SeriesSpec.from_dict(meta["spec"]) for _, meta in items]
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        instance = [spec.problem, spec.seed, spec.problem_options] if ode.adaptive else i
        groups.setdefault(json.dumps(instance, sort_keys=True, default=str), []).append(i)
    out: list = [None] * len(items)
    for members in groups.values():
        problem = problem_of(items[members[0]][1])[1]
        times = [times_of(items[i][0], specs[i], problem) for i in members]
        flow = integrate(gradient_flow(problem, 1.0), problem.x0, np.concatenate(times), ode).numpy()
        for i, part in zip(members, np.split(flow, np.cumsum([len(t) for t in times])[:-1])):
            out[i] = (problem, part)
    return out


def _predict(traj, meta, ode, problem, both) -> tuple[dict, dict]:
    spec = SeriesSpec.from_dict(meta["spec"])
    scale = flow_scale(spec)
    t = traj["t"].to_numpy()
    x, y = both[: len(t)], both[len(t):]
    s = _plain_grid(spec, problem)
    curvature = path_curvature(problem, traj)
    err = distances(stack(traj["x"]), x)
    if keeps_vectors(problem):
        columns = {
            "kind": ["rescaled_flow"] * len(t) + ["plain_flow"] * len(s),
            "h": np.concatenate([traj["h"].to_numpy(), np.full(len(s), np.nan)]),
            "step": np.concatenate([traj["step"].to_numpy(), np.full(len(s), -1)]),
            "t": np.concatenate([t, s]),
            "err": np.concatenate([err, np.full(len(s), np.nan)]),
            "x": list(x) + list(y),
        }
    else:
        columns = {"kind": ["rescaled_flow"] * len(t), "h": traj["h"].to_numpy(), "step": traj["step"].to_numpy(),
                   "t": t, "err": err}
    finest = sorted(fit_window(sup_errors(traj["h"].to_numpy(), err), 2)["h"])
    factors = {repr(float(h)): rescale_estimate(traj, h, s, y, scale) for h in finest}
    info = dict(claim="K1", ode=ode.as_dict(), curvature_max=curvature, flow_scale=scale, rescale_factor=factors)
    return columns, info


def rescale_estimate(traj: pd.DataFrame, h: float, s: np.ndarray, y: np.ndarray, scale: float) -> float:
    """``c`` fitted to the run of step ``h`` against the plain flow ``y`` on the grid ``s``, within a factor 2 of
    its prediction ``scale``."""
    run = traj[(traj["h"] == h) & np.isfinite(traj["loss"])]
    return rescaling_factor(run["t"].to_numpy(), stack(run["x"]), s, y, (0.5 * scale, 2.0 * scale))


def path_curvature(problem, traj: pd.DataFrame, n_points: int = 5) -> float:
    """Largest Hessian eigenvalue met at ``n_points`` finite iterates of the finest run (SCIENCE.md 1.4a)."""
    finest = traj[traj["h"] == traj["h"].min()]
    finite = finest[np.isfinite(finest["loss"])]
    picks = finite.iloc[np.linspace(0, len(finite) - 1, min(n_points, len(finite))).astype(int)]
    return max_curvature(problem, stack(picks["x"])) if len(picks) else float("nan")


def errors(traj: pd.DataFrame, pred: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Sup distance to the rescaled flow per h, over the recorded rows (or a boolean subset of them)."""
    flow = pred[pred["kind"] == "rescaled_flow"]
    return sup_errors(traj["h"].to_numpy(), flow["err"].to_numpy(), rows)


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
    rows.append(_rescale_row(info, spec, window))
    points = err.assign(claim_id="K1", experiment=spec.experiment, problem=spec.problem, method=spec.method,
                        lam=spec.lam, seed=spec.seed, model="rescaled_flow")
    return rows, points


def _rescale_row(info, spec, window) -> dict:
    predicted = flow_scale(spec)
    ok_h = [h for h in sorted(window["h"])][:2]  # the two finest: those predict fitted c for
    estimates = [info["rescale_factor"][repr(float(h))] for h in ok_h]
    if not estimates:
        return row("K1", spec, "rescale_factor", predicted, float("nan"), note="no converged run")
    c = estimates[0]
    spread = abs(estimates[0] - estimates[1]) if len(estimates) > 1 else float("nan")
    regime = float(window.loc[window["h"] == min(ok_h), "regime"].iloc[0])
    return row("K1", spec, "rescale_factor", predicted, c, (c - spread, c + spread),
               h_min=min(ok_h), h_max=min(ok_h), regime=regime, n_points=len(estimates),
               note="fit at the finest h; interval from the change to the next-finest h")
