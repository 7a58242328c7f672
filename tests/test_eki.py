"""Ensemble Kalman inversion: the J-space update against the textbook formula, the subspace property, the
linear-Gaussian posterior at T = 1, the continuous-time limit (order 1 in h), and how it is refused or
recorded by the stacked engine."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torchdiffeq import odeint

from momentum_ct.errors import ConfigError
from momentum_ct.optim import EKI, FORWARD, Oracle, resolve_method
from momentum_ct.problems import Problem, make_problem
from momentum_ct.sweep import validate_config
from momentum_ct.train.series import check_engine
from momentum_ct.train.stacked import RunRequest, run_many

torch.set_num_threads(1)
DT = torch.float64


class MapOracle(Oracle):
    """``G`` applied row by row to every member, ``y`` shared by the runs."""

    provides = frozenset({FORWARD})

    def __init__(self, g, y):
        self.g, self.y = g, y

    def forward(self, points):
        return self.g(points), self.y.expand(points.shape[0], -1)


def linear_problem(d=3, m=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, d, generator=gen, dtype=DT)
    y = torch.randn(m, generator=gen, dtype=DT)
    return a, y


def start(hyper, x0, h=0.1):
    spec = resolve_method({"name": "eki", **hyper})
    columns = {k: torch.tensor([[v]], dtype=DT) for k, v in spec.columns(h, 0.0).items()}
    return EKI.init(x0.reshape(1, -1), columns)


def advance(state, oracle, n):
    for k in range(n):
        state = EKI.step(state, k, oracle)
    return state


def textbook_step(u, g, y, h, gamma, tikhonov=0.0, prior=None):
    """``u_j + h C_uG (h C_GG + Gamma)^-1 (y - G(u_j))`` with dense covariances (Tikhonov: augmented G)."""
    out = g(u.unsqueeze(0))[0]
    if tikhonov:
        out, y = torch.cat([out, u], 1), torch.cat([y, prior])
    gam = torch.diag(torch.cat([torch.full((len(y) - (u.shape[1] if tikhonov else 0),), gamma, dtype=DT),
                                torch.full((u.shape[1] if tikhonov else 0,), 1.0 / tikhonov if tikhonov else 1.0,
                                           dtype=DT)]))
    du, dg = u - u.mean(0), out - out.mean(0)
    c_ug, c_gg = du.T @ dg / len(u), dg.T @ dg / len(u)
    return u + (h * c_ug @ torch.linalg.solve(h * c_gg + gam, (y - out).T)).T


@pytest.mark.parametrize("n_members, tikhonov", [(5, 0.0), (5, 0.7), (10, 0.0), (10, 0.7)])
def test_update_equals_the_textbook_formula(n_members, tikhonov):
    """J = 5 < m = 6: the J-space form; J = 10: the output space (the J-space again with a Tikhonov block)."""
    a, y = linear_problem(d=4, m=6)
    g = lambda p: torch.tanh(p @ a.T)  # noqa: E731  nonlinear: the identity holds for any G
    x0 = torch.linspace(-0.5, 0.5, 4, dtype=DT)
    state = start({"J": n_members, "spread": 0.8, "noise": 0.3, "tikhonov": tikhonov}, x0, h=0.4)
    u0 = state["u"][0].clone()
    after = EKI.step(state, 0, MapOracle(g, y))["u"][0]
    expected = textbook_step(u0, g, y, 0.4, 0.3, tikhonov, x0)
    torch.testing.assert_close(after, expected, rtol=1e-12, atol=1e-12)


def test_adaptive_step_uses_the_misfit_matrix():
    a, y = linear_problem(d=3, m=5)
    g = lambda p: p @ a.T  # noqa: E731
    x0 = torch.zeros(3, dtype=DT)
    fixed = start({"J": 6, "spread": 1.0}, x0, h=1.0)
    adaptive = start({"J": 6, "spread": 1.0, "adaptive": 2.0, "eps": 1e-3}, x0, h=0.01)  # h: only the length
    out = g(fixed["u"])[0]
    dg = out - out.mean(0)
    d = dg @ (out - y).T / 6  # D_ij = <dG_i, Gamma^-1 (G_j - y)> / J, Gamma = I
    h_n = 2.0 / (torch.linalg.matrix_norm(d) + 1e-3)
    stepped = EKI.step(adaptive, 0, MapOracle(g, y))
    assert float(stepped["h_used"]) == pytest.approx(float(h_n), rel=1e-12)
    expected = textbook_step(fixed["u"][0], g, y, float(h_n), 1.0)
    torch.testing.assert_close(stepped["u"][0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("adaptive", [0, 1])
@pytest.mark.parametrize("perturb", [0.0, 1.0])
def test_both_spaces_give_the_same_increment(adaptive, perturb):
    """The J-space (Woodbury: triangular solves without perturbations, the inverse with them) and the output-space
    forms, same draws of the perturbations."""
    a, y = linear_problem(d=5, m=3, seed=4)
    state = start({"J": 7, "spread": 1.0, "noise": 0.4, "perturb": perturb, "adaptive": adaptive},
                  torch.ones(5, dtype=DT))
    u = state["u"]
    out = torch.sin(u @ a.T)
    du, dg = u - u.mean(1, keepdim=True), out - out.mean(1, keepdim=True)
    # the J-space form may overwrite the centred members it is given (the caller's own copy)
    base_j, moved_j, h_j, _ = EKI._in_ensemble_space(state, 3, u.mean(1), du.clone(), dg, out.mean(1) - y)
    coef_m, rows_m, h_m, _ = EKI._in_output_space(state, 3, du, dg, out - y)
    by_j, by_m = base_j + moved_j - u, coef_m @ rows_m
    torch.testing.assert_close(h_j, h_m, rtol=1e-12, atol=0)
    torch.testing.assert_close(by_j, by_m, rtol=1e-10, atol=1e-12)


def test_float32_update_of_a_collapsed_ensemble_keeps_its_spread():
    """Members far from the origin with a small spread: the float32 update of their deviations from the mean agrees
    with float64 to float32 round-off of the spread (an update that carried the mean through ``K^-1`` would be off by
    round-off of the mean, about a thousand times more here)."""
    a, y = linear_problem(d=6, m=20, seed=2)
    spec = resolve_method({"name": "eki", "J": 8, "spread": 1e-4, "noise": 0.05, "adaptive": 1.0})
    moved, members = {}, None
    for dtype in (torch.float32, torch.float64):
        columns = {k: torch.tensor([[v]], dtype=dtype) for k, v in spec.columns(0.1, 0.0).items()}
        state = EKI.init(torch.full((1, 6), 10.0, dtype=dtype), columns)
        members = state["u"] if members is None else members  # the float64 run starts from the float32 members
        state["u"] = members.to(dtype)
        g = lambda p, a=a.to(dtype), y=y.to(dtype): 10.0 * torch.tanh(p @ a.T / 10.0)  # noqa: E731
        u = EKI.step(state, 0, MapOracle(g, y.to(dtype)))["u"][0].double()
        moved[dtype] = u - u.mean(0)
    spread = moved[torch.float64].abs().max()
    assert float((moved[torch.float32] - moved[torch.float64]).abs().max() / spread) < 5e-4


class BlockOracle(MapOracle):
    """A forward map of ``blocks`` independent blocks, interleaved as ``Problem.blocks`` says (parameter ``i`` and
    output ``o`` in blocks ``i mod b``, ``o mod b``); each block's outputs are ``tanh(A_c u_c)``."""

    def __init__(self, mats, y):
        self.mats, self.blocks = mats, len(mats)
        super().__init__(self.apply, y)

    def apply(self, points):
        outs = [torch.tanh(points[..., c::self.blocks] @ a.T) for c, a in enumerate(self.mats)]
        return torch.stack(outs, -1).reshape(*points.shape[:-1], -1)


@pytest.mark.parametrize("perturb", [0.0, 1.0])
def test_localised_update_is_one_ensemble_update_per_block(perturb):
    """Localised to the problem's blocks, every block moves as an ensemble of its own (same members, its own
    outputs, its own Tikhonov block and perturbations) would: the cross-block covariances are left out."""
    blocks, n, m = 3, 4, 5
    mats = [linear_problem(d=n, m=m, seed=10 + c)[0] for c in range(blocks)]
    y = torch.randn(m * blocks, generator=torch.Generator().manual_seed(3), dtype=DT)
    x0 = torch.linspace(-0.3, 0.3, n * blocks, dtype=DT)
    hyper = {"J": 6, "spread": 0.7, "noise": 0.2, "tikhonov": 0.5, "perturb": perturb, "ensemble_seed": 4}
    whole = start({**hyper, "localise": 1}, x0, h=0.3)
    parts = []
    for c in range(blocks):
        part = start(hyper, x0[c::blocks], h=0.3)
        part["u"] = whole["u"][..., c::blocks].clone()  # the same initial members
        part["seed"] = np.array([4 * blocks + c])  # a block's own perturbations
        parts.append(part)
    whole = advance(whole, BlockOracle(mats, y), 8)
    for c, part in enumerate(parts):
        part = advance(part, MapOracle(lambda p, a=mats[c]: torch.tanh(p @ a.T), y[c::blocks]), 8)
        torch.testing.assert_close(whole["u"][..., c::blocks], part["u"], rtol=1e-12, atol=1e-12)
    unlocalised = advance(start(hyper, x0, h=0.3), BlockOracle(mats, y), 8)
    assert float((unlocalised["u"] - whole["u"]).abs().max()) > 1e-3  # localising changes the update
    with pytest.raises(ConfigError, match="localise takes a fixed step"):
        resolve_method({"name": "eki", "localise": 1, "adaptive": 1.0}).columns(0.1, 0.0)


def test_ensemble_stays_in_the_span_of_the_initial_ensemble():
    d, n_members = 12, 5
    a, y = linear_problem(d=d, m=8, seed=1)
    g = lambda p: torch.sin(p @ a.T) + 0.1 * (p @ a.T) ** 2  # noqa: E731
    state = start({"J": n_members, "spread": 1.0, "perturb": 1.0, "tikhonov": 0.5}, torch.zeros(d, dtype=DT),
                  h=0.2)
    basis = torch.linalg.qr(state["u"][0].T).Q  # d x J, orthonormal columns
    state = advance(state, MapOracle(g, y), 50)
    u = state["u"][0]
    residual = u.T - basis @ (basis.T @ u.T)
    moved = torch.linalg.matrix_norm(u - start({"J": n_members, "spread": 1.0}, torch.zeros(d, dtype=DT))["u"][0])
    assert float(moved) > 1e-2  # the ensemble did move
    assert float(torch.linalg.matrix_norm(residual)) <= 1e-12 * float(torch.linalg.matrix_norm(u))


def posterior(a, y, gamma, m0, sigma2):
    """Mean and covariance of u | y for u ~ N(m0, sigma2 I), y = A u + N(0, gamma I)."""
    precision = a.T @ a / gamma + torch.eye(a.shape[1], dtype=DT) / sigma2
    cov = torch.linalg.inv(precision)
    return cov @ (a.T @ y / gamma + m0 / sigma2), cov


def test_linear_gaussian_posterior_at_time_one():
    """ES-MDA with equal inflations 1/h (perturbations N(0, Gamma/h)) maps prior draws to the posterior at
    T = n h = 1 as J grows. Monte Carlo error: over 8 ensemble seeds the mean's error is compared with
    sqrt(tr C_post / J), the error of J independent posterior draws, and the covariance's relative error with
    sqrt(2 / J)*(1 + tr C / |C|_F) (the spread of a sample covariance); both allowed a factor 4, and both must
    fall as J grows by 10x and 10x."""
    a, y = linear_problem(d=3, m=4, seed=2)
    gamma, sigma, m0 = 0.5, 1.5, torch.tensor([0.3, -0.2, 0.1], dtype=DT)
    mean_post, cov_post = posterior(a, y, gamma, m0, sigma**2)
    g = lambda p: p @ a.T  # noqa: E731
    mean_err, cov_err = {}, {}
    for n_members in (30, 300, 3000):
        errs_m, errs_c = [], []
        for seed in range(8):
            state = start({"J": n_members, "spread": sigma, "noise": gamma, "perturb": 1.0, "ensemble_seed": seed},
                          m0, h=0.1)
            u = advance(state, MapOracle(g, y), 10)["u"][0]
            errs_m.append(float(torch.linalg.vector_norm(u.mean(0) - mean_post)))
            errs_c.append(float(torch.linalg.matrix_norm(torch.cov(u.T, correction=0) - cov_post)))
        mean_err[n_members] = math.sqrt(np.mean(np.square(errs_m)))
        cov_err[n_members] = math.sqrt(np.mean(np.square(errs_c))) / float(torch.linalg.matrix_norm(cov_post))
        scale_c = math.sqrt(2.0 / n_members) * (1 + float(torch.trace(cov_post) / torch.linalg.matrix_norm(cov_post)))
        assert mean_err[n_members] <= 4 * math.sqrt(float(torch.trace(cov_post)) / n_members), (n_members, mean_err)
        assert cov_err[n_members] <= 4 * scale_c, (n_members, cov_err)
    assert mean_err[3000] < mean_err[300] < mean_err[30]
    assert cov_err[3000] < cov_err[300] < cov_err[30]


def ensemble_flow(a, y, gamma, u0, times):
    """``du_j/dt = -C_uu grad Phi(u_j)``, ``Phi = |y - A u|^2_Gamma / 2``, the gradient from autograd (not the
    ensemble differences the method uses), integrated by torchdiffeq (dopri5, rtol 1e-10, atol 1e-12)."""
    def phi(u):
        return 0.5 * ((u @ a.T - y) ** 2).sum() / gamma

    def rhs(t, u):
        du = u - u.mean(0)
        c_uu = du.T @ du / len(u)
        grad = torch.func.grad(phi)(u)  # rows: grad Phi(u_j)
        return -grad @ c_uu

    return odeint(rhs, u0, times, rtol=1e-10, atol=1e-12, method="dopri5")


def test_mean_follows_the_preconditioned_gradient_flow_with_order_one():
    """J > d, linear G, small h: sup_k |mean u_k - mean u(kh)| falls like h (slope in [0.9, 1.1])."""
    a, y = linear_problem(d=3, m=5, seed=3)
    gamma, horizon = 2.0, 1.0
    g = lambda p: p @ a.T  # noqa: E731
    errors = []
    hs = [0.04, 0.02, 0.01, 0.005]
    for h in hs:
        state = start({"J": 8, "spread": 1.0, "noise": gamma}, torch.zeros(3, dtype=DT), h=h)
        n = round(horizon / h)
        flow = ensemble_flow(a, y, gamma, state["u"][0], torch.arange(n + 1, dtype=DT) * h).mean(1)
        err = 0.0
        for k in range(n):
            state = EKI.step(state, k, MapOracle(g, y))
            err = max(err, float(torch.linalg.vector_norm(state["u"][0].mean(0) - flow[k + 1])))
        errors.append(err)
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert 0.9 <= slope <= 1.1, (errors, slope)
    assert errors[-1] < 1e-2


@pytest.mark.parametrize("key, value, needle", [
    ("J", 1.5, "hyperparameter J must be an integer"),
    ("J", 1, "hyperparameter J must be an integer"),
    ("noise", 0.0, "hyperparameter noise must be positive"),
    ("adaptive", -0.5, "hyperparameter adaptive must be >= 0"),
    ("perturb", -1.0, "hyperparameter perturb must be >= 0"),
    ("spred", 1.0, "has no hyperparameter(s) spred"),
])
def test_bad_hyperparameters_name_the_key(key, value, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")) as info:
        resolve_method({"name": "eki", key: value})
    assert "\n" not in str(info.value)


def test_refused_where_no_forward_map_or_no_forward_oracle():
    with pytest.raises(ConfigError, match="engine 'functional' does not provide"):
        check_engine(EKI, "functional")
    quad = make_problem("quadratic", dim=3)
    with pytest.raises(ConfigError, match="problem 'quadratic' has no forward map"):
        run_many([RunRequest(quad, "eki", 0.1, 0.0, 2, np.array([0, 2]))], device="cpu")
    config = {"experiments": {"e": {"problem": "quadratic", "methods": ["eki"], "lam": [0.0], "claims": ["K1"],
                                    "h": [0.1, 0.05, 0.025], "horizon": 1.0, "engine": "stacked"}}}
    with pytest.raises(ConfigError, match=r"^experiments\.e\.methods: method 'eki' needs the model outputs"):
        validate_config(config)


def test_engine_matches_the_method_and_stacks_seeds_with_their_own_minibatches():
    problem = make_problem("regression", dim=4, n_samples=40)
    hyper = {"J": 6, "spread": 0.5, "noise": 40.0}
    alone = [run_many([RunRequest(problem, {"name": "eki", **hyper}, 0.2, 0.0, 12, np.array([0, 6, 12]),
                                  batch_size=10, seed=s)], device="cpu")[0].columns() for s in (0, 1)]
    both = run_many([RunRequest(problem, {"name": "eki", **hyper}, 0.2, 0.0, 12, np.array([0, 6, 12]),
                                batch_size=10, seed=s) for s in (0, 1)], device="cpu")
    for one, stacked in zip(alone, both):
        np.testing.assert_allclose(np.stack(stacked.columns()["x"]), np.stack(one["x"]), rtol=1e-12, atol=1e-14)
    assert not np.allclose(np.stack(alone[0]["x"])[-1], np.stack(alone[1]["x"])[-1])  # different mini-batches
    # full batch: the engine's records are the method's own iterates (mean of the ensemble, on the training set)
    full = run_many([RunRequest(problem, {"name": "eki", **hyper}, 0.2, 0.0, 5, np.array([5]))], device="cpu")[0]
    xs, ys = problem.train_data
    state = advance(start(hyper, problem.x0, h=0.2), MapOracle(lambda p: p @ xs.T, ys), 5)
    np.testing.assert_allclose(np.stack(full.columns()["x"])[-1], state["u"][0].mean(0).numpy(), rtol=1e-12)


def test_a_diverging_ensemble_is_recorded_not_raised():
    base = make_problem("regression", dim=3, n_samples=20)

    def exploding(ws, data, per_run=False):  # outputs overflow after a few steps
        xs, ys = data
        return torch.exp(torch.exp(3.0 * (ws @ xs.T))), ys + 1e6

    problem = Problem(**{**base.__dict__, "forward_map": exploding})
    rec = run_many([RunRequest(problem, {"name": "eki", "J": 4, "spread": 1.0}, 1.0, 0.0, 50, np.arange(51))],
                   device="cpu")[0]
    assert rec.diverged_at is not None and rec.diverged_at <= 50


@pytest.mark.parametrize("n_out", [12, 3])
@pytest.mark.parametrize("perturb", [0.0, 1.0])
@pytest.mark.parametrize("cause", ["outputs", "factor"])
def test_a_failed_factor_spoils_its_own_run_only(perturb, cause, n_out, monkeypatch):
    """Two runs in one stack (J = 5: the J-space with 12 outputs, the output space with 3), run 0's factor failing:
    from a non-finite output, or reported failed by the factorisation with finite numbers (what the guard itself
    must catch). Run 0's members become NaN (the engine records it as diverged) and run 1 moves exactly as it does
    alone."""
    a, y = linear_problem(d=3, m=n_out, seed=1)
    spec = resolve_method({"name": "eki", "J": 5, "spread": 1.0, "perturb": perturb, "adaptive": 1.0})

    def stack(runs):
        columns = {k: torch.tensor([[v]] * runs, dtype=DT) for k, v in spec.columns(0.2, 0.0).items()}
        return EKI.init(torch.zeros(runs, 3, dtype=DT), columns)

    def g(points):
        out = torch.tanh(points @ a.T)
        if points.shape[0] == 2 and cause == "outputs":
            out[0, 0, 0] = math.inf
        return out

    factor = torch.linalg.cholesky_ex

    def failing(matrix):
        chol, info = factor(matrix)
        if matrix.shape[0] == 2:
            info = info.clone()
            info[0] = 1
        return chol, info

    if cause == "factor":
        monkeypatch.setattr(torch.linalg, "cholesky_ex", failing)
    both = EKI.step(stack(2), 0, MapOracle(g, y))["u"]
    alone = EKI.step(stack(1), 0, MapOracle(g, y))["u"]
    assert bool(torch.isnan(both[0]).all())
    torch.testing.assert_close(both[1], alone[0], rtol=1e-13, atol=1e-15)


def test_claim_e3_on_a_linear_problem(tmp_path):
    """E3 through its registry entry: order ~1 and a vanishing gap between the two flows on linear regression."""
    from momentum_ct.claims import measures
    from momentum_ct.claims.registry import get_claim
    from momentum_ct.ct.integrate import OdeOptions
    from momentum_ct.io import read_json, read_trajectory
    from momentum_ct.train.series import SeriesSpec
    from momentum_ct.train.shard import write_shard

    spec = SeriesSpec(experiment="e", problem="regression", method="eki(J=6, spread=1.0, noise=40.0)", lam=0.0,
                      seed=0, h=(0.04, 0.02, 0.01, 0.005), t_max=1.0, n_records=20, engine="stacked",
                      problem_options=dict(dim=4, n_samples=40))
    write_shard([spec], str(tmp_path / "t.parquet"), str(tmp_path / "m.json"))
    traj, meta = read_trajectory(str(tmp_path / "t.parquet")), read_json(str(tmp_path / "m.json"), ["series"])
    columns, info = measures.predict_shard("E3", traj, meta, OdeOptions())
    shard = dict(traj=traj, meta=meta, pred=pd.DataFrame(columns), info=info)
    fits, _ = measures.measure("E3", [shard], {"fit_points": 4})
    verdicts = {r.quantity: get_claim("E3").quantity(r.quantity).verdict(r.predicted, r.measured, r.ci_low, r.ci_high,
                                                                         r.regime, r.n_points)
                for r in fits.itertuples()}
    order = float(fits.loc[fits["quantity"] == "order", "measured"].iloc[0])
    assert 0.9 <= order <= 1.1, fits
    assert verdicts == {"order": "supported", "flow_gap": "supported"}, fits


def test_claim_e3_refuses_what_it_cannot_judge():
    base = {"problem": "regression", "lam": [0.0], "claims": ["E3"], "h": [0.04, 0.02, 0.01], "horizon": 1.0,
            "engine": "stacked"}
    for methods, batch in (([{"name": "eki", "perturb": 1.0}], None), ([{"name": "eki", "adaptive": 1}], None),
                           (["eki"], 20), (["eki", "gd"], None)):
        config = {"experiments": {"e": {**base, "methods": methods, "batch_size": batch}}}
        with pytest.raises(ConfigError, match=r"^experiments\.e\.claims: claim E3 needs only ensemble methods"):
            validate_config(config)


def test_claim_e1_compares_the_same_steps_on_the_same_data(tmp_path):
    """E1's rows: the gap to gd per EKI series, judged as offline (J >= parameter count) or below it."""
    from momentum_ct.claims import measures
    from momentum_ct.io import read_json, read_trajectory
    from momentum_ct.train.shard import write_shard
    from momentum_ct.sweep import expand_series

    config = {"experiments": {"e": {
        "claims": ["E1"], "problem": "digits_mlp", "problem_options": {"hidden": [2], "n_train": 60},
        "methods": ["gd", {"name": "eki", "J": 20, "spread": 0.3, "adaptive": 1.0},
                    {"name": "eki", "J": 160, "spread": 0.3, "adaptive": 1.0}],
        "lam": [0.0], "h": [0.5], "horizon": 2.0, "n_records": 2, "engine": "stacked"}}}
    specs = expand_series(config)
    write_shard(specs, str(tmp_path / "t.parquet"), str(tmp_path / "m.json"), log=lambda _: None)
    traj, meta = read_trajectory(str(tmp_path / "t.parquet")), read_json(str(tmp_path / "m.json"), ["series"])
    fits, points = measures.measure("E1", [dict(traj=traj, meta=meta)], {})
    assert dict(zip(points["J"], fits["quantity"])) == {20: "accuracy_gap_below_dim", 160: "accuracy_gap"}
    assert set(points["dim"]) == {160}  # 64 x 2 + 2 + 2 x 10 + 10
    gd = traj[traj["method"] == "gd"].sort_values("step")["test_accuracy"].iloc[-1]
    np.testing.assert_allclose(points["accuracy_sgd"], gd)
    np.testing.assert_allclose(fits["measured"], points["accuracy_sgd"] - points["accuracy_eki"])
    assert traj.groupby("method")["step"].max().nunique() == 1  # the same number of steps for every method


def test_graph_ssl_closed_form_and_eki_fixed_point():
    """The posterior mean (labels-space solve) against the dense normal equations; Tikhonov EKI with J above the
    parameter count reaches it (the prior as the Tikhonov block, no perturbations)."""
    from momentum_ct.claims.e2 import label_spreading_accuracy
    from momentum_ct.problems.graph_ssl import posterior_mean

    problem = make_problem("graph_ssl", dataset="moons", n_nodes=40, n_labels=6)
    mean = posterior_mean(problem, 0.05)
    out, y = problem.forward_map(torch.eye(problem.dim, dtype=DT), problem.train_data, False)
    a = out.T  # labels x parameters, column by column
    dense = torch.linalg.solve(a.T @ a / 0.05 + torch.eye(problem.dim, dtype=DT), a.T @ y / 0.05)
    torch.testing.assert_close(mean, dense, rtol=1e-9, atol=1e-10)
    rec = run_many([RunRequest(problem, {"name": "eki", "J": 120, "spread": 1.0, "noise": 0.05, "tikhonov": 1.0},
                               0.5, 0.0, 2000, np.array([20, 200, 2000]))], device="cpu")[0]
    errors = [float(torch.linalg.vector_norm(torch.as_tensor(x) - mean) / torch.linalg.vector_norm(mean))
              for x in rec.columns()["x"]]
    # the ensemble collapses like 1/t, so the mean closes in on the fixed point like t^(-1/2): a factor sqrt(10)
    # per decade of steps
    assert errors[2] < errors[1] / 2 < errors[0] / 4 and errors[2] < 0.1, errors
    assert 0.0 <= label_spreading_accuracy(problem) <= 1.0
    # J = 60: above a class's 40 parameters, below all 80. Localised to the classes, the members span each class's
    # parameters and the mean closes in as above; one update over all parameters stays in a 59-dimensional
    # affine subspace of 80 dimensions, away from the posterior mean
    assert problem.blocks == 2
    late = {}
    for localise in (0, 1):
        rec = run_many([RunRequest(problem, {"name": "eki", "J": 60, "spread": 1.0, "noise": 0.05, "tikhonov": 1.0,
                                             "localise": localise}, 0.5, 0.0, 2000, np.array([2000]))], device="cpu")[0]
        x = torch.as_tensor(rec.columns()["x"][-1])
        late[localise] = float(torch.linalg.vector_norm(x - mean) / torch.linalg.vector_norm(mean))
    assert late[1] < 0.1 < late[0], late


def test_claim_e2_judges_the_closed_form_gap_only_where_the_members_span_an_update(tmp_path):
    """E2's regime: (parameters one update moves) / (J - 1) at most 1. Unlocalised, that is all 80 parameters of a
    40-node two-class graph; localised, a class's 40."""
    from momentum_ct.claims import measures
    from momentum_ct.claims.judge import judge
    from momentum_ct.io import read_json, read_trajectory
    from momentum_ct.train.shard import write_shard
    from momentum_ct.sweep import expand_series

    eki = {"name": "eki", "spread": 1.0, "noise": 0.05, "tikhonov": 1.0}
    config = {"experiments": {"e": {
        "claims": ["E2"], "problem": "graph_ssl", "problem_options": {"dataset": "moons", "n_nodes": 40, "n_labels": 6},
        "methods": [eki | {"J": 60}, eki | {"J": 60, "localise": 1}, eki | {"J": 100}],
        "lam": [0.0], "h": [0.5], "horizon": 20.0, "n_records": 2, "engine": "stacked"}}}
    write_shard(expand_series(config), str(tmp_path / "t.parquet"), str(tmp_path / "m.json"), log=lambda _: None)
    traj, meta = read_trajectory(str(tmp_path / "t.parquet")), read_json(str(tmp_path / "m.json"), ["series"])
    fits, points = measures.measure("E2", [dict(traj=traj, meta=meta)], {})
    rows = judge(fits)
    closed = rows[rows["quantity"] == "accuracy_gap_closed_form"].merge(points[["method", "J", "localised", "per_update"]],
                                                                       on="method")
    got = {(int(r.J), bool(r.localised)): (r.regime, r.verdict) for r in closed.itertuples()}
    assert got[(60, False)][0] == pytest.approx(80 / 59) and got[(60, False)][1] == "inconclusive"
    assert got[(60, True)][0] == pytest.approx(40 / 59) and got[(60, True)][1] != "inconclusive"
    assert got[(100, False)][0] == pytest.approx(80 / 99) and got[(100, False)][1] != "inconclusive"
    assert "parameters per update / (J - 1) = 1.36 > 1" in closed[closed["verdict"] == "inconclusive"]["note"].iloc[0]


def test_claim_e2_needs_a_graph_prior():
    config = {"experiments": {"e": {"problem": "regression", "methods": ["eki"], "lam": [0.0], "claims": ["E2"],
                                    "h": [0.5], "horizon": 1.0, "engine": "stacked"}}}
    with pytest.raises(ConfigError, match=r"^experiments\.e\.claims: claim E2 needs a graph semi-supervised"):
        validate_config(config)
