"""Measurements shared by the claims on annealed on-line learning (O1-O3, SCIENCE.md 2): Monte Carlo means of
``|w_t - w*|^2`` over the seeds of an experiment, their late-time values ``t E|v|^2`` and the exact predictions.

An experiment's series are ``(method, lam, seed)`` with every ``h`` of its grid; one Monte Carlo *group* is a
``(method, lam, h)``: its seeds are independent runs, and runs of equal seed in different groups drew the same
samples (the stacked engine's per-seed stream), which pairs them for a ratio. The clock is the sample count
``t = k`` (one sample per step; times the mini-batch size where one is set). A diverged run is infinite from
its divergence on, so a group with one is infinite there: recorded, never dropped.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..ct.late_time import MEAN_SQUARE_MAX_DIM, critical_rate, lms_optimal_limit, lms_scalar_limit, \
    mean_square_bound, optimal_limit_covariance, scalar_limit_covariance
from ..io import REBUILD, SchemaError
from ..optim import resolve_method
from ..optim.annealed import AnnealedSGD, MatrixMomentum
from ..problems import Problem, make_problem
from ..train.ensemble import mean_ci
from ..train.series import SeriesSpec

GROUP = ["method", "lam", "h"]
# Late-time values are read over the last LATE_FRACTION of each run's recorded steps (a mean of t |v|^2 there)
LATE_FRACTION = 0.2


def experiment_problem(specs: dict[tuple, SeriesSpec]) -> tuple[SeriesSpec, Problem]:
    spec = next(iter(specs.values()))
    return spec, make_problem(spec.problem, seed=spec.seed, **spec.problem_options)


def hessian_at_minimum(problem: Problem):
    """The Hessian at ``w*``: a quadratic's constant one (LMS), or the one a network problem computed at its
    minimum (``extra["hessian_at_minimum"]``); ``None`` where the problem states neither."""
    return problem.extra.get("hessian_at_minimum", problem.hessian)


def hessian_and_noise(problem: Problem) -> tuple[np.ndarray, np.ndarray] | None:
    """``(H, S)`` at ``w*``: exact for LMS (``S = s2 H``), computed at ``w*`` for a network; ``None`` where the problem
    does not state them."""
    hessian = hessian_at_minimum(problem)
    if hessian is None or "gradient_covariance" not in problem.extra:
        return None
    return hessian.numpy(), problem.extra["gradient_covariance"].numpy()


def eigenvalues(problem: Problem) -> np.ndarray:
    """The Hessian's eigenvalues at ``w*``, ascending: the stated ones where the problem states them (LMS), so that a
    regime bound met with equality (``mu_eff = 2 mu_crit``) is not decided by the round-off of a decomposition."""
    if "eigenvalues" in problem.extra:
        return np.sort(problem.extra["eigenvalues"].numpy())
    return np.linalg.eigvalsh(hessian_at_minimum(problem).numpy())


def effective_rate(method_label: str, h: float, lam: float) -> float:
    """Late-time annealing constant ``mu_eff`` of scalar annealed SGD (``scale / (1 - beta)``: ``mu0/(1-beta)`` for
    ``annealed_sgd``, ``mu0 tau / (1 - beta)`` for search-then-converge); NaN for other methods."""
    spec = resolve_method(method_label)
    if not isinstance(spec.method, AnnealedSGD):
        return math.nan
    columns = spec.columns(h, lam)
    return columns["scale"] / (1.0 - columns["beta"])


def is_matrix_momentum(method_label: str) -> bool:
    return isinstance(resolve_method(method_label).method, MatrixMomentum)


def scalar_prediction(problem: Problem, mu: float) -> float:
    """Exact ``lim t E|v|^2`` for annealing ``mu / t`` (``inf`` at or below ``mu_crit``)."""
    if "eigenvalues" in problem.extra:
        return lms_scalar_limit(problem.extra["eigenvalues"].numpy(), problem.extra["noise_variance"], mu)
    hs = hessian_and_noise(problem)
    if hs is None or mu <= critical_rate(np.linalg.eigvalsh(hs[0])):
        return math.inf if hs is not None else math.nan
    return float(np.trace(scalar_limit_covariance(*hs, mu)))


def optimal_prediction(problem: Problem) -> float:
    """Exact ``lim t E|v|^2`` for the optimal matrix rate ``H^{-1} / t``."""
    if "eigenvalues" in problem.extra:
        return lms_optimal_limit(problem.extra["eigenvalues"].numpy(), problem.extra["noise_variance"])
    hs = hessian_and_noise(problem)
    return math.nan if hs is None else float(np.trace(optimal_limit_covariance(*hs)))


def one_sample_bound(problem: Problem) -> float:
    """The ``mu0`` above which matrix momentum with a one-sample ``H`` estimate is not mean-square stable, where the
    problem states its samples' Hessians (LMS: ``x x^T`` of its inputs) in few dimensions; NaN otherwise."""
    inputs = problem.extra.get("sample_inputs")
    if inputs is None or inputs.shape[1] > MEAN_SQUARE_MAX_DIM:
        return math.nan
    x = inputs.numpy()
    return mean_square_bound(x[:, :, None] * x[:, None, :])


def squared_errors(traj: pd.DataFrame, problem: Problem) -> pd.DataFrame:
    """Per run and recorded step: ``sq = |x - w*|^2`` (``inf`` where the run diverged, and for every later
    recorded step of its group), with ``method, lam, h, seed, step``: the distance the training job recorded
    (``sq_dist``), so the runs keep no vectors along the path."""
    if "sq_dist" not in traj:
        raise SchemaError(f"the trajectories of problem {problem.name!r} lack the column sq_dist (|x - w*|^2); "
                          f"{REBUILD}")
    sq = traj["sq_dist"].to_numpy(dtype=np.float64)
    sq = np.where(np.isfinite(sq) & np.isfinite(traj["loss"].to_numpy()), sq, np.inf)
    frame = traj[GROUP + ["seed", "step"]].assign(sq=sq)
    parts = []
    for key, g in frame.groupby(GROUP, sort=True):
        # a diverged run stops recording: its group's later steps are infinite for it, not absent
        wide = g.pivot_table(index="seed", columns="step", values="sq", aggfunc="first").sort_index(axis=1)
        wide = wide.where(~(wide.isna() & np.isinf(wide.ffill(axis=1))), np.inf)
        long = wide.stack(future_stack=True).rename("sq").reset_index().dropna(subset=["sq"])
        parts.append(long.assign(**dict(zip(GROUP, key))))
    columns = GROUP + ["seed", "step", "sq"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def ensemble_curves(sq: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per group and step: ``mean`` of ``|v|^2`` over seeds, its confidence bounds, ``runs`` and ``diverged``."""
    rows = []
    for key, g in sq.groupby(GROUP + ["step"], sort=True):
        mean, half = mean_ci(g["sq"].to_numpy(), confidence)
        with np.errstate(invalid="ignore"):  # a group with a diverged run: inf - inf
            rows.append(dict(zip(GROUP + ["step"], key), mean=float(mean), ci_low=float(mean - half),
                             ci_high=float(mean + half), runs=len(g), diverged=int(np.isinf(g["sq"]).sum())))
    return pd.DataFrame(rows)


def clock(method_label: str, h: float, lam: float, step) -> np.ndarray:
    """The annealing clock ``t = k + 1 + offset`` of step ``k`` (``mu_k = scale / t``): the ``t`` of ``t E|v|^2``, so a
    clock offset ``t0`` does not bias the late-time value by ``t0 / t``; the step count for other methods."""
    columns = resolve_method(method_label).columns(h, lam)
    return np.asarray(step, dtype=float) + (1.0 + columns["offset"] if "offset" in columns else 0.0)


def late_values(sq: pd.DataFrame) -> pd.DataFrame:
    """Per group and seed: ``late`` = mean of ``t |v_t|^2`` (``t`` the annealing clock) over the run's last
    ``LATE_FRACTION`` of recorded steps (``inf`` for a run that diverged), ``late_before`` the same over the
    ``LATE_FRACTION`` before it, and ``t_late`` the last step."""
    out = []
    for key, g in sq.groupby(GROUP, sort=True):
        last = int(g["step"].max())
        t = clock(key[0], key[2], key[1], g["step"])
        tv = pd.Series(t * g["sq"].to_numpy(), index=g.index)
        late = g["step"] >= (1.0 - LATE_FRACTION) * last
        # the window before: a late value still drifting between the two shows an unfinished transient
        before = (g["step"] >= (1.0 - 2 * LATE_FRACTION) * last) & ~late
        per_seed = tv[late].groupby(g["seed"][late]).mean()
        previous = tv[before].groupby(g["seed"][before]).mean().reindex(per_seed.index)
        out.append(pd.DataFrame(dict(zip(GROUP, key)) | dict(seed=per_seed.index, late=per_seed.to_numpy(),
                                                                late_before=previous.to_numpy(), t_late=last)))
    columns = GROUP + ["seed", "late", "late_before", "t_late"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


def group_row(claim_id: str, spec: SeriesSpec, method: str, lam: float, h: float, quantity: str, predicted: float,
              measured: float, ci: tuple[float, float], regime: float, n_points: int, note: str) -> dict[str, Any]:
    """One measure row for a Monte Carlo group (``seed``: the first seed; ``n_points``: the number of seeds)."""
    return dict(claim_id=claim_id, experiment=spec.experiment, problem=spec.problem, method=method, lam=lam,
                seed=spec.seed, quantity=quantity, predicted=predicted, measured=measured, ci_low=ci[0],
                ci_high=ci[1], h_min=h, h_max=h, regime=regime, n_points=n_points, note=note)


def late_mean(values: np.ndarray, confidence: float) -> tuple[float, tuple[float, float]]:
    mean, half = mean_ci(values, confidence)
    return float(mean), (float(mean - half), float(mean + half))


def exact_curve(problem: Problem, rates, mu_crit: float, n: int = 200) -> pd.DataFrame:
    """``kind = exact`` rows: the exact late-time value on a fine grid of ``mu_eff`` above ``mu_crit`` (figures)."""
    rates = np.asarray([r for r in rates if np.isfinite(r)], dtype=float)
    if rates.size == 0:
        return pd.DataFrame(columns=["kind", "mu_eff", "predicted", "mu_crit"])
    grid = np.geomspace(mu_crit * 1.02, max(rates.max(), 2 * mu_crit) * 1.1, n)
    return pd.DataFrame(dict(kind="exact", mu_eff=grid, predicted=[scalar_prediction(problem, m) for m in grid],
                             mu_crit=mu_crit))
