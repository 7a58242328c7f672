"""The recurrence for one run with scalar coefficients: state in, state out, so it can be vmapped.

The state is ``(x_k, x_{k-1})``; the method's velocity variable is ``m_k = (x_k - x_{k-1}) / h``.
Starting with ``x_{-1} = x_0`` is the convention of SCIENCE.md 1.1. The engines go through the method
protocol (``heavy_ball.HeavyBallFamily``, stacked over runs); this scalar form is a second, independent
statement of the same recurrence that the tests hold the protocol to.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor


def lookahead_point(x: Tensor, x_prev: Tensor, a: float) -> Tensor:
    """The point where the gradient is taken: ``x + a (x - x_prev)``."""
    return x if a == 0.0 else x + a * (x - x_prev)


def momentum_update(x: Tensor, x_prev: Tensor, grad: Tensor, step_size: float, lam: float) -> tuple[Tensor, Tensor]:
    """One step given the gradient already evaluated at the look-ahead point."""
    return x + lam * (x - x_prev) - step_size * grad, x


def momentum_step(
    x: Tensor, x_prev: Tensor, grad_fn: Callable[[Tensor], Tensor], step_size: float, lam: float, a: float
) -> tuple[Tensor, Tensor]:
    """``(x_{k+1}, x_k)`` from ``(x_k, x_{k-1})``; ``grad_fn`` maps a point to the gradient there."""
    return momentum_update(x, x_prev, grad_fn(lookahead_point(x, x_prev, a)), step_size, lam)


def velocity(x: Tensor, x_prev: Tensor, step_size: float) -> Tensor:
    """``m_k = (x_k - x_{k-1}) / h`` (``h`` the step size)."""
    return (x - x_prev) / step_size
