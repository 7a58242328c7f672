"""Helpers shared by the measure modules: rebuilding a series' problem, errors per h, result rows."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..problems import Problem, make_problem
from ..train.series import SeriesSpec

# Below this the error is float64 round-off, not convergence (SCIENCE.md 1.4a).
ROUNDOFF_FLOOR = 1e-11
# Predictions hold, per recorded step, the distance the measures read (``err``: recorded iterate to predicted
# iterate, or velocity to predicted velocity); their predicted vectors (``x``) too up to this dimension, for users
# and the phase portrait. Above it the vectors would make a network's predictions a second copy of its trajectories.
VECTOR_MAX_DIM = 16

MEASURE_COLUMNS = ["claim_id", "experiment", "problem", "method", "lam", "seed", "quantity", "predicted",
                   "measured", "ci_low", "ci_high", "h_min", "h_max", "regime", "n_points", "note"]


def problem_of(meta: dict[str, Any]) -> tuple[SeriesSpec, Problem]:
    spec = SeriesSpec.from_dict(meta["spec"])
    return spec, make_problem(spec.problem, seed=spec.seed, **spec.problem_options)


def flow_scale(spec: SeriesSpec) -> float:
    """``1/(1-lam)``: the time-rescaling of K1 (plain GD runs at its own rate)."""
    return 1.0 if spec.method == "gd" else 1.0 / (1.0 - spec.lam)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a_k - b_k|`` per row (rows: recorded steps)."""
    return np.linalg.norm(a - b, axis=1)


def keeps_vectors(problem: Problem) -> bool:
    return problem.dim <= VECTOR_MAX_DIM


def sup_errors(h: np.ndarray, err: np.ndarray, rows: np.ndarray | None = None) -> pd.DataFrame:
    """``sup_k |x_k - x(t_k)|`` per h over the recorded rows (optionally a boolean subset), from the per-row
    distances ``err`` (a non-finite distance counts as infinite)."""
    err = np.asarray(err, dtype=float)
    err = np.where(np.isfinite(err), err, np.inf)
    frame = pd.DataFrame({"h": np.asarray(h), "err": err})
    if rows is not None:
        frame = frame[rows]
    return frame.groupby("h", sort=True)["err"].max().reset_index()


def fit_window(errors: pd.DataFrame, n_fit: int) -> pd.DataFrame:
    """The finest ``n_fit`` halvings whose errors are finite and above round-off."""
    ok = errors[np.isfinite(errors["err"]) & (errors["err"] > ROUNDOFF_FLOOR)]
    return ok.sort_values("h").head(n_fit)


def row(claim_id: str, spec: SeriesSpec, quantity: str, predicted: float, measured: float,
        ci: tuple[float, float] = (math.nan, math.nan), h_min: float = math.nan, h_max: float = math.nan,
        regime: float = math.nan, n_points: int = 0, note: str = "") -> dict[str, Any]:
    return dict(claim_id=claim_id, experiment=spec.experiment, problem=spec.problem, method=spec.method,
                lam=spec.lam, seed=spec.seed, quantity=quantity, predicted=predicted, measured=measured,
                ci_low=ci[0], ci_high=ci[1], h_min=h_min, h_max=h_max, regime=regime, n_points=n_points, note=note)


def regime_number(h: float, curvature: float, lam: float) -> float:
    """``h L / (1 - lam)^2``: well below 1 (say < 0.05) in the asymptotic regime (SCIENCE.md 1.4a)."""
    return h * curvature / (1.0 - lam) ** 2
