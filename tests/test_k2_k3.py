"""Claims K2 and K3: Hessian-vector products, right-hand sides against closed forms, and the measured
orders and contraction ratios on small sweeps of the quadratic and the 2-D toy (float64).

The sweeps keep ``h L / (1 - lam)^2 <= 0.025`` (asymptotic regime, SCIENCE.md 1.4a) and are short, so
the whole module runs in tens of seconds.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from momentum_ct.claims import common, k1, k2, k3
from momentum_ct.claims.measures import predict_shard
from momentum_ct.ct.fit import geometric_ratio
from momentum_ct.ct.integrate import OdeOptions, integrate
from momentum_ct.ct.modified import (coefficient, gradient, gradient_and_curvature, grad_modified_loss, hessian_vector,
                                     modified_flow, time_scale)
from momentum_ct.ct.second_order import alpha, initial_state, second_order, second_order_hessian
from momentum_ct.optim import coefficients
from momentum_ct.problems import make_problem
from momentum_ct.sweep import h_grid
from momentum_ct.train.series import SeriesSpec, run_series

pytestmark = pytest.mark.usefixtures("single_torch_thread")

ODE = OdeOptions()
PROBLEMS = {
    "quadratic": dict(dim=5, condition=8.0, lipschitz=1.0),
    "toy2d": {},
    "digits_mlp": dict(hidden=[4], n_train=40),
}


def _points(problem, n=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [problem.x0] + [problem.x0 + 0.3 * torch.randn(problem.dim, generator=gen, dtype=torch.float64)
                           for _ in range(n - 1)]


def _double_backward(problem, x):
    """``grad |grad f|^2`` by autograd's double backward of the loss itself (no closed forms)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(problem.full_loss(x), x, create_graph=True)
    (out,) = torch.autograd.grad((g * g).sum(), x)
    return out


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("closed_form", [True, False])
def test_grad_of_grad_norm_squared_against_double_backward(name, closed_form):
    problem = make_problem(name, seed=0, **PROBLEMS[name])
    if not closed_form:  # the reverse-over-reverse path every network takes
        problem = dataclasses.replace(problem, hessian=None, hessian_vector=None)
    for x in _points(problem):
        g, hg = gradient_and_curvature(problem, x)
        torch.testing.assert_close(g, problem.full_grad(x), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(2.0 * hg, _double_backward(problem, x), rtol=1e-9, atol=1e-12,
                                   msg=f"{name} closed_form={closed_form}: 2 H g against double backward")


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_hessian_vector_matches_forward_over_reverse(name):
    problem = make_problem(name, seed=0, **PROBLEMS[name])
    bare = dataclasses.replace(problem, hessian=None, hessian_vector=None)
    gen = torch.Generator().manual_seed(1)
    for x in _points(problem):
        v = torch.randn(problem.dim, generator=gen, dtype=torch.float64)
        jvp = torch.func.jvp(bare.full_grad, (x,), (v,))[1]
        for p in (problem, bare):
            g, hv = hessian_vector(p, x, v)
            torch.testing.assert_close(hv, jvp, rtol=1e-9, atol=1e-12, msg=f"{name}: H v")
            torch.testing.assert_close(g, problem.full_grad(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_right_hand_side_products_equal_the_torch_func_ones(name):
    """The right-hand sides' gradient and pullbacks in plain autograd (outside transforms) against torch.func's
    ``grad`` and ``vjp`` of the gradient, on each problem with its closed forms removed (the path a network takes)."""
    bare = dataclasses.replace(make_problem(name, seed=0, **PROBLEMS[name]), grad=None, hessian=None,
                               hessian_vector=None)
    gen = torch.Generator().manual_seed(2)
    for x in _points(bare):
        v = torch.randn(bare.dim, generator=gen, dtype=torch.float64)
        g, pullback = torch.func.vjp(bare.full_grad, x)
        torch.testing.assert_close(gradient(bare, x), g, rtol=1e-13, atol=1e-15)
        got_g, got_hv = hessian_vector(bare, x, v)
        torch.testing.assert_close(got_g, g, rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(got_hv, pullback(v)[0], rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(grad_modified_loss(bare, x, 0.3), g + 0.6 * pullback(g)[0], rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(grad_modified_loss(bare, x, 0.0), g, rtol=0, atol=0)


def test_grad_norm_squared_closed_form_on_quadratic():
    problem = make_problem("quadratic", seed=3, **PROBLEMS["quadratic"])
    a, x_star = problem.hessian, problem.minimiser
    for x in _points(problem):
        _, hg = gradient_and_curvature(problem, x)
        torch.testing.assert_close(2.0 * hg, 2.0 * a @ a @ (x - x_star), rtol=1e-12, atol=1e-13)


def test_coefficients_of_the_modified_losses():
    h, lam = 0.01, 0.7
    hb, nag, gd = coefficients("hb", h, lam), coefficients("nag", h, lam), coefficients("gd_rescaled", h, lam)
    assert coefficient("kovachki_stuart", *hb, h) == pytest.approx(h * (1 + lam) / (4 * (1 - lam) ** 2), rel=1e-14)
    assert coefficient("kovachki_stuart", *nag, h) == pytest.approx(h * (1 - lam + 2 * lam**2) / (4 * (1 - lam) ** 2),
                                                                    rel=1e-14)
    assert coefficient("ghosh", *hb, h) == coefficient("kovachki_stuart", *hb, h)
    assert coefficient("ghosh", *nag, h) == pytest.approx(h * (1 + lam) / (4 * (1 - lam) ** 2), rel=1e-14)
    # Ghosh et al.'s heavy-ball strength is (1 + lam)/(1 - lam) times Barrett & Dherin's at h/(1 - lam)
    assert coefficient("ghosh", *hb, h) / coefficient("barrett_dherin", *hb, h) == pytest.approx((1 + lam) / (1 - lam))
    for f in ("kovachki_stuart", "barrett_dherin", "ghosh"):  # on rescaled GD all three are IGR at h/(1 - lam)
        assert coefficient(f, *gd, h) == pytest.approx(h / (4 * (1 - lam)), rel=1e-12)
    assert coefficient("flow", *nag, h) == 0.0
    for c in (hb, nag, gd):
        assert time_scale(c[0], c[1], h) == pytest.approx(1 / (1 - lam), rel=1e-14)
    assert alpha(h, lam, 0.0) == pytest.approx(h * (1 + lam) / (2 * (1 - lam)))
    assert alpha(h, lam, lam) == pytest.approx(h * (1 - lam + 2 * lam**2) / (2 * (1 - lam)))


def test_modified_flow_on_quadratic_against_matrix_exponential():
    problem = make_problem("quadratic", seed=1, **PROBLEMS["quadratic"])
    a, x_star, x0 = problem.hessian.numpy(), problem.minimiser.numpy(), problem.x0.numpy()
    c, scale = 0.05, 2.0
    drift = scale * (a + 2 * c * a @ a)  # dx/dt = -scale (A + 2 c A^2)(x - x*)
    rhs = modified_flow(problem, c, scale)
    x = problem.x0 + 0.1
    np.testing.assert_allclose(rhs(0.0, x).numpy(), -drift @ (x.numpy() - x_star), rtol=1e-12, atol=1e-14)
    expected = torch.as_tensor((a + 2 * c * a @ a) @ (x.numpy() - x_star))
    torch.testing.assert_close(grad_modified_loss(problem, x, c), expected, rtol=1e-12, atol=1e-14)
    times = np.linspace(0.0, 3.0, 7)
    got = integrate(rhs, problem.x0, times, ODE).numpy()
    exact = np.array([x_star + scipy.linalg.expm(-drift * t) @ (x0 - x_star) for t in times])
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-9)


def _second_order_exact(problem, h, lam, a, times, hessian_form=False):
    """``(x, v)`` of the linear second-order system on a quadratic by the matrix exponential of its 2d x 2d form."""
    hess, x_star, x0 = problem.hessian.numpy(), problem.minimiser.numpy(), problem.x0.numpy()
    d = len(x0)
    if hessian_form:  # h(1+lam)/2 x'' + (1-lam) x' + a h A x' = -A (x - x*)
        mass = h * (1 + lam) / 2
        k, damping = hess / mass, ((1 - lam) * np.eye(d) + a * h * hess) / mass
    else:  # alpha x'' + x' = -A (x - x*)/(1 - lam)
        al = alpha(h, lam, a)
        k, damping = hess / ((1 - lam) * al), np.eye(d) / al
    m = np.block([[np.zeros((d, d)), np.eye(d)], [-k, -damping]])
    z0 = np.concatenate([x0 - x_star, np.zeros(d)])
    z = np.array([scipy.linalg.expm(m * t) @ z0 for t in times])
    return z[:, :d] + x_star, z[:, d:]


@pytest.mark.parametrize("hessian_form", [False, True])
@pytest.mark.parametrize("lam", [0.5, 0.9])
def test_second_order_on_quadratic_against_matrix_exponential(lam, hessian_form):
    problem = make_problem("quadratic", seed=2, **PROBLEMS["quadratic"])
    h, a = 1e-3 * (1 - lam) ** 2, lam
    rhs = (second_order_hessian if hessian_form else second_order)(problem, h, lam, a)
    x, v = problem.x0 + 0.2, problem.x0 - 0.1
    hess, x_star = problem.hessian, problem.minimiser
    dx, dv = rhs(0.0, (x, v))
    if hessian_form:
        expected = (-hess @ (x - x_star) - (1 - lam) * v - a * h * hess @ v) / (h * (1 + lam) / 2)
    else:
        expected = (-hess @ (x - x_star) / (1 - lam) - v) / alpha(h, lam, a)
    torch.testing.assert_close(dx, v)
    torch.testing.assert_close(dv, expected, rtol=1e-12, atol=1e-10)
    times = np.concatenate([np.linspace(0, 20 * alpha(h, lam, a), 9), np.linspace(0.02, 0.2, 4)])
    x_exact, v_exact = _second_order_exact(problem, h, lam, a, times, hessian_form)
    for options in (ODE.stiff(), ODE):  # the stiff solver the pipeline uses, and dopri5 coping at small alpha
        x_got, v_got = integrate(rhs, initial_state(problem), times, options)
        np.testing.assert_allclose(x_got.numpy(), x_exact, rtol=0, atol=1e-9, err_msg=options.method)
        np.testing.assert_allclose(v_got.numpy(), v_exact, rtol=0, atol=1e-7, err_msg=options.method)


@pytest.mark.parametrize("solver", ["LSODA", "BDF"])
def test_stiff_solves_equal_torchdiffeqs_scipy_solver(solver):
    """``integrate``'s stiff path calls scipy as torchdiffeq's ``scipy_solver`` does, without its wrappers: the same
    solution bit for bit, for a tuple state (K2's ``(x, v)``) at unsorted, repeated times, and at time 0 alone."""
    from torchdiffeq import odeint

    problem = make_problem("toy2d")
    rhs = second_order(problem, 0.01, 0.9, 0.9)
    options = dataclasses.replace(ODE, stiff_solver=solver).stiff()
    times = np.array([0.3, 0.05, 0.3, 0.0, 0.7])
    got = integrate(rhs, initial_state(problem), times, options)
    grid, inverse = np.unique(np.concatenate([[0.0], times]), return_inverse=True)
    ref = odeint(rhs, initial_state(problem), torch.tensor(grid), method="scipy_solver", rtol=options.rtol,
                 atol=options.atol, options={"solver": solver})
    for a, b in zip(got, ref):
        assert torch.equal(a, b[torch.as_tensor(inverse[1:])])
    start = integrate(rhs, initial_state(problem), np.array([0.0]), options)
    assert all(torch.equal(s[0], y) for s, y in zip(start, initial_state(problem)))


def test_geometric_ratio_recovers_a_known_ratio():
    fit = geometric_ratio(3.0 * 0.83 ** np.arange(12))
    assert fit.slope == pytest.approx(0.83, rel=1e-12) and fit.n_points == 12
    assert math.isnan(geometric_ratio([1.0, 0.5]).slope)


def test_transient_windows():
    assert k2.transient_steps(0.5) == 10 and k2.transient_steps(0.9) == 66 and k2.transient_steps(0.0) == 0
    assert 0.5 ** k2.transient_steps(0.5) < 1e-3 <= 0.5 ** (k2.transient_steps(0.5) - 1)
    h, lam = 1e-3, 0.9
    k = k3.transient_time(h, lam) / h
    assert lam**k == pytest.approx(h**3, rel=1e-9)


# --- measured orders and contraction ratios on small sweeps ----------------------------------------------

SWEEPS = {  # start chosen so h L / (1 - lam)^2 <= 0.025 on the coarsest h of each sweep
    "quadratic": dict(problem_options=dict(dim=6, condition=10.0, lipschitz=1.0), start=0.025, horizon=2.0),
    "toy2d": dict(problem_options={}, start=0.00625, horizon=1.5),
}


def _series(problem, method, lam):
    sweep = SWEEPS[problem]
    spec = SeriesSpec(experiment="test", problem=problem, method=method, lam=lam, seed=0,
                      h=h_grid({"start": sweep["start"], "halvings": 3, "scale_with_momentum": True}, lam),
                      t_max=sweep["horizon"] * (1 - lam), n_records=60, dense_steps=100,
                      problem_options=sweep["problem_options"])
    columns, meta = run_series(spec, log=lambda _: None)
    traj = pd.DataFrame(columns).assign(method=method, lam=lam, seed=0)
    shard_meta = {"series": [meta]}
    fits = {}
    for claim, module in (("K1", k1), ("K2", k2), ("K3", k3)):
        pred, info = predict_shard(claim, traj, shard_meta, ODE)
        rows, _ = module.measure(traj, pd.DataFrame(pred), info["series"][0], meta, fit_points=4)
        fits[claim] = {r["quantity"]: r for r in rows}
    return fits


@pytest.fixture(scope="module")
def measured():
    return {(p, m, lam): _series(p, m, lam) for p in SWEEPS for m in ("hb", "nag") for lam in (0.5, 0.9)}


@pytest.mark.parametrize("problem", sorted(SWEEPS))
@pytest.mark.parametrize("method", ["hb", "nag"])
@pytest.mark.parametrize("lam", [0.5, 0.9])
def test_orders_and_contraction(measured, problem, method, lam):
    fits = measured[(problem, method, lam)]
    case = f"{problem} {method} lam={lam}"
    k1_order, k2_order, k3_order = fits["K1"]["order"], fits["K2"]["order"], fits["K3"]["order"]
    assert k3_order["regime"] <= 0.05, case
    assert 1.8 <= k3_order["measured"] <= 2.2, f"{case}: K3 order {k3_order['measured']:.3f}"
    assert 0.9 <= k1_order["measured"] <= 1.1, f"{case}: K1 order {k1_order['measured']:.3f}"
    assert 0.9 <= k2_order["measured"] <= 1.1, f"{case}: K2 order {k2_order['measured']:.3f}"
    assert fits["K2"]["error_ratio"]["measured"] < 1.0, case
    assert fits["K2"]["error_ratio_transient"]["measured"] < 1.0, case
    for quantity in ("contraction_ratio", "contraction_ratio_corrected"):
        assert fits["K3"][quantity]["measured"] == pytest.approx(lam, rel=0.05), f"{case}: {quantity}"
    # the competing formulas that differ from F_h stay at order 1, and F_h fits best
    assert 0.8 <= fits["K3"]["order_flow"]["measured"] <= 1.2, case
    assert fits["K3"]["runner_up_error_ratio"]["measured"] > 1.0, case
    if method == "nag":
        assert fits["K3"]["order_ghosh"]["measured"] < 1.5, case
    else:
        assert fits["K3"]["order_ghosh"]["measured"] == k3_order["measured"], case


def test_lag_estimate_matches_heavy_ball(measured):
    """HB's K2/K1 ratio on the quadratic is the constant-gradient lag ratio (1 - lam)/(2 lam) to a few %."""
    for lam in (0.5, 0.9):
        got = measured[("quadratic", "hb", lam)]["K2"]["error_ratio"]["measured"]
        assert got == pytest.approx(k2.lag_ratio("hb", lam), rel=0.1)


@pytest.mark.parametrize("method", ["hb", "nag"])
def test_stacked_modified_flows_equal_one_solve_per_flow(method, monkeypatch):
    """K3's stacked solve of a series' flows (small problems) against one solve per flow (large problems):
    the same rows, the same values to the solver's tolerance."""
    spec = SeriesSpec(experiment="test", problem="quadratic", method=method, lam=0.5, seed=0,
                      h=h_grid({"start": 0.05, "halvings": 2, "scale_with_momentum": True}, 0.5),
                      t_max=1.0, n_records=20, dense_steps=10, problem_options=dict(dim=4, condition=5.0))
    columns, meta = run_series(spec, log=lambda _: None)
    traj = pd.DataFrame(columns)
    stacked, _ = k3.predict(traj, meta, ODE)
    monkeypatch.setattr(k3, "STACK_MAX_DIM", 0)
    alone, _ = k3.predict(traj, meta, ODE)
    flows = [i for i, kind in enumerate(stacked["kind"]) if kind.startswith("modified_flow")]
    assert len(flows) > 40 and {stacked["formula"][i] for i in flows} >= {k3.PAPER, "flow"}
    for key in ("kind", "formula", "h", "step", "t"):
        assert stacked[key] == alone[key], key
    np.testing.assert_allclose(np.stack(stacked["x"]), np.stack(alone["x"]), rtol=0, atol=1e-9)


@pytest.mark.parametrize("problem", ["toy2d", "digits_mlp"])
def test_predictions_without_vectors_give_the_same_measures(problem, monkeypatch):
    """Above ``VECTOR_MAX_DIM`` predictions hold only the distances the measures read: every measured row and
    point is the same as from predictions that keep their vectors (the toy's phase portrait needs them)."""
    spec = SeriesSpec(experiment="test", problem=problem, method="nag", lam=0.5, seed=0,
                      h=h_grid({"start": 0.05, "halvings": 2, "scale_with_momentum": True}, 0.5),
                      t_max=0.5, n_records=10, dense_steps=10, problem_options=PROBLEMS[problem])
    columns, meta = run_series(spec, log=lambda _: None)
    traj = pd.DataFrame(columns).assign(method="nag", lam=0.5, seed=0)

    def measured(vector_max_dim):
        monkeypatch.setattr(common, "VECTOR_MAX_DIM", vector_max_dim)
        out = {}
        for claim, module in (("K1", k1), ("K2", k2), ("K3", k3)):
            pred, info = predict_shard(claim, traj, {"series": [meta]}, ODE)
            assert ("x" in pred) == (vector_max_dim > 0), claim
            rows, points = module.measure(traj, pd.DataFrame(pred), info["series"][0], meta, fit_points=2)
            out[claim] = (pd.DataFrame(rows), points)
        return out

    with_vectors, without = measured(10**6), measured(0)
    for claim, (rows, points) in with_vectors.items():
        pd.testing.assert_frame_equal(rows, without[claim][0], check_exact=True)
        if problem == "toy2d" and claim == "K3":
            assert (points["kind"] == "phase").any() and not (without[claim][1]["kind"] == "phase").any()
            points = points[points["kind"] != "phase"].dropna(axis=1, how="all").reset_index(drop=True)
        pd.testing.assert_frame_equal(points, without[claim][1], check_exact=True)


@pytest.mark.parametrize("problem", ["toy2d", "digits_mlp"])
def test_velocities_kept_in_the_dense_head_only_give_the_same_predictions_and_measures(problem):
    """K3 compares velocities in the dense head only, so runs keep ``m`` there (``velocity_steps``): the K1-K3
    predictions, rows and points equal those from runs that keep ``m`` at every record, the phase portrait
    included."""
    import dataclasses

    spec = SeriesSpec(experiment="test", problem=problem, method="nag", lam=0.5, seed=0,
                      h=h_grid({"start": 0.05, "halvings": 2, "scale_with_momentum": True}, 0.5),
                      t_max=0.5, n_records=10, dense_steps=10, problem_options=PROBLEMS[problem])
    out = {}
    for name, s in (("head", dataclasses.replace(spec, velocity_steps=spec.dense_steps)), ("all", spec)):
        columns, meta = run_series(s, log=lambda _: None)
        traj = pd.DataFrame(columns).assign(method="nag", lam=0.5, seed=0)
        kept = traj["m"].map(len) > 0
        assert kept.all() if name == "all" else (kept == (traj["step"] < spec.dense_steps)).all() and not kept.all()
        assert meta["m_kind"] == ("dense_head" if name == "head" else "as_x")
        out[name] = {}
        for claim, module in (("K1", k1), ("K2", k2), ("K3", k3)):
            pred, info = predict_shard(claim, traj, {"series": [meta]}, ODE)
            rows, points = module.measure(traj, pd.DataFrame(pred), info["series"][0], meta, fit_points=2)
            out[name][claim] = (pd.DataFrame(pred), pd.DataFrame(rows), points)
    for claim, frames in out["all"].items():
        for full, head in zip(frames, out["head"][claim]):
            assert not full.empty
            pd.testing.assert_frame_equal(full, head, check_exact=True)
    if problem == "toy2d":
        assert (out["head"]["K3"][2]["kind"] == "phase").any()


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_shared_gradient_flow_gives_each_series_its_own_solve(method):
    """K1 and K2 solve the gradient flow once per problem instance of a shard, at the union of its series' times:
    every series gets exactly (bit for bit) what a solve of its own gives, with an adaptive solver and with a
    fixed-grid one (which then solves each series alone); another seed is another instance."""
    ode = dataclasses.replace(ODE, method=method)
    series, metas = [], []
    for method_name, lam, seed in [("hb", 0.5, 0), ("nag", 0.9, 0), ("gd_rescaled", 0.5, 0), ("hb", 0.5, 1)]:
        spec = SeriesSpec(experiment="test", problem="toy2d", method=method_name, lam=lam, seed=seed,
                          h=h_grid({"start": 0.05, "halvings": 1, "scale_with_momentum": True}, lam),
                          t_max=1.0 - lam, n_records=15, dense_steps=5, problem_options={})
        columns, meta = run_series(spec, log=lambda _: None)
        series.append(pd.DataFrame(columns).assign(method=method_name, lam=lam, seed=seed))
        metas.append(meta)
    shard = pd.concat(series, ignore_index=True)
    for claim, module in (("K1", k1), ("K2", k2)):
        batch, info = predict_shard(claim, shard, {"series": metas}, ode)
        alone = [module.predict(traj, meta, ode) for traj, meta in zip(series, metas)]
        assert [dict(i, key=None) for i in info["series"]] == [dict(i, key=None) for _, i in alone], claim
        for key in ("kind", "t", "err", "x"):
            joined = [v for columns, _ in alone for v in columns.get(key, [])]
            assert len(batch[key]) == len(joined), (claim, key)
            np.testing.assert_array_equal(np.asarray(batch[key], dtype=object if key == "kind" else float),
                                          np.asarray(joined, dtype=object if key == "kind" else float),
                                          err_msg=f"{claim} {key}")
