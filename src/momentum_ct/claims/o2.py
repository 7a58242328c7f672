"""Claim O2: with annealing ``mu_eff / t``, ``E|v|^2`` decays like ``1/t`` only when ``mu_eff > mu_crit =
1/(2 lam_min)``, below it like ``t^(-2 mu_eff lam_min)``; ``t E|v|^2`` is least at a finite ``mu_eff`` (``1/lam`` in one
dimension) (SCIENCE.md 2).

Per Monte Carlo group of scalar annealed SGD: the log-log slope of the seeds' mean ``E|v|^2`` against the annealing
clock over the last decade of the run, against ``min(1, 2 mu_eff lam_min)``. Per experiment and momentum: the rate
where the late-time ``t E|v|^2`` is least (vertex of a parabola in ``log mu_eff`` through the sampled minimum and
its two neighbours) against the minimiser of the exact value.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..ct.fit import loglog_slope
from ..ct.late_time import critical_rate, subcritical_exponent
from ..train.ensemble import jackknife_ci
from ..train.series import SeriesSpec
from .annealing import (
    GROUP, clock, effective_rate, eigenvalues, ensemble_curves, exact_curve, experiment_problem, group_row,
    late_values, scalar_prediction, squared_errors,
)
from .claim import Claim, Figure, Quantity, quantities

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.

# The fitted exponent approaches its limit once the corrections have died over the fitted decade: judged where
# the largest expected relative correction at the window's start is below CORRECTION_LIMIT (``exponent_regime``).
CORRECTION_LIMIT = 0.05
REGIME_TEXT = "max((t0/t)^|2 mu_eff lam_min - 1|, mu_eff lam_max/t)/0.05 at the window's start (t0: clock at step 0)"
# The fit window: the last decade of recorded steps.
WINDOW_DECADES = 1.0
MIN_SEEDS = 100


def exponent_regime(t_start: float, t_origin: float, mu: float, lam_min: float, lam_max: float) -> float:
    """The largest relative correction to the limiting power law expected at the start of the fit window, over
    ``CORRECTION_LIMIT``: the slowest transient ``(t0 / t)^|2 mu_eff lam_min - 1|`` (``t0`` the clock at step 0, where
    the noise sum and the start's decay begin; at ``mu_crit`` the decay is ``log t / t``, which no finite window
    tells from ``1/t``) and the annealing's own ``mu_eff lam_max / t``."""
    gap = abs(2.0 * mu * lam_min - 1.0)
    return float(max((t_origin / t_start) ** gap, mu * lam_max / t_start) / CORRECTION_LIMIT)


def best_rate_prediction(problem, mu_crit: float) -> float:
    """The ``mu`` minimising the exact late-time value (``1/lam`` in one dimension)."""
    from scipy.optimize import minimize_scalar
    result = minimize_scalar(lambda log_mu: scalar_prediction(problem, math.exp(log_mu)),
                             bounds=(math.log(mu_crit * 1.0001), math.log(mu_crit * 100.0)), method="bounded",
                             options=dict(xatol=1e-8))
    return float(math.exp(result.x))


def parabola_vertex(rates: np.ndarray, values: np.ndarray) -> tuple[float, int]:
    """The vertex of a parabola in ``log rate`` through the least finite value and its neighbours, and the number of
    points used (0 when the least value sits at an end of the sampled rates: the minimum is not bracketed)."""
    order = np.argsort(rates)
    rates, values = rates[order], values[order]
    ok = np.isfinite(values)
    rates, values = rates[ok], values[ok]
    if len(rates) < 3:
        return math.nan, 0
    i = int(np.argmin(values))
    if i == 0 or i == len(rates) - 1:
        return math.nan, 0
    x, y = np.log(rates[i - 1:i + 2]), np.log(values[i - 1:i + 2])
    a, b, _ = np.polyfit(x, y, 2)
    return (float(math.exp(-b / (2 * a))), 3) if a > 0 else (math.nan, 0)


def per_run(sq: pd.DataFrame, method: str, lam: float, h: float, steps: np.ndarray) -> np.ndarray:
    """``|v|^2`` of a Monte Carlo group: one row per seed, one column per step of ``steps``."""
    g = sq[(sq["method"] == method) & (sq["lam"] == lam) & (sq["h"] == h)]
    return g.pivot_table(index="seed", columns="step", values="sq", aggfunc="first").reindex(columns=steps).to_numpy()


def measure(traj: pd.DataFrame, specs: dict[tuple, SeriesSpec], *, confidence: float = 0.95,
            **_: Any) -> tuple[list[dict], pd.DataFrame]:
    spec, problem = experiment_problem(specs)
    lam_min, lam_max = float(eigenvalues(problem).min()), float(eigenvalues(problem).max())
    mu_crit = critical_rate([lam_min])
    sq = squared_errors(traj, problem)
    curves = ensemble_curves(sq, confidence)
    rows, fits = [], []
    for (method, lam, h), g in curves.groupby(GROUP, sort=True):
        mu = effective_rate(method, h, lam)
        if not math.isfinite(mu):
            continue
        t = clock(method, h, lam, g["step"])
        window = (t >= t.max() * 10.0 ** -WINDOW_DECADES) & (g["step"].to_numpy() > 0)
        fit = loglog_slope(t[window], g["mean"].to_numpy()[window], confidence)
        runs_by_step = per_run(sq, method, lam, h, g["step"].to_numpy()[window])
        exponent, half = jackknife_ci(runs_by_step, lambda m: -loglog_slope(t[window], m).slope, confidence)
        predicted = subcritical_exponent([lam_min], mu)
        regime = exponent_regime(float(t[window].min()), float(clock(method, h, lam, 0)), mu, lam_min, lam_max)
        diverged = int(g["diverged"].max())
        runs = int(g["runs"].max())
        note = (f"mu_eff = {mu:.4g}, mu_crit = {mu_crit:.4g}, fitted over t in [{t[window].min():.0f}, "
                f"{t.max():.0f}], {runs} seeds" + (f", {diverged} diverged" if diverged else ""))
        n_points = min(fit.n_points, runs) if runs >= MIN_SEEDS else runs
        rows.append(group_row("O2", spec, method, lam, h, "decay_exponent", predicted, exponent,
                              (exponent - half, exponent + half), regime, n_points, note))
        fits.append(dict(method=method, lam=lam, h=h, mu_eff=mu, exponent=exponent, predicted_exponent=predicted))
    late = late_values(sq)
    late_table = late.groupby(GROUP)["late"].agg(["mean", "std", "count"]).reset_index()
    late_table["mu_eff"] = [effective_rate(m, h, lam) for m, lam, h in
                            zip(late_table["method"], late_table["lam"], late_table["h"])]
    late_table = late_table[np.isfinite(late_table["mu_eff"])]
    late_table["predicted"] = [scalar_prediction(problem, mu) for mu in late_table["mu_eff"]]
    best = best_rate_prediction(problem, mu_crit)
    for (method, lam), g in late_table.groupby(["method", "lam"]):
        vertex, n_points = parabola_vertex(g["mu_eff"].to_numpy(), g["mean"].to_numpy())
        note = (f"least sampled late value at mu_eff = {g.loc[g['mean'].idxmin(), 'mu_eff']:.4g} of "
                f"{len(g)} rates" + ("" if n_points else "; the minimum is not bracketed by the sampled rates"))
        rows.append(group_row("O2", spec, method, lam, math.nan, "best_rate", best, vertex, (math.nan, math.nan),
                              math.nan, n_points, note))
    if not curves.empty:
        curves["mu_eff"] = [effective_rate(m, h, lam) for m, lam, h in
                            zip(curves["method"], curves["lam"], curves["h"])]
        curves["predicted"] = [scalar_prediction(problem, mu) for mu in curves["mu_eff"]]
        curves["t"] = [float(clock(m, h, lam, k)) for m, lam, h, k in
                       zip(curves["method"], curves["lam"], curves["h"], curves["step"])]
    common = dict(claim_id="O2", experiment=spec.experiment, problem=spec.problem, mu_crit=mu_crit, lam_min=lam_min)
    points = pd.concat([curves.assign(kind="curve", **common), late_table.assign(kind="late", **common),
                        pd.DataFrame(fits).assign(kind="exponent", **common),
                        exact_curve(problem, late_table["mu_eff"], mu_crit).assign(**common)], ignore_index=True)
    return rows, points


CLAIM = Claim(
    id="O2",
    path_vectors=False,  # |w - w*|^2 recorded by the training job (sq_dist)
    statement="With annealing mu_eff/t, E|w - w*|^2 decays like 1/t only when mu_eff > mu_crit = 1/(2 lam_min(H)); "
              "below it like t^(-2 mu_eff lam_min); t E|v|^2 is least at a finite mu_eff (1/lam in one dimension).",
    source="Orr & Leen, NIPS 1996, section 1 (classical: Darken & Moody, Goldstein; references [3-5] there); "
           "SCIENCE.md 2",
    prediction="decay exponent min(1, 2 mu_eff lam_min); the rate minimising the exact late-time value "
               "s2 sum_i mu^2 lam_i/(2 mu lam_i - 1)",
    measurement="Monte Carlo mean of |w_t - w*|^2 over the experiment's seeds; least-squares log-log slope against "
                "the annealing clock over the last decade of records (interval: delete-a-block jackknife over 20 "
                "blocks of seeds, the Monte Carlo's uncertainty of the slope); the vertex of a parabola in log "
                "mu_eff through the least late-time "
                "t E|v|^2 and its two neighbours. Exponents are judged where the expected relative corrections at the "
                "window's start, (t0/t)^|2 mu_eff lam_min - 1| (the slowest transient, t0 the clock at the start; at "
                "mu_crit the decay is log t/t) and mu_eff lam_max/t, are below 5%, and on at least 100 seeds; a minimum at an end "
                "of the sampled rates is inconclusive",
    quantities=quantities(
        Quantity("decay_exponent", "late-time decay exponent p of E|v|^2 ~ t^-p", 0.05, regime_limit=1.0,
                 min_points=3, regime_text=REGIME_TEXT),
        Quantity("best_rate", "mu_eff where the late-time t E|v|^2 is least", 0.1, relative=True, min_points=3),
    ),
    measure=measure,
    scope="experiment",
    requires=("late_time_prediction", "annealed"),
    figures={
        "o2_error_vs_samples": Figure(
            "momentum_ct.plots.orr_leen:error_vs_samples",
            "O2: E|w - w*|^2 over the seeds against the number of samples t, log-log, one panel per effective rate "
            "mu_eff (bands: 95% intervals; dashed: the exact late-time value over t where mu_eff > mu_crit). "
            "Predicted: slope -1 above mu_crit, -2 mu_eff lam_min below it, within {decay_exponent.tolerance_text}."),
        "o2_late_value_vs_rate": Figure(
            "momentum_ct.plots.orr_leen:late_value_vs_rate",
            "O2: late-time t E|v|^2 against mu_eff (bars: 95% intervals over seeds), the exact value (line) and "
            "mu_crit (dotted). Predicted: least at the minimiser of the exact value, within "
            "{best_rate.tolerance_text}; growing without bound as mu_eff falls to mu_crit."),
        "o2_exponents": Figure(
            "momentum_ct.plots.orr_leen:exponents",
            "O2: fitted decay exponent of E|v|^2 over the last decade against mu_eff, beside the prediction "
            "min(1, 2 mu_eff lam_min) (line; dotted: mu_crit)."),
    },
)
