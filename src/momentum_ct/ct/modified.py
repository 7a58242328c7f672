"""Modified losses ``F = f + c |grad f|^2`` and their gradient flows (SCIENCE.md 1.4, claim K3).

``grad |grad f|^2 = 2 Hess f grad f`` is a Hessian-vector product, never a Hessian. Every flow is
written in the nominal time ``t = k h`` of the run it is compared with::

    dx/dt = - scale * grad F(x) = - scale * (grad f + 2 c Hess f grad f)

A run iterates ``(step size s, momentum mu, look-ahead a)`` (``optim.coefficients``); in its own time
``k s`` the paper's modified flow is ``-grad F_s / (1 - mu)`` with
``c = s [(1 + mu) - 2 a (1 - mu)] / (4 (1 - mu)^2)``, and ``t = k h`` gives ``scale = s / (h (1 - mu))``
with ``c`` unchanged. The competing formulas differ only in ``c``:

- ``flow``: ``c = 0``, the time-rescaled gradient flow of K1.
- ``kovachki_stuart``: the paper's ``F_h`` above (HB: ``a = 0``, NAG: ``a = mu``; GD: ``mu = a = 0``).
- ``barrett_dherin``: implicit gradient regularisation of GD, ``f + eta/4 |grad f|^2``, applied with the
  effective learning rate ``eta = h * scale`` (``h / (1 - lam)`` for HB, NAG and rescaled GD): the
  reading of momentum as nothing but a rescaled learning rate, carried to second order.
- ``ghosh``: the heavy-ball form ``c = s (1 + mu) / (4 (1 - mu)^2)`` (``F_h`` with ``a = 0``), whose
  strength is ``(1 + mu)/(1 - mu)`` times Barrett & Dherin's at the same effective learning rate, as
  reported by Ghosh et al. (ICLR 2023) for heavy ball; applied to NAG it ignores the look-ahead.

On HB ``ghosh`` equals ``kovachki_stuart``; on GD all three non-trivial formulas coincide.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..errors import unknown_name
from ..problems import Problem


def gradient_and_curvature(problem: Problem, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(g, H g)`` with ``g = grad f(x)`` and ``H`` the Hessian of the full loss at ``x``.

    Where the problem has a closed-form Hessian-vector product (``Problem.hvp``) it is used. Otherwise one
    reverse pass gives ``g`` and its pullback (``torch.func.vjp`` of the gradient, reverse over reverse)
    gives ``H^T g = H g``: a forward-mode ``jvp`` of the gradient would need ``g`` as its tangent before it
    starts, so it would compute the gradient twice. Usable inside torch.func transforms (vmapped over points);
    right-hand sides use the plain-autograd forms below.
    """
    if problem.closed_form_hvp:
        g = problem.full_grad(x)
        return g, problem.hvp(x, g)
    g, pullback = torch.func.vjp(problem.full_grad, x)
    return g, pullback(g)[0]


def gradient(problem: Problem, x: Tensor) -> Tensor:
    """``grad f(x)`` on the full data for a right-hand side evaluated outside torch.func transforms (an ODE solve):
    the closed form where the problem has one, else reverse-mode autograd on the loss. The same products as
    ``Problem.full_grad``'s ``torch.func.grad`` (equal to round-off; bit for bit on the test machine) without its
    bookkeeping, which is a quarter of a network gradient's time."""
    if problem.grad is not None:
        return problem.full_grad(x)
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(problem.full_loss(y), y)
    return g


def _pullback(problem: Problem, x: Tensor, v: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(g, H v)``, ``v = g`` when not given, by reverse over reverse in autograd (outside transforms): the products
    of ``torch.func.vjp`` of the gradient, without its bookkeeping."""
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(problem.full_loss(y), y, create_graph=True)
        (hv,) = torch.autograd.grad(g, y, grad_outputs=g.detach() if v is None else v)
    return g.detach(), hv


def hessian_vector(problem: Problem, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """``(grad f(x), H v)``: the gradient and its pullback applied to ``v`` (``H`` is symmetric), closed form on
    problems with one. Same product as ``Problem.hvp``'s forward-over-reverse ``jvp``, measured about twice as
    cheap on the digits MLP (``benchmarks/modified_flow.py``). For right-hand sides (outside transforms)."""
    if problem.closed_form_hvp:
        return gradient(problem, x), problem.hvp(x, v)
    return _pullback(problem, x, v)


def grad_modified_loss(problem: Problem, x: Tensor, c: float) -> Tensor:
    """``grad (f + c |grad f|^2) = g + 2 c H g``, for right-hand sides (outside transforms)."""
    if c == 0.0:
        return gradient(problem, x)
    if problem.closed_form_hvp:
        g = gradient(problem, x)
        hg = problem.hvp(x, g)
    else:
        g, hg = _pullback(problem, x)
    return torch.add(g, hg, alpha=2.0 * c)


def modified_flow(problem: Problem, c: float, scale: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Right-hand side ``rhs(t, x) = -scale * grad (f + c |grad f|^2)(x)`` for ``integrate``."""

    def rhs(t, x):
        if c == 0.0:
            return -scale * gradient(problem, x)
        return grad_modified_loss(problem, x, c).mul_(-scale)  # a fresh tensor: scaled in place, one op fewer

    return rhs


def modified_flows(problem: Problem, c: Tensor, scale: Tensor) -> Callable[[Tensor], Tensor]:
    """Right-hand side of a stack of modified flows for ``integrate_stack``: member ``b`` (a row of ``X``) follows
    ``-scale[b] * grad (f + c[b] |grad f|^2)``; the gradients and curvatures of all members in one vmapped call."""
    both = torch.func.vmap(lambda x: gradient_and_curvature(problem, x))

    def rhs(xs):
        g, hg = both(xs)
        return -scale[:, None] * (g + 2.0 * c[:, None] * hg)

    return rhs


def time_scale(step_size: float, momentum: float, h: float) -> float:
    """``s / (h (1 - mu))``: the factor of a run's modified flow in nominal time ``t = k h``."""
    return step_size / (h * (1.0 - momentum))


def _flow(step_size, momentum, a, h):
    return 0.0


def _kovachki_stuart(step_size, momentum, a, h):
    return step_size * ((1.0 + momentum) - 2.0 * a * (1.0 - momentum)) / (4.0 * (1.0 - momentum) ** 2)


def _barrett_dherin(step_size, momentum, a, h):
    return h * time_scale(step_size, momentum, h) / 4.0


def _ghosh(step_size, momentum, a, h):
    return step_size * (1.0 + momentum) / (4.0 * (1.0 - momentum) ** 2)


# formula name -> c(step_size, momentum, a, h): the coefficient of |grad f|^2 in nominal time
MODIFIED_LOSSES: dict[str, Callable[[float, float, float, float], float]] = {
    "flow": _flow,
    "kovachki_stuart": _kovachki_stuart,
    "barrett_dherin": _barrett_dherin,
    "ghosh": _ghosh,
}


def coefficient(formula: str, step_size: float, momentum: float, a: float, h: float) -> float:
    """``c`` of a named modified loss for a run iterating ``(step_size, momentum, a)`` at nominal ``h``."""
    if formula not in MODIFIED_LOSSES:
        raise unknown_name("modified loss", formula, MODIFIED_LOSSES)
    return float(MODIFIED_LOSSES[formula](step_size, momentum, a, h))
