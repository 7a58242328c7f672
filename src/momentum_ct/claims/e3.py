"""Claim E3: for small h the EKI ensemble mean follows the ensemble's preconditioned gradient flow, to first
order in h (K1's machinery: sup distance per h, log-log slope over the finest h, regime number).

The prediction integrates the ensemble's continuous-time limit ``du_j/dt = -C_uG Gamma^-1 (G(u_j) - y)`` from
the run's own initial ensemble (``ct.ensemble``); for a linear forward map it is exactly ``-C_uu grad Phi(u_j)``,
which is integrated too (gradient by autograd) and compared with it: their gap is judged where the forward
map is measured to be linear, and reported in the note where it is not (a network).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..ct.ensemble import ensemble_flow, nonlinearity, preconditioned_gradient_flow, stiffness
from ..ct.fit import loglog_slope
from ..ct.integrate import OdeOptions, integrate
from ..errors import ConfigError
from ..io import stack
from ..optim import EnsembleKalmanInversion, MethodSpec, resolve_method
from .claim import Claim, Figure, Quantity, quantities
from .common import distances, fit_window, problem_of, row, sup_errors

# Below this the forward map is linear to round-off, and the two flows must coincide.
LINEAR = 1e-8


def initial_ensemble(problem, spec: MethodSpec) -> torch.Tensor:
    """The J x dim ensemble the method starts from (drawn exactly as ``EnsembleKalmanInversion.init``)."""
    columns = {k: torch.tensor([[v]], dtype=problem.x0.dtype) for k, v in spec.columns(1.0, 0.0).items()}
    return spec.method.init(problem.x0.reshape(1, -1), columns)["u"][0]


def predict(traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions = OdeOptions()) -> tuple[dict, dict]:
    """Means of the ensemble flow and of the preconditioned gradient flow at every recorded ``t``."""
    spec, problem = problem_of(meta)
    method = resolve_method(spec.method)
    if not isinstance(method.method, EnsembleKalmanInversion):
        raise ConfigError(f"claim E3 predicts ensemble methods only, not {spec.method!r}")
    gamma = method.hyperparameters["noise"]
    u0 = initial_ensemble(problem, method)
    t = traj["t"].to_numpy()
    models = {"ensemble_flow": ensemble_flow(problem, gamma),
              "gradient_flow": preconditioned_gradient_flow(problem, gamma)}
    xs = {kind: integrate(rhs, u0, t, ode).mean(1).numpy() for kind, rhs in models.items()}
    columns = {
        "kind": [kind for kind in models for _ in t],
        "h": np.tile(traj["h"].to_numpy(), len(models)),
        "step": np.tile(traj["step"].to_numpy(), len(models)),
        "t": np.tile(t, len(models)),
        "x": [x for kind in models for x in xs[kind]],
    }
    info = dict(claim="E3", ode=ode.as_dict(), gamma=gamma, stiffness=stiffness(problem, gamma, u0),
                nonlinearity=nonlinearity(problem, u0))
    return columns, info


def measure(traj: pd.DataFrame, pred: pd.DataFrame, info: dict, meta: dict, *, fit_points: int = 4,
            confidence: float = 0.95) -> tuple[list[dict], pd.DataFrame]:
    """The order of the mean's distance to the ensemble flow, and the gap between the two flows."""
    spec, _ = problem_of(meta)
    flows = {kind: stack(pred.loc[pred["kind"] == kind, "x"]) for kind in ("ensemble_flow", "gradient_flow")}
    err = sup_errors(traj["h"].to_numpy(), distances(stack(traj["x"]), flows["ensemble_flow"]))
    err["regime"] = err["h"] * info["stiffness"]
    window = fit_window(err, fit_points)
    fit = loglog_slope(window["h"], window["err"], confidence)
    x0 = stack(traj["x"])[0]
    travel = float(np.max(np.linalg.norm(flows["ensemble_flow"] - x0, axis=1)))
    gap = float(np.max(np.linalg.norm(flows["ensemble_flow"] - flows["gradient_flow"], axis=1))) / travel \
        if travel > 0 else math.nan
    linear = info["nonlinearity"] <= LINEAR
    diverged = [r["h"] for r in meta["runs"] if r["diverged"]]
    note = "; ".join(filter(None, [
        f"diverged at h={diverged}" if diverged else "",
        "" if linear else (f"nonlinear forward map (nonlinearity {info['nonlinearity']:.2g}): the mean's limit is "
                           f"the derivative-free ensemble flow, {gap:.3g} (relative) from -C_uu grad Phi's"),
    ]))
    rows = [row("E3", spec, "order", 1.0, fit.slope, (fit.ci_low, fit.ci_high),
                h_min=window["h"].min() if len(window) else math.nan,
                h_max=window["h"].max() if len(window) else math.nan,
                regime=window["regime"].max() if len(window) else math.nan, n_points=fit.n_points, note=note)]
    if linear:
        rows.append(row("E3", spec, "flow_gap", 0.0, gap, n_points=1,
                        note=f"linear forward map (nonlinearity {info['nonlinearity']:.2g})"))
    points = err.assign(claim_id="E3", experiment=spec.experiment, problem=spec.problem, method=spec.method,
                        lam=spec.lam, seed=spec.seed, model="ensemble_flow")
    return rows, points


CLAIM = Claim(
    id="E3",
    prediction_columns=("kind", "t", "x"),
    statement="For small h the EKI ensemble mean follows the gradient flow preconditioned by the ensemble "
              "covariance, du_j/dt = -C_uu grad Phi(u_j) (exactly for linear G; for nonlinear G the derivative-free "
              "flow -C_uG Gamma^-1 (G(u_j) - y)).",
    source="Kovachki & Stuart, Inverse Problems 35 (2019) 095005 (SCIENCE.md 3)",
    prediction="sup_{kh<=T} |mean u_k - mean u(kh)| = O(h) (order 1); the derivative-free flow and -C_uu grad Phi "
               "coincide for linear G",
    measurement="log-log slope of the sup distance between the ensemble mean and the mean of the integrated "
                "ensemble flow (same initial ensemble) over the finest h halvings (95% CI), regime number h times the "
                "largest eigenvalue of dG Gamma^-1 dG^T / J at the start; the largest distance between the two "
                "flows' means over the distance the mean travels, judged where G is measured to be linear",
    quantities=quantities(
        Quantity("order", "order of convergence in h of the ensemble mean", 0.1, regime_limit=0.05, min_points=3),
        Quantity("flow_gap", "relative gap between the derivative-free ensemble flow and -C_uu grad Phi (linear G)",
                 1e-6, comparison="below"),
    ),
    predict=predict,
    measure=measure,
    requires=("several_h", "fixed_step_ensemble"),
    figures={
        "e3_error_vs_h": Figure(
            "momentum_ct.plots.e3:error_vs_h",
            "E3: largest distance between the EKI ensemble mean and the mean of its continuous-time limit "
            "du_j/dt = -C_uG Gamma^-1 (G(u_j) - y) (= -C_uu grad Phi(u_j) for linear G), started from the same "
            "ensemble, against h, log-log, one panel per experiment; the fitted order is written in each panel "
            "(predicted: 1 within {order.tolerance_text}; dotted: slope 1)."),
    },
)
