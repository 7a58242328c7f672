"""Claim O1: with annealing ``mu0 / t`` and constant momentum ``beta``, ``t E|v|^2`` at late times equals that of
plain on-line SGD at ``mu_eff = mu0 / (1 - beta)``, and both equal the exact LMS value (SCIENCE.md 2).

Per pair of Monte Carlo groups with equal ``mu_eff`` (momentum ``(h, lam > 0)`` beside plain ``(h / (1 - lam),
0)`` of the same method): the ratio of their late-time ``t E|v|^2`` over the seeds, paired by seed (a seed draws
the same samples in both), with a delta-method interval; and each group's late-time value against the exact one.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..ct.late_time import critical_rate
from ..train.ensemble import ratio_ci
from ..train.series import SeriesSpec
from .annealing import (
    GROUP, effective_rate, eigenvalues, ensemble_curves, exact_curve, experiment_problem, group_row, late_mean, late_values,
    scalar_prediction, squared_errors,
)
from .claim import Claim, Figure, Quantity, quantities

# The late-time value is reached once transients decaying like t^(1 - 2 mu_eff lam_min) have died: judged only
# where mu_crit / mu_eff <= REGIME_LIMIT (2 mu_eff lam_min >= 2, corrections O(1/t)).
REGIME_LIMIT = 0.5
MIN_SEEDS = 100
REGIME_TEXT = "mu_crit/mu_eff"


def measure(traj: pd.DataFrame, specs: dict[tuple, SeriesSpec], *, confidence: float = 0.95,
            **_: Any) -> tuple[list[dict], pd.DataFrame]:
    spec, problem = experiment_problem(specs)
    mu_crit = critical_rate(eigenvalues(problem))
    sq = squared_errors(traj, problem)
    late = late_values(sq)
    groups = {key: g.set_index("seed")["late"] for key, g in late.groupby(GROUP)}
    before = late.groupby(GROUP)["late_before"].mean().to_dict()
    t_late = late.groupby(GROUP)["t_late"].first().to_dict()
    rows = []
    for (method, lam, h), values in groups.items():
        mu = effective_rate(method, h, lam)
        if not math.isfinite(mu):
            continue
        note = (f"mu_eff = {mu:.4g}, t = {t_late[(method, lam, h)]}, {len(values)} seeds; the window before: "
                f"{before[(method, lam, h)]:.4g}")
        measured, ci = late_mean(values.to_numpy(), confidence)
        rows.append(group_row("O1", spec, method, lam, h, "late_value", scalar_prediction(problem, mu), measured, ci,
                              mu_crit / mu, len(values), note))
        if lam == 0:
            continue
        partner = next((key for key in groups if key[0] == method and key[1] == 0 and
                        math.isclose(key[2], h / (1.0 - lam), rel_tol=1e-9)), None)
        if partner is None:
            continue
        paired = pd.concat([values, groups[partner]], axis=1, join="inner").to_numpy()
        ratio, half = ratio_ci(paired[:, 0], paired[:, 1], confidence)
        rows.append(group_row("O1", spec, method, lam, h, "late_ratio", 1.0, ratio, (ratio - half, ratio + half),
                              mu_crit / mu, len(paired), f"{note}; against plain SGD at h = {partner[2]:.4g}"))
    curves = ensemble_curves(sq, confidence)
    if not curves.empty:
        curves["mu_eff"] = [effective_rate(m, h, lam) for m, lam, h in zip(curves["method"], curves["lam"],
                                                                           curves["h"])]
        curves["predicted"] = [scalar_prediction(problem, mu) for mu in curves["mu_eff"]]
    points = curves.assign(claim_id="O1", experiment=spec.experiment, problem=spec.problem, mu_crit=mu_crit)
    late_table = late.groupby(GROUP)["late"].agg(["mean", "std", "count"]).reset_index()
    late_table["mu_eff"] = [effective_rate(m, h, lam) for m, lam, h in
                            zip(late_table["method"], late_table["lam"], late_table["h"])]
    late_table["predicted"] = [scalar_prediction(problem, mu) for mu in late_table["mu_eff"]]
    points = pd.concat([points.assign(kind="curve"),
                        late_table.assign(kind="late", claim_id="O1", experiment=spec.experiment,
                                          problem=spec.problem, mu_crit=mu_crit),
                        exact_curve(problem, late_table["mu_eff"], mu_crit).assign(
                            claim_id="O1", experiment=spec.experiment, problem=spec.problem)], ignore_index=True)
    return rows, points


_REGIME = dict(relative=True, regime_limit=REGIME_LIMIT, min_points=MIN_SEEDS, regime_text=REGIME_TEXT)

CLAIM = Claim(
    id="O1",
    path_vectors=False,  # |w - w*|^2 recorded by the training job (sq_dist)
    statement="With annealing mu_t = mu0/t and constant momentum beta, on-line SGD at late times behaves as plain "
              "on-line SGD with the effective rate mu_eff = mu0/(1 - beta): t E|w - w*|^2 is the same.",
    source="Orr & Leen, NIPS 1996, section 1 (after their earlier analysis); exact LMS value SCIENCE.md 2",
    prediction="ratio of late-time t E|v|^2, momentum over plain SGD at mu_eff, equals 1; both equal "
               "s2 sum_i mu_eff^2 lam_i/(2 mu_eff lam_i - 1) on LMS",
    measurement="Monte Carlo over the experiment's seeds (one sample drawn with replacement per step, per seed; "
                "a seed draws the same samples in every method): mean of t |w_t - w*|^2 over the last 20% of the "
                "recorded steps, per seed; its mean over seeds (normal interval) and the ratio of paired means "
                "(delta-method interval); each note gives the mean over the 20% before, where a transient still "
                "dying shows. Judged only where 2 mu_eff lam_min >= 2 (regime mu_crit/mu_eff <= 0.5) "
                "and on at least 100 seeds",
    quantities=quantities(
        Quantity("late_ratio", "late-time t E|v|^2 with momentum over plain SGD at mu_eff", 0.05, **_REGIME),
        Quantity("late_value", "late-time t E|v|^2 against the exact value for mu_eff", 0.05, **_REGIME),
    ),
    measure=measure,
    scope="experiment",
    requires=("late_time_prediction", "annealed", "momentum_pair"),
    figures={
        "o1_error_vs_samples": Figure(
            "momentum_ct.plots.orr_leen:error_vs_samples",
            "O1: E|w - w*|^2 over the seeds against the number of samples t, log-log, one panel per effective "
            "rate mu_eff = mu0/(1 - beta), one line per momentum beta (bands: 95% intervals); dashed: the exact "
            "late-time value over t. Predicted: the lines of equal mu_eff coincide at late times, their ratio within "
            "{late_ratio.tolerance_text} of 1."),
        "o1_late_value_vs_rate": Figure(
            "momentum_ct.plots.orr_leen:late_value_vs_rate",
            "O1: late-time t E|v|^2 against the effective rate mu_eff, one marker per momentum beta (bars: 95% "
            "intervals over seeds); line: the exact value s2 sum_i mu^2 lam_i/(2 mu lam_i - 1), dotted: mu_crit. "
            "Predicted: every beta on the line, within {late_value.tolerance_text}."),
    },
)
