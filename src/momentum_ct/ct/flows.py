"""Right-hand sides of the first-order continuous-time models (SCIENCE.md 1.2)."""
from __future__ import annotations

from ..problems import Problem
from .modified import gradient


def gradient_flow(problem: Problem, scale: float = 1.0):
    """``dx/dt = -scale * grad f(x)``; ``scale = 1/(1-lam)`` gives K1's time-rescaled flow."""

    def rhs(t, x):
        return -scale * gradient(problem, x)

    return rhs
