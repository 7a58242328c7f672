"""Orr & Leen's on-line methods in the stacked engine, against exact values (SCIENCE.md 2).

- The engine: one-sample draws per seed, independent of the stack; Hessian-vector products of the step's sample
  and of the full data against dense Hessians (closed form, ``jvp`` of the gradient, stacked network loss).
- Monte Carlo over a thousand seeds on LMS, where the late-time values are exact: ``t E|v|^2`` of scalar annealing
  ``mu / t`` is ``s2 sum_i mu^2 lam_i / (2 mu lam_i - 1)``; constant momentum ``beta`` with ``mu0`` gives the same
  as plain SGD at ``mu0 / (1 - beta)``; matrix momentum with the exact ``H`` gives ``s2 tr(H^{-1})``.
  Means are compared within a 99.9% normal confidence interval; the runs are seeded, so the test is deterministic.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from momentum_ct.ct.late_time import (
    critical_rate, lms_optimal_limit, lms_scalar_limit, mean_square_bound, optimal_limit_covariance,
    scalar_limit_covariance,
)
from momentum_ct.errors import ConfigError
from momentum_ct.optim import resolve_method
from momentum_ct.problems import make_problem
from momentum_ct.train.ensemble import jackknife_ci, mean_ci, ratio_ci, squared_errors
from momentum_ct.train.stacked import OnlineSamples, RunRequest, _Evaluator, _StackOracle, run_many

pytestmark = pytest.mark.usefixtures("single_torch_thread")

EIGS = [1.0, 0.5, 0.2]
CONFIDENCE = 0.999


def lms(seed=0, **options):
    return make_problem("lms", seed=seed, **({"eigenvalues": EIGS} | options))


def monte_carlo(method, h, lam, *, runs, steps, hyperparameters=None, **options):
    """``t |x_t - w*|^2`` per run at the last step (rows: seeds 0..runs-1) and the recorders."""
    problems = [lms(s, **options) for s in range(runs)]
    record = np.array([0, steps])
    recorders = run_many([RunRequest(p, method, h, lam, steps, record, seed=s, hyperparameters=hyperparameters or {})
                          for s, p in enumerate(problems)], device="cpu")
    return steps * squared_errors(recorders, problems[0].minimiser.numpy(), [steps])[:, 0], recorders


# -- the problem -------------------------------------------------------------------------------------------
def test_lms_data_hold_the_stated_moments_exactly():
    p = lms(noise_variance=0.3)
    xs, ys = p.train_data
    r = ys - xs @ p.minimiser
    np.testing.assert_allclose((xs.T @ xs / len(xs)).numpy(), p.hessian.numpy(), atol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(p.hessian.numpy()), sorted(EIGS), atol=1e-12)
    np.testing.assert_allclose((xs.T @ r / len(xs)).numpy(), 0.0, atol=1e-12)  # w* is the exact minimiser
    s = (xs * r[:, None] ** 2).T @ xs / len(xs)
    np.testing.assert_allclose(s.numpy(), 0.3 * p.hessian.numpy(), atol=1e-12)  # S = s2 H
    assert lms(1).train_data[0].equal(xs) and not lms(1).x0.equal(p.x0)  # the seed sets the start only


def test_late_time_formulas_agree_with_the_general_lyapunov_solution():
    h = np.diag(EIGS)
    for mu in (3.0, 5.0):
        c = scalar_limit_covariance(h, 0.7 * h, mu)
        assert np.trace(c) == pytest.approx(lms_scalar_limit(EIGS, 0.7, mu), rel=1e-12)
    assert np.trace(optimal_limit_covariance(h, 0.7 * h)) == pytest.approx(lms_optimal_limit(EIGS, 0.7), rel=1e-12)
    assert critical_rate(EIGS) == 2.5 and lms_scalar_limit(EIGS, 1.0, 2.5) == np.inf
    # the best scalar rate in one dimension is 1/lam, where the limit is s2 / lam
    mus = np.linspace(0.6, 3.0, 2401)
    values = [lms_scalar_limit([0.5], 1.0, m) for m in mus]
    assert mus[int(np.argmin(values))] == pytest.approx(2.0) and min(values) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mu_crit"):
        scalar_limit_covariance(h, h, 2.0)


def test_jackknife_interval_of_a_linear_statistic_is_the_batch_means_interval():
    """For the mean over runs (a linear statistic) the delete-a-block jackknife is exactly the interval of the
    block means; a slope over a curve's points gets an interval from its runs, not from its correlated points."""
    from scipy import stats

    values = np.random.default_rng(0).normal(size=(200, 7))
    estimate, half = jackknife_ci(values, np.mean, 0.95, blocks=20)
    block_means = values.reshape(20, 10, 7).mean(axis=(1, 2))
    assert estimate == pytest.approx(values.mean(), rel=1e-12)
    assert half == pytest.approx(stats.t.ppf(0.975, 19) * block_means.std(ddof=1) / np.sqrt(20), rel=1e-10)
    assert jackknife_ci(np.vstack([values, np.full(7, np.inf)]), np.mean)[1] == np.inf  # a diverged run


def test_mean_square_bound_of_the_one_sample_estimate():
    h = np.diag(EIGS)
    assert mean_square_bound(np.stack([h, h])) == pytest.approx(2.0 / max(EIGS), rel=1e-8)  # no noise: exact H
    a = np.array([0.5, 1.0, 4.0])  # one dimension: E(1 - mu a)^2 = 1 at mu = 2 E[a] / E[a^2]
    assert mean_square_bound(a[:, None, None]) == pytest.approx(2 * a.mean() / (a**2).mean(), rel=1e-8)
    # LMS samples x x^T: the second moment P <- E[(I - mu A) P (I - mu A)] decays just below the bound and grows
    # just above it (iterated directly, not through the Kronecker form)
    x = lms().extra["sample_inputs"].numpy()
    samples = x[:, :, None] * x[:, None, :]
    bound = mean_square_bound(samples)
    assert bound < 2.0 / max(EIGS)
    for factor, grows in ((0.97, False), (1.03, True)):
        step = np.eye(3) - factor * bound * samples
        p = np.eye(3)
        for _ in range(3000):
            p = np.mean(step @ p @ step, axis=0)
            p /= np.linalg.norm(p)
            rate = np.linalg.norm(np.mean(step @ p @ step, axis=0))
        assert (rate > 1.0) == grows, (factor, rate)


# -- the engine ---------------------------------------------------------------------------------------------
def test_one_sample_draws_depend_on_the_seed_only():
    a = OnlineSamples(10, 1, np.array([3, 5, 7]), block=4)
    b = OnlineSamples(10, 1, np.array([5]), block=4)
    for k in range(9):
        both = a.indices(k, np.array([5, 3, 5, 7]))
        assert both.shape == (4, 1) and both[0].equal(both[2]) and both[0].equal(b.indices(k, np.array([5]))[0])
    draws = OnlineSamples(4, 3, np.array([0]), block=1000).indices(0, np.array([0]))
    assert draws.min() >= 0 and draws.max() < 4
    # with replacement: 1000 steps of 3 draws from 4 samples repeat within a step (a permutation would not)
    table = OnlineSamples(4, 3, np.array([0]), block=1000)
    table.indices(0, np.array([0]))
    assert any(len(set(row.tolist())) < 3 for row in table.table[0])


def test_a_run_is_the_same_alone_and_in_a_stack():
    record = np.array([0, 7, 40])
    alone = run_many([RunRequest(lms(4), "annealed_sgd", 2.0, 0.3, 40, record, seed=4)], device="cpu")[0]
    stack = run_many([RunRequest(lms(s), "annealed_sgd", 2.0, 0.3, 40 + s, record, seed=s) for s in range(6)]
                     + [RunRequest(lms(4), "search_then_converge", 1.0, 0.0, 40, record, seed=4,
                                   hyperparameters={"tau": 5.0})], device="cpu")
    np.testing.assert_array_equal(np.stack(alone.columns()["x"]), np.stack(stack[4].columns()["x"]))
    assert not np.array_equal(np.stack(stack[3].columns()["x"]), np.stack(stack[4].columns()["x"]))


def dense_hessian(problem, x, data):
    return torch.func.hessian(problem.loss)(x, data)


@pytest.mark.parametrize("name, options", [
    ("lms", {"eigenvalues": EIGS}),                 # closed-form Hessian-vector product
    ("toy2d", {}),                                  # jvp of the autograd gradient, vmapped
    ("digits_mlp", {"hidden": [3]}),                # stacked network loss, reverse-over-reverse
])
def test_hessian_vector_products_of_the_sample_and_of_the_full_data(name, options):
    problems = [make_problem(name, seed=s, **options) for s in range(3)]
    p = problems[0]
    evaluator = _Evaluator(p, 0)
    gen = torch.Generator().manual_seed(0)
    xs = torch.stack([q.x0 for q in problems]) + 0.1 * torch.randn(3, p.dim, generator=gen, dtype=torch.float64)
    vs = torch.randn(3, p.dim, generator=gen, dtype=torch.float64)
    if p.train_data:
        idx = torch.tensor([[0, 2], [1, 1], [5, 3]])
        data = tuple(t[idx] for t in p.train_data)
        got = _StackOracle(evaluator, data, True).hvp(xs, vs)
        for i in range(3):
            want = dense_hessian(p, xs[i], tuple(t[i] for t in data)) @ vs[i]
            np.testing.assert_allclose(got[i].numpy(), want.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
        full = _StackOracle(evaluator, data, True).hvp(xs, vs, full=True)
    else:
        full = _StackOracle(evaluator, (), False).hvp(xs, vs, full=True)
    for i in range(3):
        want = dense_hessian(p, xs[i], p.train_data) @ vs[i]
        np.testing.assert_allclose(full[i].numpy(), want.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_matrix_momentum_by_gradient_difference_equals_the_sample_hvp_on_a_quadratic_loss():
    record = np.array([0, 10, 30])
    runs = run_many([RunRequest(lms(s), m, 0.3, 0.0, 30, record, seed=s)
                     for m in ("matrix_momentum", "matrix_momentum_difference") for s in range(3)], device="cpu")
    for a, b in zip(runs[:3], runs[3:]):
        np.testing.assert_allclose(np.stack(a.columns()["x"]), np.stack(b.columns()["x"]), rtol=1e-10, atol=1e-12)


def test_annealed_schedules_iterate_the_stated_rates():
    # one sample of one input point: the update is deterministic, so compare with the recurrence written out
    p = make_problem("lms", eigenvalues=[0.8], n_inputs=1, n_noise=2, noise_variance=0.0, rotate=False)
    xs = p.train_data[0]
    lam = float(xs[0, 0] ** 2)
    for method, h, beta, hp, rate in [
        ("annealed_sgd", 1.5, 0.4, {"t0": 3.0}, lambda k: 1.5 / (k + 1 + 3.0)),
        ("search_then_converge", 0.5, 0.0, {"tau": 4.0}, lambda k: 0.5 / (1 + k / 4.0)),
    ]:
        rec = run_many([RunRequest(p, method, h, beta, 12, np.arange(13), hyperparameters=hp)], device="cpu")[0]
        x = np.array([float(v[0]) for v in rec.columns()["x"]]) - float(p.minimiser[0])
        v, v_prev = x[0], x[0]
        for k in range(12):
            v, v_prev = v - rate(k) * lam * v + beta * (v - v_prev), v
            assert x[k + 1] == pytest.approx(v, rel=1e-12, abs=1e-15), (method, k)


def test_hyperparameters_and_rates_are_checked_by_name():
    with pytest.raises(ConfigError, match=r"hyperparameter t0 must be >= 0, got -1.0"):
        resolve_method({"name": "annealed_sgd", "t0": -1})
    with pytest.raises(ConfigError, match=r"'search_then_converge' needs hyperparameter\(s\) tau"):
        resolve_method("search_then_converge")
    with pytest.raises(ConfigError, match=r"hyperparameter tau must be positive, got 0.0"):
        resolve_method({"name": "search_then_converge", "tau": 0})
    with pytest.raises(ConfigError, match=r"'matrix_momentum' has no hyperparameter\(s\) beta"):
        resolve_method({"name": "matrix_momentum", "beta": 0.5})
    with pytest.raises(ConfigError, match=r"momentum lam must lie in \[0, 1\)"):
        RunRequest(lms(), "annealed_sgd", 1.0, 1.0, 5, np.array([0]))
    with pytest.raises(ConfigError, match="eigenvalues must be a non-empty list of positive numbers"):
        make_problem("lms", eigenvalues=[1.0, -0.1])


def test_a_diverging_run_is_recorded_and_the_others_go_on():
    # mu_t lam_max > 2 for the first 50 steps: the run blows up; with the clock offset t0 = 200 it does not
    steps = 200
    runs = run_many([RunRequest(lms(0), "annealed_sgd", 100.0, 0.0, steps, np.array([0, steps]), hyperparameters=hp)
                     for hp in ({"t0": 0.0}, {"t0": 200.0})], device="cpu")
    bad, good = runs
    assert bad.diverged_at is not None and good.diverged_at is None
    errors = squared_errors(runs, lms(0).minimiser.numpy(), [steps])
    assert errors[0, 0] == np.inf and np.isfinite(errors[1, 0])


# -- exact late-time values, Monte Carlo ---------------------------------------------------------------------
RUNS, STEPS = 1000, 3000


def test_scalar_annealing_reaches_the_exact_late_time_value():
    mu = 5.0  # mu lam_min = 1 > 1/2
    values, _ = monte_carlo("annealed_sgd", mu, 0.0, runs=RUNS, steps=STEPS, hyperparameters={"t0": 10.0})
    mean, half = mean_ci(values, CONFIDENCE)
    exact = lms_scalar_limit(EIGS, 1.0, mu)
    assert abs(mean - exact) < half, (mean, half, exact)
    assert half < 0.1 * exact  # the interval is narrow enough for the comparison to mean something


def test_constant_momentum_acts_as_the_effective_rate():
    beta = 0.5
    momentum, _ = monte_carlo("annealed_sgd", 2.5, beta, runs=RUNS, steps=STEPS, hyperparameters={"t0": 10.0})
    plain, _ = monte_carlo("annealed_sgd", 2.5 / (1 - beta), 0.0, runs=RUNS, steps=STEPS,
                           hyperparameters={"t0": 10.0})
    ratio, half = ratio_ci(momentum, plain, CONFIDENCE)
    assert abs(ratio - 1.0) < max(half, 0.0) and half < 0.05, (ratio, half)
    mean, half = mean_ci(momentum, CONFIDENCE)
    assert abs(mean - lms_scalar_limit(EIGS, 1.0, 5.0)) < half


def test_matrix_momentum_with_the_exact_hessian_reaches_the_optimal_value():
    values, _ = monte_carlo("matrix_momentum_exact", 0.5, 0.0, runs=RUNS, steps=STEPS)
    mean, half = mean_ci(values, CONFIDENCE)
    optimum = lms_optimal_limit(EIGS, 1.0)
    assert abs(mean - optimum) < half and half < 0.1 * optimum, (mean, half, optimum)
    # and it beats the best scalar rate, whose limit is larger
    best_scalar = min(lms_scalar_limit(EIGS, 1.0, m) for m in np.linspace(2.6, 20.0, 500))
    assert optimum < best_scalar and mean + half < best_scalar
