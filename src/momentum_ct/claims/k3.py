"""Claim K3: an exponentially attractive invariant manifold, and on it a modified loss (SCIENCE.md 1.4).

Manifold. In the velocity ``m_k = (x_k - x_{k-1}) / h`` of the recurrence
``m_{k+1} = lam m_k - grad f(x_k + a h m_k)``, ``x_{k+1} = x_k + h m_{k+1}``, the invariant manifold
``m = phi(x)`` solves ``phi(x + h phi(x)) = lam phi(x) - grad f(x + a h phi(x))``; expanding in ``h``
(derived here)::

    phi(x) = -g/(1 - lam) - h [1 - a (1 - lam)] / (1 - lam)^3  H g + O(h^2),   g = grad f(x), H = Hess f(x)

The distance of ``m_k`` from the leading-order term levels off at the size of the ``O(h)`` term;
from the corrected manifold, at ``O(h^2)``. Each contracts by about ``lam`` per step until then.
(The reduced map ``x_{k+1} = x_k + h phi(x_{k+1})`` expanded once more gives exactly the paper's
``F_h`` flow of ``ct.modified``, a check of both coefficients.)

Contraction ratio: ``exp`` of the least-squares slope of ``log |m_k - phi(x_k)|`` against ``k`` over
the first recorded steps ``k = 0, 1, ...`` while the distance stays above ``FLOOR_FACTOR`` times its
floor estimate: ``|h phi_1(x_k)|`` for the leading-order manifold, that times the regime number
``h L/(1 - lam)^2`` for the corrected one. Reported at the finest h with at least three such steps.

Modified loss. After the transient the flows of the competing modified losses (``ct.modified``),
each started from the same recorded iterate ``x_{k_0}`` at ``t_{k_0}``, are compared with the
iterates up to the horizon. ``k_0`` is the first recorded step at or after ``t_0``, a time common to
the series: the largest over its h of ``t_tr(h) = 3 h ln h / ln lam``, where ``lam^k < h^3`` sets in
(SCIENCE.md 1.4), capped at half the horizon; runs whose own ``t_tr`` exceeds ``t_0`` are left out
of the comparison. The paper's ``F_h`` is also run from ``x_0`` at ``t = 0`` (through the transient),
where its order drops to 1.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..ct.fit import geometric_ratio, loglog_slope
from ..ct.integrate import OdeOptions, integrate, integrate_stack
from ..ct.modified import (MODIFIED_LOSSES, coefficient, gradient_and_curvature, modified_flow, modified_flows,
                           time_scale)
from ..io import stack
from ..optim import coefficients, get_method
from . import k1
from .common import distances, fit_window, keeps_vectors, problem_of, regime_number, row, sup_errors

PAPER = "kovachki_stuart"
FORMULAS = [PAPER] + [f for f in MODIFIED_LOSSES if f != PAPER]  # the paper's first: it names coinciding ones
FLOOR_FACTOR = {"leading": 10.0, "corrected": 100.0}
TRANSIENT_POWER = 3  # lam^k < h^3
MANIFOLD_KINDS = {"leading": "manifold", "corrected": "manifold_corrected"}
# err: |x_k - flow(t_k)| (modified flows) or |m_k - phi(x_k)| (manifolds); floor: |h phi_1(x_k)| (manifolds)
PREDICTION_COLUMNS = ("kind", "formula", "h", "step", "t", "err", "floor", "x")
# Up to this dimension a series' modified flows are one stacked solve (about 10x faster on the quadratic and
# the toy, whose right-hand sides cost little more than their call overhead); above it, one solve per flow:
# on the digits MLP the arithmetic dominates and the stack, stepping as finely as its most demanding member,
# was slower (0.8x, benchmarks/predictions.py).
STACK_MAX_DIM = 100


def transient_time(h: float, lam: float) -> float:
    """``3 h ln h / ln lam``: the time ``k h`` at which ``lam^k`` falls below ``h^3`` (0 without momentum)."""
    return 0.0 if lam <= 0.0 else TRANSIENT_POWER * h * math.log(h) / math.log(lam)


def first_order_term(h: float, lam: float, a: float) -> float:
    """``-h [1 - a (1 - lam)] / (1 - lam)^3``: the factor of ``H g`` in the manifold's ``O(h)`` term."""
    return -h * (1.0 - a * (1.0 - lam)) / (1.0 - lam) ** 3


def fast_root(h: float, lam: float, a: float, eigenvalues) -> float:
    """On a quadratic: the largest modulus over Hessian eigenvalues ``mu`` of the fast root of
    ``z^2 - (1 + lam - (1 + a) h mu) z + (lam - a h mu)``, the exact per-step contraction of each mode."""
    best = 0.0
    for mu in np.asarray(eigenvalues, dtype=float):
        roots = np.roots([1.0, -(1.0 + lam - (1.0 + a) * h * mu), lam - a * h * mu])
        best = max(best, float(np.min(np.abs(roots))))
    return best


def _empty_columns() -> dict[str, list]:
    return {c: [] for c in PREDICTION_COLUMNS}


def _append(columns, kind, formula, h, steps, t, x, err, floor=None) -> None:
    n = len(steps)
    columns["err"] += [float(v) for v in err]
    columns["floor"] += [math.nan] * n if floor is None else [float(v) for v in floor]
    columns["kind"] += [kind] * n
    columns["formula"] += [formula] * n
    columns["h"] += [float(h)] * n
    columns["step"] += [int(s) for s in steps]
    columns["t"] += [float(v) for v in t]
    columns["x"] += list(np.asarray(x, dtype=np.float64))


def predict(traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions = OdeOptions()) -> tuple[dict, dict]:
    """Manifold velocities at the dense steps, and every distinct modified flow after the transient.

    ``columns``: ``kind`` (``manifold``, ``manifold_corrected``: predicted velocity ``phi(x_k)`` in ``x``;
    ``modified_flow``, ``modified_flow_from_start``: predicted iterate), ``formula`` (modified flows),
    ``h``, ``step``, ``t``, ``err`` (the distance of the recorded velocity or iterate from its prediction),
    ``floor`` (manifolds: ``|h phi_1(x_k)|``) and, up to ``VECTOR_MAX_DIM`` dimensions, the predicted ``x``.
    """
    spec, problem = problem_of(meta)
    momentum = get_method(spec.method).uses_momentum
    t_max = float(traj["t"].max())
    finite = traj.groupby("h")["loss"].apply(lambda s: bool(np.all(np.isfinite(s))))
    hs = sorted(h for h in finite.index if finite[h])
    t_tr = {h: transient_time(h, spec.lam) for h in hs}
    t0 = min(max(t_tr.values(), default=0.0), 0.5 * t_max)
    columns = _empty_columns()
    flows = []  # (kind, formula, h, steps, t, start, c, scale): the modified flows to integrate
    info: dict[str, Any] = dict(claim="K3", ode=ode.as_dict(), t0=t0, transient_time={repr(h): t_tr[h] for h in hs},
                                transient_rule=f"lam^k < h^{TRANSIENT_POWER}, t0 capped at half the horizon",
                                excluded_h=[h for h in hs if t_tr[h] > t0], coefficients={}, aliases={},
                                start_step={}, fast_root={})
    for h in hs:
        run = traj[traj["h"] == h].sort_values("step")
        step_size, lam, a = coefficients(spec.method, h, spec.lam)
        steps, t, x = run["step"].to_numpy(), run["t"].to_numpy(), stack(run["x"])
        if momentum and spec.dense_steps > 0:
            head = steps < spec.dense_steps  # velocities are kept (and compared) in the dense head only
            _manifold(columns, problem, h, lam, a, steps[head], t[head], x[head], stack(run["m"][head]))
            if problem.hessian is not None:
                info["fast_root"][repr(h)] = fast_root(h, lam, a, torch.linalg.eigvalsh(problem.hessian).numpy())
        scale = time_scale(step_size, lam, h)
        coefs = {f: coefficient(f, step_size, lam, a, h) for f in FORMULAS}
        aliases = {f: next(g for g in FORMULAS if math.isclose(coefs[g], coefs[f], rel_tol=1e-12, abs_tol=1e-300))
                   for f in FORMULAS}  # each formula -> the first one with the same coefficient (it is integrated)
        info["coefficients"][repr(h)] = coefs
        info["aliases"][repr(h)] = aliases
        flows.append(("modified_flow_from_start", PAPER, h, steps, t, problem.x0, coefs[PAPER], scale, x))
        if h in info["excluded_h"]:
            continue
        start = int(np.argmax(t >= t0))
        info["start_step"][repr(h)] = int(steps[start])
        x_start = torch.as_tensor(x[start])
        for f in sorted(set(aliases.values()), key=FORMULAS.index):
            flows.append(("modified_flow", f, h, steps[start:], t[start:], x_start, coefs[f], scale, x[start:]))
    if flows and problem.dim <= STACK_MAX_DIM:
        # every flow of the series in one solve, each member from its own start (the flows are autonomous)
        kind, formula, hs_, steps_, ts, starts, cs, scales, _ = zip(*flows)
        rhs = modified_flows(problem, torch.tensor(cs, dtype=torch.float64), torch.tensor(scales, dtype=torch.float64))
        ys = [y.numpy() for y in integrate_stack(rhs, torch.stack(starts), [t - t[0] for t in ts], ode)]
    else:
        ys = [integrate(modified_flow(problem, c, scale), start, t - t[0], ode).numpy()
              for *_, t, start, c, scale, _ in flows]
    for (kind, formula, h, steps, t, *_, recorded), y in zip(flows, ys):
        _append(columns, kind, formula, h, steps, t, y, distances(recorded, y))
    info["curvature_max"] = k1.path_curvature(problem, traj)
    if not keeps_vectors(problem):
        del columns["x"]
    return columns, info


def _manifold(columns, problem, h, lam, a, steps, t, x, m) -> None:
    """Leading-order and corrected manifold velocities at the given recorded steps (the dense head), their distances
    from the recorded velocities ``m`` and the leading-order distance's floor ``|h phi_1(x_k)|``."""
    if not len(steps):
        return
    both = torch.func.vmap(lambda xi: gradient_and_curvature(problem, xi))
    g, hg = (torch.cat(parts) for parts in zip(*(both(torch.as_tensor(chunk))
                                                  for chunk in np.array_split(x, max(1, len(x) // 64)))))
    lead = (-g / (1.0 - lam)).numpy()
    corrected = lead + first_order_term(h, lam, a) * hg.numpy()
    floor = distances(corrected, lead)
    _append(columns, MANIFOLD_KINDS["leading"], "", h, steps, t, lead, distances(m, lead), floor)
    _append(columns, MANIFOLD_KINDS["corrected"], "", h, steps, t, corrected, distances(m, corrected), floor)


def _joined(traj: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    """Recorded rows matched to a prediction's rows by ``(h, step)``: columns of ``traj`` plus ``pred``."""
    return traj.merge(part[["h", "step", "x"]].rename(columns={"x": "pred"}), on=["h", "step"], how="inner")


def contraction(distances: np.ndarray, floors: np.ndarray, factor: float, confidence: float):
    """Fit ``d_k ~ C r^k`` over the first steps ``k = 0, 1, ...`` with ``d_k > factor * floor_k``.

    ``distances`` must be at consecutive steps from 0. Returns ``(r, ci_low, ci_high, n_steps)``.
    """
    above = (distances > factor * floors) & np.isfinite(distances) & (distances > 0)
    n = len(above) if above.all() else int(np.argmin(above))
    fit = geometric_ratio(distances[:n], confidence)
    return fit.slope, fit.ci_low, fit.ci_high, n


def measure(traj: pd.DataFrame, pred: pd.DataFrame, info: dict, meta: dict, *, fit_points: int = 4,
            confidence: float = 0.95) -> tuple[list[dict], pd.DataFrame]:
    spec, _ = problem_of(meta)
    rows: list[dict] = []
    points: list[pd.DataFrame] = []
    if (pred["kind"] == MANIFOLD_KINDS["leading"]).any():
        r, p = _measure_manifold(traj, pred, info, spec, confidence)
        rows += r
        points += p
    r, p = _measure_modified(traj, pred, info, spec, meta, fit_points, confidence)
    rows += r
    points += p
    keys = dict(claim_id="K3", experiment=spec.experiment, problem=spec.problem, method=spec.method, lam=spec.lam,
                seed=spec.seed)
    return rows, pd.concat(points, ignore_index=True).assign(**keys)


def _measure_manifold(traj, pred, info, spec, confidence):
    curvature = info["curvature_max"]
    fits, points = [], []
    lead = pred[pred["kind"] == MANIFOLD_KINDS["leading"]]
    corr = pred[pred["kind"] == MANIFOLD_KINDS["corrected"]]
    for h in sorted(lead["h"].unique()):
        _, lam, a = coefficients(spec.method, h, spec.lam)
        a_rows, b_rows = lead[lead["h"] == h].sort_values("step"), corr[corr["h"] == h].sort_values("step")
        term = a_rows["floor"].to_numpy()  # |h phi_1(x_k)|, the leading-order distance's floor
        regime = regime_number(h, curvature, spec.lam)
        for manifold, part, floor in [("leading", a_rows, term), ("corrected", b_rows, term * regime)]:
            d = part["err"].to_numpy()
            ratio, lo, hi, n = contraction(d, floor, FLOOR_FACTOR[manifold], confidence)
            fits.append(dict(h=h, manifold=manifold, ratio=ratio, ci_low=lo, ci_high=hi, n_points=n, regime=regime))
            points.append(pd.DataFrame(dict(kind="distance", h=h, manifold=manifold, step=a_rows["step"].to_numpy(),
                                            t=a_rows["t"].to_numpy(), distance=d, floor=floor)))
        if "x" in pred and len(traj["x"].iloc[0]) == 2:  # a plane: the phase portrait's data
            recorded = _joined(traj, a_rows).sort_values("step")
            x, m = stack(recorded["x"]), stack(recorded["m"])
            phi0, phi1 = stack(a_rows["x"]), stack(b_rows["x"])
            points.append(pd.DataFrame(dict(kind="phase", h=h, step=a_rows["step"].to_numpy(), x_1=x[:, 0],
                                            x_2=x[:, 1], m_1=m[:, 0], m_2=m[:, 1], phi_1=phi0[:, 0],
                                            phi_2=phi0[:, 1], psi_1=phi1[:, 0], psi_2=phi1[:, 1])))
    fits = pd.DataFrame(fits)
    points.append(fits.assign(kind="contraction"))
    rows = []
    for manifold, quantity in [("leading", "contraction_ratio"), ("corrected", "contraction_ratio_corrected")]:
        ok = fits[(fits["manifold"] == manifold) & np.isfinite(fits["ratio"])].sort_values("h")
        if ok.empty:
            rows.append(row("K3", spec, quantity, spec.lam, math.nan, note="fewer than 3 steps above the floor"))
            continue
        best = ok.iloc[0]
        note = f"{int(best['n_points'])} steps k=0..{int(best['n_points']) - 1} above {FLOOR_FACTOR[manifold]:g}x floor"
        root = info.get("fast_root", {}).get(repr(best["h"]))
        if root is not None:
            note += f"; fast root of the characteristic polynomial {root:.4f}"
        rows.append(row("K3", spec, quantity, spec.lam, float(best["ratio"]),
                        (float(best["ci_low"]), float(best["ci_high"])), h_min=best["h"], h_max=best["h"],
                        regime=best["regime"], n_points=int(best["n_points"]), note=note))
    return rows, points


def _measure_modified(traj, pred, info, spec, meta, fit_points, confidence):
    curvature = info["curvature_max"]
    flows = pred[pred["kind"] == "modified_flow"]
    errors: dict[str, pd.DataFrame] = {}
    for f in FORMULAS:
        parts = []
        for h_key, aliases in info["aliases"].items():
            h = float(h_key)
            part = flows[(flows["h"] == h) & (flows["formula"] == aliases[f])]
            if part.empty:
                continue
            parts.append(dict(h=h, err=float(np.max(part["err"].to_numpy()))))
        errors[f] = pd.DataFrame(parts, columns=["h", "err"])
    start = pred[pred["kind"] == "modified_flow_from_start"]
    errors["from_start"] = sup_errors(start["h"].to_numpy(), start["err"].to_numpy())
    finest_aliases = info["aliases"][min(info["aliases"], key=float)] if info["aliases"] else {}
    diverged = [r["h"] for r in meta["runs"] if r["diverged"]]
    excluded = info.get("excluded_h", [])
    base_note = (f"after t0={info['t0']:.3g}"
                 + (f"; transient not over by t0 at h={', '.join(f'{h:.3g}' for h in excluded)}" if excluded else "")
                 + (f"; diverged at h={', '.join(f'{h:.3g}' for h in diverged)}" if diverged else ""))
    rows, points, windows = [], [], {}
    for f, err in errors.items():
        if err.empty:
            continue
        err = err.copy()
        err["regime"] = [regime_number(h, curvature, spec.lam) for h in err["h"]]
        window = fit_window(err, fit_points)
        windows[f] = window
        fit = loglog_slope(window["h"], window["err"], confidence)
        if f == "from_start":  # through the transient of a momentum method: its O(h) lag stays
            predicted = 1.0 if get_method(spec.method).uses_momentum else 2.0
            quantity, note = "order_from_start", f"{PAPER} from x_0 at t=0, through the transient"
        else:
            quantity = "order" if f == PAPER else f"order_{f}"
            same = finest_aliases.get(f) == PAPER
            predicted = 2.0 if same else 1.0
            note = f"{f}, {base_note}" + (f"; coincides with {PAPER} here" if same and f != PAPER else "")
        span = {}
        if len(window):
            span = dict(h_min=window["h"].min(), h_max=window["h"].max(), regime=window["regime"].max())
        rows.append(row("K3", spec, quantity, predicted, fit.slope, (fit.ci_low, fit.ci_high), n_points=fit.n_points,
                        note=note, **span))
        points.append(err.assign(kind="modified_error", formula=f))
    rows.append(_runner_up(errors, windows, finest_aliases, spec))
    return rows, points


def _runner_up(errors, windows, aliases, spec) -> dict:
    """Error of the best formula distinct from the paper's over the paper's, at the finest fitted h."""
    window = windows.get(PAPER)
    if window is None or window.empty:
        return row("K3", spec, "runner_up_error_ratio", 1.0, math.nan, note="no fitted h")
    h = float(window["h"].min())
    at_h = {f: float(e.loc[e["h"] == h, "err"].iloc[0]) for f, e in errors.items()
            if f in FORMULAS and (e["h"] == h).any()}
    ranked = sorted(at_h, key=at_h.get)
    rivals = [f for f in ranked if aliases.get(f) != PAPER]
    if not rivals:
        return row("K3", spec, "runner_up_error_ratio", 1.0, math.nan, note="every formula coincides with the paper's")
    ratio = at_h[rivals[0]] / at_h[PAPER]
    same = [f for f in FORMULAS if aliases.get(f) == PAPER and f != PAPER]
    best = ranked[0] if aliases.get(ranked[0]) != PAPER else PAPER + (f" (= {' = '.join(same)})" if same else "")
    regime = float(window.loc[window["h"] == h, "regime"].iloc[0])
    return row("K3", spec, "runner_up_error_ratio", 1.0, ratio, h_min=h, h_max=h, regime=regime, n_points=len(at_h),
               note=f"best fit: {best}; runner-up: {rivals[0]}, whose error is {ratio:.3g}x the paper's")
