"""Tiny problems with exact answers, shared by the tests.

Everything here is closed form (no time stepping, no iteration of the recurrence), so a test that
compares the package against it compares two independent computations:

- ``quadratic_flow``: the gradient flow ``dx/dt = -scale A (x - x*)`` of a quadratic,
  ``x(t) = x* + Q exp(-scale t diag(eig)) Q^T (x0 - x*)``.
- ``quadratic_recurrence``: the iterates of ``x_{k+1} = x_k + lam (x_k - x_{k-1}) - h grad f(x_k + a (x_k - x_{k-1}))``
  with ``x_{-1} = x_0`` on a quadratic. In the Hessian eigenbasis each mode ``e = q_i^T (x - x*)`` obeys
  the two-term linear recurrence ``e_{k+1} = p e_k - r e_{k-1}`` with
  ``p = 1 + lam - h mu (1 + a)`` and ``r = lam - h mu a`` (``mu`` the eigenvalue), solved as
  ``(e_k, e_{k-1}) = C^k (e_0, e_0)`` with the companion matrix ``C = [[p, -r], [1, 0]]``.
- ``mode_by_roots``: the same mode written with the characteristic roots, ``e_k = A z1^k + B z2^k``,
  an independent check of the companion-matrix powers.
"""
from __future__ import annotations

import numpy as np
import torch

from momentum_ct.problems import Problem, make_problem

QUADRATIC_OPTIONS = dict(dim=5, condition=8.0, lipschitz=2.0)


def small_quadratic(seed: int = 0, **options) -> Problem:
    """A 5-D quadratic with eigenvalues log-spaced in [0.25, 2]."""
    return make_problem("quadratic", seed=seed, **(QUADRATIC_OPTIONS | options))


def eigen(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues, eigenvectors)`` of the quadratic's Hessian, computed here (not taken from the problem)."""
    eig, vec = np.linalg.eigh(problem.hessian.numpy())
    return eig, vec


def quadratic_flow(problem: Problem, times, scale: float = 1.0) -> np.ndarray:
    """Exact solution of ``dx/dt = -scale grad f(x)``, ``x(0) = x0``, at ``times`` (rows)."""
    eig, vec = eigen(problem)
    x_star, x0 = problem.minimiser.numpy(), problem.x0.numpy()
    e0 = vec.T @ (x0 - x_star)
    times = np.asarray(times, dtype=np.float64)
    modes = np.exp(-scale * np.outer(times, eig)) * e0
    return x_star + modes @ vec.T


def companion_power(p: float, r: float, k: int) -> np.ndarray:
    """``C^k`` for ``C = [[p, -r], [1, 0]]`` by repeated squaring (exact to round-off, no recurrence loop)."""
    return np.linalg.matrix_power(np.array([[p, -r], [1.0, 0.0]], dtype=np.float64), int(k))


def quadratic_recurrence(problem: Problem, steps, *, h: float, lam: float, a: float) -> np.ndarray:
    """``x_k`` of the momentum recurrence on a quadratic at each ``k`` in ``steps`` (rows)."""
    eig, vec = eigen(problem)
    x_star, x0 = problem.minimiser.numpy(), problem.x0.numpy()
    e0 = vec.T @ (x0 - x_star)
    out = []
    for k in steps:
        e_k = np.empty_like(e0)
        for i, mu in enumerate(eig):
            power = companion_power(1.0 + lam - h * mu * (1.0 + a), lam - h * mu * a, k)
            e_k[i] = (power[0, 0] + power[0, 1]) * e0[i]  # (e_k, e_{k-1}) = C^k (e_0, e_0)
        out.append(x_star + vec @ e_k)
    return np.array(out)


def characteristic_roots(mu: float, *, h: float, lam: float, a: float) -> np.ndarray:
    """Roots of ``z^2 - p z + r`` for one mode; their moduli are the per-step contraction factors."""
    p, r = 1.0 + lam - h * mu * (1.0 + a), lam - h * mu * a
    return np.roots([1.0, -p, r]).astype(np.complex128)


def mode_by_roots(mu: float, k: int, *, h: float, lam: float, a: float) -> float:
    """``e_k / e_0`` for one mode from the characteristic roots (distinct, non-zero roots only).

    ``e_k = A z1^k + B z2^k`` with ``A + B = 1`` (``e_0``) and ``A / z1 + B / z2 = 1`` (``e_{-1} = e_0``).
    """
    z1, z2 = characteristic_roots(mu, h=h, lam=lam, a=a)
    if abs(z1 - z2) < 1e-6 or min(abs(z1), abs(z2)) < 1e-6:
        raise ValueError("mode_by_roots needs distinct, non-zero roots")
    coef = np.linalg.solve(np.array([[1.0, 1.0], [1.0 / z1, 1.0 / z2]]), np.array([1.0, 1.0], dtype=np.complex128))
    value = coef[0] * z1**k + coef[1] * z2**k
    return float(value.real)


def as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)
