"""Claim K2's second-order modified equation, as a first-order system in ``(x, v = x')`` (SCIENCE.md 1.3).

Taylor expansion of ``x_{k+1} - x_k - lam (x_k - x_{k-1}) = -h grad f(x_k + a (x_k - x_{k-1}))`` about
``t = k h`` gives, to first order in ``h``,

    h (1 + lam)/2 x'' + (1 - lam) x' + a h Hess f(x) x' = -grad f(x)          (unsubstituted form)

and replacing ``Hess f(x) x' = d/dt grad f(x)`` by its leading-order value ``-(1 - lam) x''``,

    alpha x'' + x' = -grad f(x) / (1 - lam),   alpha = h [(1 + lam) - 2 a (1 - lam)] / (2 (1 - lam)).

Initial conditions: ``x(0) = x_0`` and ``x'(0) = 0``, the continuous image of ``x_{-1} = x_0`` (the
velocity ``m_0 = (x_0 - x_{-1}) / h`` of the recurrence is zero). ``alpha`` is ``O(h)``: the system is
singularly perturbed, with a fast mode of rate ``1/alpha`` that the solver must resolve (explicit
``dopri5`` takes steps of about ``3 alpha``; measured to stay within its tolerances in the tests).

Only momentum methods are modelled: a GD run is a one-step recurrence whose velocity is not set by
``x_{-1}``, so it has no transient for the second-order term to describe (its modified equation is
the first-order one of ``ct.modified``).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..problems import Problem
from .modified import gradient, hessian_vector


def alpha(h: float, lam: float, a: float) -> float:
    """``h [(1 + lam) - 2 a (1 - lam)] / (2 (1 - lam))``: HB (``a = 0``) ``h (1 + lam)/(2 (1 - lam))``,
    NAG (``a = lam``) ``h (1 - lam + 2 lam^2) / (2 (1 - lam))``."""
    return h * ((1.0 + lam) - 2.0 * a * (1.0 - lam)) / (2.0 * (1.0 - lam))


def initial_state(problem: Problem) -> tuple[Tensor, Tensor]:
    """``(x_0, x'(0) = 0)``, consistent with ``x_{-1} = x_0``."""
    return problem.x0.clone(), torch.zeros_like(problem.x0)


def second_order(problem: Problem, h: float, lam: float, a: float) -> Callable:
    """``rhs(t, (x, v)) = (v, (-grad f(x)/(1 - lam) - v) / alpha)``."""
    al = alpha(h, lam, a)
    if not al > 0.0:
        raise ValueError(f"second-order model needs alpha > 0, got {al} for h={h}, lam={lam}, a={a}")

    def rhs(t, state):
        x, v = state
        return v, (-gradient(problem, x) / (1.0 - lam) - v) / al

    return rhs


def second_order_hessian(problem: Problem, h: float, lam: float, a: float) -> Callable:
    """Unsubstituted form: ``rhs(t, (x, v)) = (v, (-grad f - (1 - lam) v - a h H v) / (h (1 + lam)/2))``.

    ``H v`` is a Hessian-vector product (forward over reverse, which also returns ``grad f``).
    """
    mass = h * (1.0 + lam) / 2.0

    def rhs(t, state):
        x, v = state
        if a == 0.0:
            g, hv = gradient(problem, x), 0.0
        else:
            g, hv = hessian_vector(problem, x, v)
        return v, (-g - (1.0 - lam) * v - a * h * hv) / mass

    return rhs
