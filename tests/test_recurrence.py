"""The recurrence of SCIENCE.md 1.1, checked against torch.optim.SGD, closed forms and the Lightning path.

    x_{k+1} = x_k + lam (x_k - x_{k-1}) - h grad f(x_k + a (x_k - x_{k-1})),   x_{-1} = x_0

Change of variables to torch.optim.SGD (torch/optim/sgd.py, ``_single_tensor_sgd``, with
``dampening=0`` and no weight decay). Torch keeps a buffer ``b`` that it creates as ``b_1 = g_0`` on
the first step and then updates as ``b_{k+1} = lam b_k + g_k``; writing ``b_0 = 0`` makes the first
step the same formula. Its parameter update is

- ``nesterov=False``: ``p_{k+1} = p_k - lr b_{k+1}``;
- ``nesterov=True``:  ``p_{k+1} = p_k - lr (g_k + lam b_{k+1})``,

where ``g_k`` is the gradient at the parameter ``p_k``.

Heavy ball (``a = 0``): take ``p_k = x_k`` and ``b_k = -m_k = -(x_k - x_{k-1}) / h``. Then
``b_{k+1} = lam b_k + g(x_k)`` reads ``-(x_{k+1} - x_k)/h = -lam (x_k - x_{k-1})/h + grad f(x_k)``, which is
the recurrence, and ``b_0 = 0`` is ``x_{-1} = x_0``.

Nesterov (``a = lam``): torch's parameter holds the look-ahead point ``p_k = y_k = x_k + lam (x_k - x_{k-1})``
and again ``b_k = -m_k``. The recurrence is ``x_{k+1} = y_k - h grad f(y_k)``, so
``m_{k+1} = lam m_k - grad f(y_k)``, i.e. ``b_{k+1} = lam b_k + g(p_k)``; and
``y_{k+1} = x_{k+1} + lam h m_{k+1} = y_k - h grad f(y_k) - h lam b_{k+1}``, torch's update. With
``x_{-1} = x_0``: ``p_0 = y_0 = x_0`` and ``b_0 = 0``. Hence ``x_k = p_k + lr lam b_k`` recovers the
recurrence's iterate from torch's state.

With ``lam = 0`` torch keeps no buffer and both methods are gradient descent, ``p_k = x_k``.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from momentum_ct.errors import ConfigError
from momentum_ct.optim import (
    METHODS, MomentumRecurrence, Oracle, coefficients, get_method, lookahead_point, momentum_step, resolve_method,
    velocity,
)
from momentum_ct.problems import make_problem
from momentum_ct.train.functional_runner import run_functional
from momentum_ct.train.schedule import record_steps

from problems_exact import mode_by_roots, companion_power, eigen, quadratic_recurrence, small_quadratic

pytestmark = pytest.mark.usefixtures("single_torch_thread")

N_STEPS = 200
LAMS = [0.0, 0.5, 0.9]
TOL = 1e-12


@functools.lru_cache(maxsize=None)
def digits_problem():
    """Built once: the tests only read it."""
    return make_problem("digits_mlp", seed=0, hidden=[8], n_train=200)


PROBLEMS = {
    "quadratic": (small_quadratic, 0.1),  # (factory, h): h L / (1 - lam)^2 <= 20 keeps every lam stable here
    "digits_mlp": (digits_problem, 0.05),
}


def ours_functional(problem, *, h, lam, a, n_steps=N_STEPS):
    """``x_k`` and ``m_k`` for ``k = 0..n_steps`` from ``momentum_step``."""
    x = problem.x0.clone()
    x_prev = x.clone()
    xs, ms = [x.clone()], [velocity(x, x_prev, h)]
    for _ in range(n_steps):
        x, x_prev = momentum_step(x, x_prev, problem.full_grad, h, lam, a)
        xs.append(x.clone())
        ms.append(velocity(x, x_prev, h))
    return torch.stack(xs), torch.stack(ms)


def ours_optimizer(problem, *, h, lam, a, closure: bool, n_steps=N_STEPS):
    """``x_k`` for ``k = 0..n_steps`` from ``MomentumRecurrence`` on a parameter tensor."""
    p = torch.nn.Parameter(problem.x0.clone())
    opt = MomentumRecurrence([p], lr=h, momentum=lam, lookahead=a)

    def loss_closure():
        opt.zero_grad()
        loss = problem.full_loss(p)
        loss.backward()
        return loss

    xs = [p.detach().clone()]
    for _ in range(n_steps):
        if closure:
            opt.step(loss_closure)
        else:
            loss_closure()
            opt.step()
        xs.append(p.detach().clone())
    return torch.stack(xs)


def torch_sgd(problem, *, h, lam, nesterov: bool, n_steps=N_STEPS):
    """Torch's parameters ``p_k`` and buffers ``b_k`` (``b_0 = 0``) for ``k = 0..n_steps``."""
    p = torch.nn.Parameter(problem.x0.clone())
    opt = torch.optim.SGD([p], lr=h, momentum=lam, nesterov=nesterov, dampening=0.0, weight_decay=0.0,
                          foreach=False)
    ps, bs = [p.detach().clone()], [torch.zeros_like(p)]
    for _ in range(n_steps):
        opt.zero_grad()
        problem.full_loss(p).backward()
        opt.step()
        ps.append(p.detach().clone())
        buf = opt.state[p].get("momentum_buffer")
        bs.append(torch.zeros_like(p) if buf is None else buf.detach().clone())
    return torch.stack(ps), torch.stack(bs)


def assert_close(actual, expected, what, tol=TOL):
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    err = float((actual - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    assert err <= tol * scale, f"{what}: max deviation {err:.3e} > {tol:g} x {scale:.3g}"


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("problem_name", sorted(PROBLEMS))
def test_heavy_ball_matches_torch_sgd(problem_name, lam):
    factory, h = PROBLEMS[problem_name]
    problem = factory()
    p, b = torch_sgd(problem, h=h, lam=lam, nesterov=False)
    x, m = ours_functional(problem, h=h, lam=lam, a=0.0)
    assert torch.isfinite(x).all()
    assert_close(x, p, f"{problem_name} HB lam={lam}: x_k against torch's p_k")
    if lam > 0:
        assert_close(m, -b, f"{problem_name} HB lam={lam}: m_k against minus torch's buffer")
    for closure in (True, False):
        x_opt = ours_optimizer(problem, h=h, lam=lam, a=0.0, closure=closure)
        assert_close(x_opt, p, f"{problem_name} HB lam={lam}: MomentumRecurrence (closure={closure})")


@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("problem_name", sorted(PROBLEMS))
def test_nesterov_matches_torch_sgd_after_change_of_variables(problem_name, lam):
    factory, h = PROBLEMS[problem_name]
    problem = factory()
    # torch refuses nesterov=True without momentum; at lam = 0 NAG is plain GD.
    p, b = torch_sgd(problem, h=h, lam=lam, nesterov=lam > 0)
    x_torch = p + h * lam * b  # x_k = y_k - lam h m_k with b_k = -m_k
    x, m = ours_functional(problem, h=h, lam=lam, a=lam)
    assert torch.isfinite(x).all()
    assert_close(x, x_torch, f"{problem_name} NAG lam={lam}: x_k against torch's p_k + lr lam b_k")
    x_prev = torch.cat([x[:1], x[:-1]])
    y = lookahead_point(x, x_prev, lam)
    assert_close(y, p, f"{problem_name} NAG lam={lam}: look-ahead y_k against torch's parameter")
    if lam > 0:
        assert_close(m, -b, f"{problem_name} NAG lam={lam}: m_k against minus torch's buffer")
        # The look-ahead point really differs from x_k: the comparison above is not vacuous.
        assert float((p - x_torch)[1:].abs().max()) > 1e-6
    x_opt = ours_optimizer(problem, h=h, lam=lam, a=lam, closure=True)
    assert_close(x_opt, x_torch, f"{problem_name} NAG lam={lam}: MomentumRecurrence")


# --- the method protocol: the general member of the family, several look-aheads in one stacked state ----


class FullGradient(Oracle):
    """The problem's gradient on the full training data, row by row (independent of the engines' oracles)."""

    provides = frozenset({"grad"})

    def __init__(self, problem):
        self.problem = problem

    def grad(self, points):
        return torch.stack([self.problem.full_grad(p) for p in points])


def protocol_family(problem, *, h, lam, looks, n_steps=N_STEPS):
    """``x_k`` and ``m_k`` (``k = 0..n_steps``, one row per look-ahead ``a`` in ``looks``) of the member
    ``heavy_ball_family`` through the protocol, all look-aheads stacked in one state."""
    member = get_method("heavy_ball_family")
    rows = [member.columns(h, lam, a=a) for a in looks]
    columns = {k: torch.tensor([[r[k]] for r in rows], dtype=torch.float64) for k in rows[0]}
    state = member.init(problem.x0.repeat(len(looks), 1), columns)
    oracle = FullGradient(problem)
    xs, ms = [], []
    for k in range(n_steps + 1):
        rec = member.record(state)
        xs.append(rec["x"].clone())
        ms.append(rec["m"].clone())
        if k < n_steps:
            state = member.step(state, k, oracle)
    return torch.stack(xs, dim=1), torch.stack(ms, dim=1)  # runs x steps x dim


@pytest.mark.parametrize("lam", [0.5, 0.9])
@pytest.mark.parametrize("problem_name", sorted(PROBLEMS))
def test_protocol_family_matches_torch_sgd_and_the_scalar_recurrence(problem_name, lam):
    """``heavy_ball_family`` with ``a = 0`` is torch's heavy ball, with ``a = lam`` torch's Nesterov (after the
    change of variables above), and with an ``a`` torch does not offer it is the scalar recurrence; the three
    look-aheads advance together in one stacked state."""
    factory, h = PROBLEMS[problem_name]
    problem = factory()
    general = 0.3
    x, m = protocol_family(problem, h=h, lam=lam, looks=(0.0, lam, general))
    assert torch.isfinite(x).all()
    p, b = torch_sgd(problem, h=h, lam=lam, nesterov=False)
    assert_close(x[0], p, f"{problem_name} a=0 lam={lam}: x_k against torch's p_k")
    assert_close(m[0], -b, f"{problem_name} a=0 lam={lam}: m_k against minus torch's buffer")
    p, b = torch_sgd(problem, h=h, lam=lam, nesterov=True)
    assert_close(x[1], p + h * lam * b, f"{problem_name} a=lam={lam}: x_k against torch's p_k + lr lam b_k")
    assert_close(m[1], -b, f"{problem_name} a=lam={lam}: m_k against minus torch's buffer")
    x_ref, m_ref = ours_functional(problem, h=h, lam=lam, a=general)
    assert_close(x[2], x_ref, f"{problem_name} a={general} lam={lam}: x_k against the scalar recurrence")
    assert_close(m[2], m_ref, f"{problem_name} a={general} lam={lam}: m_k against the scalar recurrence")
    # the three look-aheads really give three trajectories
    assert float((x[2] - x[0]).abs().max()) > 1e-6 and float((x[2] - x[1]).abs().max()) > 1e-6


@pytest.mark.parametrize("a", [0.0, 0.3, 0.7])
def test_protocol_family_matches_closed_form_for_any_lookahead(a):
    problem = small_quadratic()
    h, lam = 0.1, 0.5
    steps = list(range(0, N_STEPS + 1, 7)) + [N_STEPS]
    exact = quadratic_recurrence(problem, steps, h=h, lam=lam, a=a)
    x, _ = protocol_family(problem, h=h, lam=lam, looks=(a,))
    assert_close(x[0][steps], exact, f"heavy_ball_family a={a}: protocol against closed form")
    assert np.linalg.norm(exact[-1] - problem.x0.numpy()) > 0.1


# --- closed form on a quadratic -------------------------------------------------------------------

CLOSED_FORM_CASES = [
    ("gd", 0.3, 0.0),
    ("gd", 0.3, 0.9),  # gd ignores lam
    ("gd_rescaled", 0.1, 0.5),
    ("hb", 0.1, 0.5),
    ("hb", 0.05, 0.9),
    ("nag", 0.1, 0.5),
    ("nag", 0.05, 0.9),
]


@pytest.mark.parametrize("method,h,lam", CLOSED_FORM_CASES)
def test_recurrence_matches_closed_form_on_quadratic(method, h, lam):
    problem = small_quadratic()
    step_size, momentum, a = coefficients(method, h, lam)
    steps = list(range(0, N_STEPS + 1, 7)) + [N_STEPS]
    exact = quadratic_recurrence(problem, steps, h=step_size, lam=momentum, a=a)
    x, _ = ours_functional(problem, h=step_size, lam=momentum, a=a)
    assert_close(x[steps], exact, f"{method} h={h} lam={lam}: functional recurrence against closed form")
    closure = a != 0.0
    x_opt = ours_optimizer(problem, h=step_size, lam=momentum, a=a, closure=closure)
    assert_close(x_opt[steps], exact, f"{method} h={h} lam={lam}: MomentumRecurrence against closed form")
    # the iterates moved: the comparison is not between two copies of x0
    assert np.linalg.norm(exact[-1] - problem.x0.numpy()) > 0.1


@pytest.mark.parametrize("method,h,lam", [c for c in CLOSED_FORM_CASES if c[2] > 0 and c[0] in ("hb", "nag")])
def test_companion_power_agrees_with_characteristic_roots(method, h, lam):
    """The exact reference itself, computed two ways (matrix powers, roots)."""
    step_size, momentum, a = coefficients(method, h, lam)
    eig, _ = eigen(small_quadratic())
    for mu in eig:
        for k in (0, 1, 2, 17, N_STEPS):
            power = companion_power(1.0 + momentum - step_size * mu * (1.0 + a), momentum - step_size * mu * a, k)
            by_power = power[0, 0] + power[0, 1]
            assert by_power == pytest.approx(mode_by_roots(mu, k, h=step_size, lam=momentum, a=a), abs=1e-10), (mu, k)


def test_method_coefficients():
    assert coefficients("hb", 0.1, 0.5) == (0.1, 0.5, 0.0)
    assert coefficients("nag", 0.1, 0.5) == (0.1, 0.5, 0.5)
    assert coefficients("gd_rescaled", 0.1, 0.5) == pytest.approx((0.2, 0.0, 0.0))
    assert coefficients("gd", 0.1, 0.5) == (0.1, 0.0, 0.0)
    assert set(METHODS) >= {"gd", "hb", "nag", "gd_rescaled"}


# --- refusals ------------------------------------------------------------------------------------


def test_optimizer_refuses_nesterov_without_closure():
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = MomentumRecurrence([p], lr=0.1, momentum=0.5, lookahead=0.5)
    (p**2).sum().backward()
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(3, dtype=torch.float64)), "a refused step must not move the parameters"


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-0.1, momentum=0.5), r"learning rate h must be positive, got -0\.1"),
    (dict(lr=0.0, momentum=0.5), r"learning rate h must be positive, got 0"),
    (dict(lr=float("nan"), momentum=0.5), r"learning rate h must be positive, got nan"),
    (dict(lr=0.1, momentum=1.0), r"momentum lam must lie in \[0, 1\), got 1\.0"),
    (dict(lr=0.1, momentum=1.5), r"momentum lam must lie in \[0, 1\), got 1\.5"),
    (dict(lr=0.1, momentum=-0.1), r"momentum lam must lie in \[0, 1\), got -0\.1"),
    (dict(lr=0.1, momentum=0.5, lookahead=1.0), r"lookahead a must lie in \[0, 1\), got 1\.0"),
])
def test_optimizer_rejects_bad_hyperparameters(kwargs, match):
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=match):
        MomentumRecurrence([p], **kwargs)


@pytest.mark.parametrize("method", ["gd", "hb", "nag", "gd_rescaled"])
@pytest.mark.parametrize("h,lam,match", [
    (-0.1, 0.5, "learning rate"), (0.1, 1.0, "momentum"), (0.1, -0.5, "momentum"),
])
def test_coefficients_reject_bad_hyperparameters(method, h, lam, match):
    with pytest.raises(ConfigError, match=match):
        coefficients(method, h, lam)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown method 'adam'; valid methods: annealed_sgd, eki, gd, gd_rescaled, hb, "
                                          r"heavy_ball_family, matrix_momentum, matrix_momentum_difference, "
                                          r"matrix_momentum_exact, nag, search_then_converge$"):
        get_method("adam")


def test_gd_ignores_lam_through_the_method_object_too():
    """Regression: ``Method("gd").coefficients`` used to return the rescaled step size ``h / (1 - lam)``."""
    assert get_method("gd").coefficients(0.1, 0.5) == (0.1, 0.0, 0.0)
    assert get_method("gd_rescaled").coefficients(0.1, 0.5) == (0.2, 0.0, 0.0)
    assert get_method("gd").columns(0.1, 0.9) == {"step_size": 0.1, "lam": 0.0, "a": 0.0}


def test_family_member_with_lookahead_hyperparameter():
    assert coefficients("heavy_ball_family(a=0.3)", 0.1, 0.5) == (0.1, 0.5, 0.3)
    spec = resolve_method({"name": "heavy_ball_family", "a": 0.3})
    assert spec.label == "heavy_ball_family(a=0.3)" and resolve_method(spec.label) == spec
    assert get_method(spec.label) is METHODS["heavy_ball_family"] and get_method(spec.label).uses_momentum
    assert spec.columns(0.1, 0.5) == {"step_size": 0.1, "lam": 0.5, "a": 0.3}


# --- Lightning path against the functional path --------------------------------------------------

LIGHTNING_PROBLEMS = {
    "quadratic": (lambda: small_quadratic(), 0.1),
    "toy2d": (lambda: make_problem("toy2d", seed=1), 0.05),
    "digits_mlp": (lambda: make_problem("digits_mlp", seed=0, hidden=[8], n_train=160), 0.1),
}


@pytest.fixture
def restore_torch_determinism():
    """Lightning's ``deterministic=True`` switches torch's global flag on; put it back afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.usefixtures("restore_torch_determinism")
@pytest.mark.parametrize("batch_size", [None, 32], ids=["full", "minibatch"])
@pytest.mark.parametrize("method", ["hb", "nag", "heavy_ball_family(a=0.3)"])
@pytest.mark.parametrize("problem_name", sorted(LIGHTNING_PROBLEMS))
def test_lightning_matches_functional(problem_name, method, batch_size):
    from momentum_ct.train.lightning_system import run_lightning

    factory, h = LIGHTNING_PROBLEMS[problem_name]
    problem = factory()
    n_steps = 40
    kwargs = dict(method=method, h=h, lam=0.5, n_steps=n_steps, record_at=record_steps(n_steps, 8, 5),
                  batch_size=batch_size, seed=3)
    ref = run_functional(problem, **kwargs).columns()
    got = run_lightning(problem, **kwargs).columns()
    assert list(got["step"]) == list(ref["step"]) == list(record_steps(n_steps, 8, 5))
    for key in ("x", "m"):
        assert_close(np.stack(got[key]), np.stack(ref[key]), f"{problem_name} {method} batch_size={batch_size}: {key}")
    assert set(got) == set(ref)
    for key in ("loss", "grad_norm" if "grad_norm" in ref else "sq_dist"):
        assert_close(got[key], ref[key], f"{problem_name} {method} batch_size={batch_size}: {key}")
    assert np.linalg.norm(ref["x"][-1] - ref["x"][0]) > 1e-3, "the run must move"
