"""Claim K4: momentum with (h, lam) and GD with h/(1-lam) give the same curves against t/(1-lam).

The claim is about the limit h -> 0, so it is judged by how the gap between the curves behaves as h
shrinks, not by its size at one h. Two quantities per curve (training loss, test accuracy):

- the gap's order in h: the log-log slope of the largest gap over the finest h (95% CI), predicted 1,
  with the regime number ``h L / (1 - lam)^2`` at the coarsest fitted h beside it (SCIENCE.md 1.4a);
- the gap at the smallest h against its leading term (SCIENCE.md 1.5, derived for a constant
  gradient): momentum started from rest lags GD with ``h/(1-lam)`` by ``lam h/(1-lam)^2`` in rescaled
  time ``tau = t/(1-lam)``, so the predicted gap is the largest change of the rescaled-GD curve over
  that lag, ``max_k |g(tau_k) - g(tau_k - lag)|`` (``g`` interpolated linearly between records).
  Reported as the ratio measured / predicted, predicted 1. A test-accuracy gap is a count of test
  points on which the two networks disagree about being right, a few at small h, so its ratio carries
  the exact Poisson (Garwood) interval of that count; the loss gap is a smooth function and has none.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..ct.fit import loglog_slope, max_curvature
from ..io import stack
from ..problems import make_problem
from ..train.series import SPARSE_VECTOR_RECORDS, SeriesSpec
from .claim import Claim, Figure, Quantity, quantities
from .common import regime_number, row

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.

REFERENCE = "gd_rescaled"
CURVES = {"loss": "loss", "test_accuracy": "accuracy"}  # trajectory column -> quantity suffix
# iterates of the finest reference run where the curvature L is measured: those its run keeps vectors at
CURVE_POINTS = SPARSE_VECTOR_RECORDS


def lag(h: float, lam: float) -> float:
    """The lag of momentum started from rest behind GD with ``h/(1-lam)``, in rescaled time."""
    return lam * h / (1.0 - lam) ** 2


def _gap(a: pd.DataFrame, ref: pd.DataFrame, column: str) -> float:
    """Largest |a - ref| over the common records (both runs record at the same steps of the same h)."""
    if not (np.all(np.isfinite(a[column])) and np.all(np.isfinite(ref[column]))) or len(a) != len(ref):
        return math.inf
    return float(np.max(np.abs(a[column].to_numpy() - ref[column].to_numpy())))


def _lag_gap(ref: pd.DataFrame, column: str, shift: float) -> float:
    """Largest change of the reference curve over ``shift`` in rescaled time."""
    tau, y = ref["tau"].to_numpy(), ref[column].to_numpy()
    if not np.all(np.isfinite(y)):
        return math.nan
    return float(np.max(np.abs(y - np.interp(np.maximum(tau - shift, tau[0]), tau, y))))


def gaps(traj: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, lam, seed, h): the largest gap of each curve to rescaled GD and its lag prediction.

    A diverged run has an infinite gap.
    """
    traj = traj.assign(tau=traj["t"] / (1.0 - traj["lam"]))
    out = []
    for (lam, seed, h), group in traj.groupby(["lam", "seed", "h"], sort=True):
        ref = group[group["method"] == REFERENCE].sort_values("step")
        if ref.empty:
            continue
        for method, run in group.groupby("method"):
            if method == REFERENCE:
                continue
            entry = dict(method=method, lam=lam, seed=seed, h=h, lag=lag(h, lam))
            for column, suffix in CURVES.items():
                if column in run:
                    entry[f"gap_{suffix}"] = _gap(run.sort_values("step"), ref, column)
                    entry[f"lag_gap_{suffix}"] = _lag_gap(ref, column, lag(h, lam))
            out.append(entry)
    return pd.DataFrame(out)


def _curvature(traj: pd.DataFrame, problem) -> float:
    """Largest Hessian eigenvalue met along the finest reference run of ``traj`` (the regime number's L)."""
    ref = traj[(traj["method"] == REFERENCE) & (traj["h"] == traj["h"].min())]
    ref = ref[np.isfinite(ref["loss"]) & (ref["x"].map(len) > 0)]  # records with vectors (sparse runs: five)
    if ref.empty:
        return math.nan
    picks = ref.iloc[np.linspace(0, len(ref) - 1, min(CURVE_POINTS, len(ref))).astype(int)]
    return max_curvature(problem, stack(picks["x"]))


def count_interval(count: float, confidence: float) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson count."""
    from scipy import stats
    alpha = 1.0 - confidence
    low = 0.0 if count <= 0 else stats.chi2.ppf(alpha / 2, 2 * count) / 2
    return float(low), float(stats.chi2.ppf(1 - alpha / 2, 2 * (count + 1)) / 2)


def measure(traj: pd.DataFrame, specs: dict[tuple, SeriesSpec], *, fit_points: int = 4, confidence: float = 0.95,
            **_: Any) -> tuple[list[dict], pd.DataFrame]:
    """Per (method, lam, seed): each curve's gap order over the finest ``fit_points`` h and its gap at the
    smallest h over the lag prediction."""
    table = gaps(traj)
    any_spec = next(iter(specs.values()))
    problem = make_problem(any_spec.problem, seed=any_spec.seed, **any_spec.problem_options)
    curvature = {lam: _curvature(traj[traj["lam"] == lam], problem) for lam in sorted(set(table.get("lam", [])))}
    n_test = problem.test_data[0].shape[0] if problem.test_data else 0
    rows = []
    for (method, lam, seed), g in table.groupby(["method", "lam", "seed"]):
        spec = specs[(method, lam, seed)]
        g = g.sort_values("h")
        sampling = "full batch" if spec.batch_size is None else f"mini-batch {spec.batch_size}"
        for suffix in CURVES.values():
            if f"gap_{suffix}" not in g:
                continue
            ok = g[np.isfinite(g[f"gap_{suffix}"]) & (g[f"gap_{suffix}"] > 0)]
            window = ok.head(fit_points)
            fit = loglog_slope(window["h"], window[f"gap_{suffix}"], confidence)
            h_max = float(window["h"].max()) if len(window) else math.nan
            rows.append(row("K4", spec, f"gap_order_{suffix}", 1.0, fit.slope, (fit.ci_low, fit.ci_high),
                            h_min=float(window["h"].min()) if len(window) else math.nan, h_max=h_max,
                            regime=regime_number(h_max, curvature[lam], lam), n_points=fit.n_points,
                            note=f"{sampling}; finest {fit.n_points} h"))
            smallest = g.iloc[0]
            measured, predicted = float(smallest[f"gap_{suffix}"]), float(smallest[f"lag_gap_{suffix}"])
            ratio = measured / predicted if predicted > 0 and math.isfinite(measured) else math.nan
            ci = (math.nan, math.nan)
            if suffix == "accuracy" and n_test and math.isfinite(ratio):
                low, high = count_interval(round(measured * n_test), confidence)
                ci = (low / n_test / predicted, high / n_test / predicted)
            rows.append(row("K4", spec, f"lag_ratio_{suffix}", 1.0, ratio, ci, h_min=float(smallest["h"]),
                            h_max=float(smallest["h"]), regime=regime_number(float(smallest["h"]), curvature[lam], lam),
                            n_points=1, note=f"{sampling}; gap {measured:.4g}, lag prediction {predicted:.4g}"))
    points = table.assign(claim_id="K4", experiment=any_spec.experiment, problem=any_spec.problem,
                          regime=[regime_number(h, curvature[lam], lam) for h, lam in zip(table["h"], table["lam"])]
                          if not table.empty else [])
    return rows, points


_ORDER = "order in h of the largest {curve} gap to rescaled GD over the finest h"
_LAG = "largest {curve} gap at the smallest h over its lag prediction"

CLAIM = Claim(
    id="K4",
    path_vectors=False,  # losses and accuracies; iterates only at five records (the curvature L)
    statement="On network training HB and NAG with (h, lam) and GD with h / (1 - lam) give loss and accuracy "
              "curves that coincide against t = k h / (1 - lam) for small h and separate as h grows.",
    source="Kovachki & Stuart, JMLR 22(17) 2021, numerical experiments (SCIENCE.md 1.5); the lag's leading term "
           "derived here for a constant gradient",
    prediction="the largest gap between the momentum curve and the rescaled-GD curve vanishes like h (order 1); "
               "at small h it is the change of the curve over the lag lam h / (1 - lam)^2 in rescaled time of "
               "momentum started from rest",
    measurement="largest absolute gap over the common records of training loss and test accuracy; its log-log "
                "slope in h over the finest h (95% CI; regime h L / (1 - lam)^2 at the coarsest fitted h, L the "
                "largest Hessian eigenvalue along the finest rescaled-GD run); the gap at the smallest h over the "
                "largest change of the rescaled-GD curve over the lag (accuracy: exact Poisson interval of the count "
                "of test points behind the gap)",
    quantities=quantities(
        Quantity("gap_order_loss", _ORDER.format(curve="training-loss"), 0.2, regime_limit=0.05, min_points=3),
        Quantity("gap_order_accuracy", _ORDER.format(curve="test-accuracy"), 0.2, regime_limit=0.05, min_points=3),
        Quantity("lag_ratio_loss", _LAG.format(curve="training-loss"), 0.25, relative=True, regime_limit=0.05),
        Quantity("lag_ratio_accuracy", _LAG.format(curve="test-accuracy"), 0.25, relative=True, regime_limit=0.05),
    ),
    measure=measure,
    scope="experiment",
    dtypes=("float64", "float32"),  # judged on curves, not on orders near round-off
    requires=("network", "test_accuracy", "several_h", "momentum", "rescaled_gd"),
    figures={
        "k4_gap_vs_h": Figure(
            "momentum_ct.plots.k4:gap_vs_h",
            "K4: largest gap between the training-loss and test-accuracy curves of the momentum methods with "
            "(h, lam) and of GD with h/(1-lam), against rescaled time, as a function of h (log-log, one panel per "
            "experiment and curve); dashed: the lag prediction, the change of the rescaled-GD curve over "
            "lam h/(1-lam)^2; dotted: slope 1. Predicted: order 1 within {gap_order_loss.tolerance_text}, the gap "
            "at the smallest h within {lag_ratio_loss.tolerance_text} of the lag prediction."),
        "k4_curves": Figure(
            "momentum_ct.plots.k4:curves",
            "K4: training loss and test accuracy of the momentum methods and of GD with h/(1-lam) against rescaled "
            "time t/(1-lam), at the smallest and the largest learning rate of the sweep.",
            source="trajectories"),
    },
)
