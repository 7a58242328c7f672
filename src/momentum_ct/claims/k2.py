"""Claim K2: the second-order modified equation follows the iterates to first order in h, with a
smaller error than K1's flow, most of the gain in the transient (SCIENCE.md 1.3).

Transient window: the first ``k_tr = ceil(ln(1e-3) / ln(lam))`` steps, those in which the fast
variable has kept more than 1e-3 of its initial distance from the slow manifold (``lam^k >= 1e-3``;
10 steps at lam = 0.5, 66 at lam = 0.9). It is a number of steps, not a time, because the
transient lasts about ``1/(1 - lam)`` steps whatever ``h``. Only recorded steps count, so the
experiment's ``dense_steps`` should cover ``k_tr``.

Rescaled GD is not modelled (see ``ct.second_order``): its series get no prediction and no rows.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..ct.fit import loglog_slope
from ..ct.integrate import OdeOptions, integrate
from ..ct.second_order import alpha, initial_state, second_order, second_order_hessian
from ..io import stack
from ..optim import coefficients, get_method
from ..train.series import SeriesSpec
from . import k1
from .common import distances, fit_window, flow_scale, keeps_vectors, problem_of, regime_number, row, sup_errors

TRANSIENT_LEFT = 1e-3
# prediction kinds: the substituted equation (every momentum method) and NAG's unsubstituted form
MODELS = {"second_order": "K2", "second_order_hessian": "K2 (Hessian form)"}


def transient_steps(lam: float) -> int:
    """``ceil(ln(1e-3) / ln(lam))``: steps until ``lam^k`` falls below 1e-3 (0 without momentum)."""
    return 0 if lam <= 0.0 else int(math.ceil(math.log(TRANSIENT_LEFT) / math.log(lam)))


def modelled(method: str) -> bool:
    return get_method(method).uses_momentum


def lag_ratio(method: str, lam: float, model: str = "second_order") -> float:
    """Constant-gradient estimate of K2's error over K1's (derived here): ``(1 - lam) |2a - 1| / (2 lam)``.

    Under a constant gradient ``g`` the iterates settle ``h lam g / (1 - lam)^2`` behind K1's flow after
    the transient, K2's solution ``alpha g / (1 - lam)`` behind it; the unsubstituted form lags like ``a = 0``.
    Where the transient lag dominates both sup errors, their ratio is the ratio of the lag mismatches.
    """
    _, _, a = coefficients(method, 1.0, lam)
    if model == "second_order_hessian":
        a = 0.0
    return (1.0 - lam) * abs(2.0 * a - 1.0) / (2.0 * lam)


def predict(traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions = OdeOptions()) -> tuple[dict, dict]:
    """K1's rescaled flow and K2's model(s) at every recorded step, rows aligned with ``traj``.

    ``columns``: ``kind`` (``rescaled_flow``, ``second_order`` and, for NAG, ``second_order_hessian``),
    ``h``, ``step``, ``t``, ``err`` (``|x_k - x(t_k)|``) and, up to ``VECTOR_MAX_DIM`` dimensions, the predicted
    ``x``. K2's systems are stiff for small ``h`` and go to ``ode.stiff()``.
    """
    return predict_batch([(traj, meta)], ode)[0]


def predict_batch(items: list[tuple[pd.DataFrame, dict[str, Any]]], ode: OdeOptions = OdeOptions()) -> list:
    """``predict`` for every series of a shard; K1's flow is solved once per problem instance (``k1.plain_flows``)."""
    specs = [SeriesSpec.from_dict(meta["spec"]) for _, meta in items]
    kept = [item for item, spec in zip(items, specs) if modelled(spec.method)]
    flows = iter(k1.plain_flows(kept, _flow_times, ode))
    return [_predict(traj, meta, spec, ode, *next(flows)) if modelled(spec.method) else _skipped(spec, ode)
            for (traj, meta), spec in zip(items, specs)]


def _flow_times(traj: pd.DataFrame, spec: SeriesSpec, problem) -> np.ndarray:
    return flow_scale(spec) * traj["t"].to_numpy()  # K1's rescaled flow is the plain flow at scale * t


def _skipped(spec: SeriesSpec, ode: OdeOptions) -> tuple[dict, dict]:
    info = dict(claim="K2", ode=ode.as_dict(), skipped=f"{spec.method}: one-step method, no transient to model")
    return {"kind": [], "h": [], "step": [], "t": [], "err": []}, info


def _predict(traj, meta, spec, ode, problem, flow) -> tuple[dict, dict]:
    info: dict[str, Any] = dict(claim="K2", ode=ode.as_dict())
    stiff = ode.stiff()
    h_col, t = traj["h"].to_numpy(), traj["t"].to_numpy()
    parts = {"rescaled_flow": flow}
    alphas = {}
    for h in sorted(set(h_col)):
        _, lam, a = coefficients(spec.method, h, spec.lam)
        alphas[repr(h)] = alpha(h, lam, a)
        rows = h_col == h
        models = {"second_order": second_order(problem, h, lam, a)}
        if a != 0.0:
            models["second_order_hessian"] = second_order_hessian(problem, h, lam, a)
        for kind, rhs in models.items():
            x = integrate(rhs, initial_state(problem), t[rows], stiff)[0].numpy()
            parts.setdefault(kind, np.full((len(t), problem.dim), np.nan))[rows] = x
    recorded = stack(traj["x"])
    columns = {"kind": [], "h": [], "step": [], "t": [], "err": [], "x": []}
    for kind, x in parts.items():
        columns["kind"] += [kind] * len(t)
        columns["h"] += list(h_col)
        columns["step"] += list(traj["step"].to_numpy())
        columns["t"] += list(t)
        columns["err"] += list(distances(recorded, x))
        columns["x"] += list(x)
    if not keeps_vectors(problem):
        del columns["x"]
    info.update(stiff_ode=stiff.as_dict(), alpha=alphas, initial_velocity="x'(0) = 0 (x_{-1} = x_0)",
                curvature_max=k1.path_curvature(problem, traj), transient_steps=transient_steps(spec.lam),
                transient_rule=f"steps k with lam^k >= {TRANSIENT_LEFT}")
    return columns, info


def _errors(traj, pred, kind, rows=None) -> pd.DataFrame:
    part = pred[pred["kind"] == kind]
    if len(part) != len(traj):
        raise ValueError(f"K2 prediction {kind!r} has {len(part)} rows for {len(traj)} recorded steps")
    return sup_errors(traj["h"].to_numpy(), part["err"].to_numpy(), rows)


def measure(traj: pd.DataFrame, pred: pd.DataFrame, info: dict, meta: dict, *, fit_points: int = 4,
            confidence: float = 0.95) -> tuple[list[dict], pd.DataFrame]:
    """Orders of K2 over the horizon and the transient, and K2's error over K1's on the same runs."""
    spec, _ = problem_of(meta)
    if "skipped" in info:
        return [], pd.DataFrame()
    curvature = info["curvature_max"]
    k_tr = info["transient_steps"]
    transient = traj["step"].to_numpy() <= k_tr
    windows = {"horizon": None, "transient": transient}
    diverged = [r["h"] for r in meta["runs"] if r["diverged"]]
    note = f"diverged at h={diverged}; " if diverged else ""
    rows, points = [], []
    for window, mask in windows.items():
        reference = k1.errors(traj, pred, mask).rename(columns={"err": "err_k1"})
        for kind in [k for k in MODELS if (pred["kind"] == k).any()]:
            err = _errors(traj, pred, kind, mask).merge(reference, on="h")
            err["regime"] = [regime_number(h, curvature, spec.lam) for h in err["h"]]
            err["ratio"] = err["err"] / err["err_k1"]
            fit_rows = fit_window(err, fit_points)
            fit = loglog_slope(fit_rows["h"], fit_rows["err"], confidence)
            suffix = (("_transient" if window == "transient" else "")
                      + ("_hessian_form" if kind != "second_order" else ""))
            span = dict(h_min=fit_rows["h"].min(), h_max=fit_rows["h"].max(), regime=fit_rows["regime"].max())
            where = f"{window}" + (f" (steps k <= {k_tr})" if window == "transient" else "")
            rows.append(row("K2", spec, "order" + suffix, 1.0, fit.slope, (fit.ci_low, fit.ci_high),
                            n_points=fit.n_points, note=f"{note}{MODELS[kind]}, sup over the {where}", **span))
            ratios = fit_rows.sort_values("h")["ratio"]
            rows.append(row("K2", spec, "error_ratio" + suffix, 1.0, float(ratios.max()), n_points=len(ratios),
                            note=f"{note}{MODELS[kind]}/K1, sup over the {where}; largest over the fitted h, "
                                 f"{float(ratios.iloc[0]):.3g} at the finest; constant-gradient lag estimate "
                                 f"{lag_ratio(spec.method, spec.lam, kind):.3g}", **span))
            points.append(err.assign(model=kind, window=window))
    points = pd.concat(points, ignore_index=True).assign(
        claim_id="K2", experiment=spec.experiment, problem=spec.problem, method=spec.method, lam=spec.lam,
        seed=spec.seed, step=np.nan, kind="sup")
    return rows, pd.concat([points, _curves(traj, pred, spec)], ignore_index=True)


def _curves(traj, pred, spec) -> pd.DataFrame:
    """``|x_k - model(t_k)|`` along the finest run, for K1 and K2 (the figure of where K2 gains)."""
    h = traj["h"].min()
    rows = (traj["h"] == h).to_numpy()
    out = []
    for kind in ["rescaled_flow", *MODELS]:
        part = pred[pred["kind"] == kind]
        if part.empty:
            continue
        err = part["err"].to_numpy()[rows]
        out.append(pd.DataFrame(dict(h=h, step=traj["step"][rows].to_numpy(), t=traj["t"][rows].to_numpy(),
                                     err=err, model=kind)))
    return pd.concat(out, ignore_index=True).assign(
        claim_id="K2", experiment=spec.experiment, problem=spec.problem, method=spec.method, lam=spec.lam,
        seed=spec.seed, kind="curve", window="curve")
