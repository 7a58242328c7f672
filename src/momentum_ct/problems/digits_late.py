"""A small tanh MLP on the digits with weight decay, started near a non-degenerate minimum ``w*``: the nonlinear
back-prop network of Orr & Leen's late-time claims (SCIENCE.md 2, "Beyond LMS").

``f(w) = mean_i CE_i(w) + weight_decay/2 |w|^2``; the weight decay makes the minimum isolated. ``w*`` is found once
per configuration by a long full-batch run (scipy's L-BFGS from a fixed initialisation, then a few Newton steps, to
a gradient norm below ``MINIMUM_GTOL``); the Hessian ``H`` at ``w*`` (dense: a few hundred weights) must be positive definite, and the
per-sample gradient covariance ``S`` at ``w*`` is computed from every training sample. They go into ``extra`` as
``hessian_at_minimum`` and ``gradient_covariance``: the late-time prediction of the optimal matrix rate is
``tr(H^{-1} S H^{-1})``, of scalar annealing ``mu / t`` the trace of the Lyapunov solution (``ct.late_time``). The
seed sets only the start ``w* + start_distance * u`` (``u`` a random unit vector).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from .base import Problem, flat_module_loss
from .digits_mlp import build_mlp, load_digits_tensors
from .stacked import stacked_sequential_loss

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.

MINIMUM_GTOL = 1e-9
NEWTON_STEPS = 3


class _WeightDecayed:
    """A stacked loss plus ``weight_decay/2 |x|^2`` per run (keeps the ``width`` callers size chunks with)."""

    def __init__(self, base, weight_decay: float):
        self.base, self.weight_decay, self.width = base, weight_decay, base.width

    def __call__(self, xs, data, per_run=False):
        return self.base(xs, data, per_run) + 0.5 * self.weight_decay * (xs * xs).sum(1)


@functools.lru_cache(maxsize=8)
def _minimum(hidden: tuple[int, ...], weight_decay: float, n_train: int | None, split_seed: int, init_seed: int):
    """``(w*, H, S, train, test, module)`` of one configuration (cached: every seed of a sweep shares them)."""
    from scipy.optimize import minimize
    train, test = load_digits_tensors(split_seed)
    if n_train is not None:
        train = tuple(t[:n_train] for t in train)
    module = build_mlp(train[0].shape[1], list(hidden), 10, init_seed)
    ce, w0, _ = flat_module_loss(module, nn.functional.cross_entropy)

    def loss(w, data):
        return ce(w, data) + 0.5 * weight_decay * torch.dot(w, w)

    def value_and_grad(w):
        x = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        value = loss(x, train)
        (g,) = torch.autograd.grad(value, x)
        return float(value.detach()), g.numpy()

    result = minimize(value_and_grad, w0.numpy(), jac=True, method="L-BFGS-B",
                      options=dict(maxiter=20000, gtol=MINIMUM_GTOL, ftol=0.0, maxcor=30))
    w_star = torch.tensor(result.x, dtype=torch.float64)
    # L-BFGS stalls near 1e-8 in float64; a few Newton steps with the dense Hessian reach round-off
    for _ in range(NEWTON_STEPS):
        step = torch.linalg.solve(torch.func.hessian(loss)(w_star, train), torch.func.grad(loss)(w_star, train))
        w_star = w_star - step
    grad_norm = float(torch.linalg.vector_norm(torch.func.grad(loss)(w_star, train)))
    if grad_norm > 10 * MINIMUM_GTOL:
        raise ValueError(f"digits_late: the full-batch run stopped at gradient norm {grad_norm:.2e} "
                         f"({result.message}); no minimum to start from")
    hessian = torch.func.hessian(loss)(w_star, train)
    hessian = 0.5 * (hessian + hessian.T)
    lowest = float(torch.linalg.eigvalsh(hessian)[0])
    if lowest <= 0.0:
        raise ValueError(f"digits_late: the Hessian at w* is not positive definite (lowest eigenvalue {lowest:.3g}); "
                         "raise weight_decay")
    per_sample = torch.func.vmap(torch.func.grad(lambda w, x, y: loss(w, (x[None], y[None]))),
                                 in_dims=(None, 0, 0))(w_star, *train)
    centred = per_sample - per_sample.mean(0)
    covariance = centred.T @ centred / per_sample.shape[0]
    return w_star, hessian, covariance, train, test, module, loss


def make_digits_late(*, seed: int = 0, hidden: list[int] = (4,), weight_decay: float = 0.01, n_train: int | None = None,
                     split_seed: int = 0, init_seed: int = 0, start_distance: float = 0.1) -> Problem:
    hidden = tuple(int(w) for w in hidden)
    if not hidden or min(hidden) < 1 or max(hidden) > 64:
        raise ValueError(f"digits_late: hidden must be a non-empty list of widths in [1, 64] (a dense Hessian is "
                         f"formed at w*), got {list(hidden)}")
    if not weight_decay > 0.0:
        raise ValueError(f"digits_late: weight_decay must be positive (it makes the minimum isolated), got {weight_decay}")
    if start_distance < 0.0:
        raise ValueError(f"digits_late: start_distance must be >= 0, got {start_distance}")
    w_star, hessian, covariance, train, test, module, loss = _minimum(hidden, float(weight_decay), n_train,
                                                                      split_seed, init_seed)
    u = torch.randn(w_star.numel(), generator=torch.Generator().manual_seed(6000 + seed), dtype=torch.float64)
    x0 = w_star + start_distance * u / torch.linalg.vector_norm(u)
    _, _, unflatten = flat_module_loss(module, nn.functional.cross_entropy)

    def accuracy(x, data):
        inputs, targets = data
        logits = torch.func.functional_call(module, unflatten(x), (inputs,))
        return (logits.argmax(-1) == targets).to(torch.float64).mean()

    base = stacked_sequential_loss(module, nn.functional.cross_entropy)
    return Problem(
        name="digits_late",
        options=dict(seed=seed, hidden=list(hidden), weight_decay=weight_decay, n_train=n_train, split_seed=split_seed,
                     init_seed=init_seed, start_distance=start_distance),
        x0=x0, loss=loss, train_data=train, test_data=test, accuracy=accuracy, module=module, minimiser=w_star,
        extra=dict(hessian_at_minimum=hessian, gradient_covariance=covariance,
                   hessian_eigenvalues=torch.linalg.eigvalsh(hessian)),
        seed_sets_start_only=True,
        stacked_loss=None if base is None else _WeightDecayed(base, float(weight_decay)),
    )
