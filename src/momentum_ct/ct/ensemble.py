"""Continuous-time limits of ensemble Kalman inversion (SCIENCE.md 3), as right-hand sides for ``integrate``.

For ``h -> 0`` (no perturbed observations, fixed step, full data) EKI's ensemble ``U`` (J x dim) follows

    du_j/dt = -C_uG Gamma^{-1} (G(u_j) - y)                       (``ensemble_flow``, no derivative of G)

with ``Gamma = gamma I``; for linear ``G`` this is exactly the gradient flow of ``Phi(u) = |y - G(u)|^2_Gamma / 2``
preconditioned by the ensemble covariance, ``du_j/dt = -C_uu grad Phi(u_j)`` (``preconditioned_gradient_flow``,
its gradient from autograd). For nonlinear ``G`` the two differ by the curvature of ``G`` over the ensemble.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..problems import Problem


def ensemble_flow(problem: Problem, gamma: float) -> Callable[[Tensor, Tensor], Tensor]:
    """``rhs(t, U)``: every member moved by ``-C_uG Gamma^-1 (G(u_j) - y)`` on the full training data."""
    data = problem.train_data

    def rhs(t, u):
        out, y = problem.forward_map(u, data, False)
        du, dg = u - u.mean(0), out - out.mean(0)
        # C_uG Gamma^-1 (G_j - y) = dU^T dG (G_j - y) / (J gamma): J x J products, as the method forms them
        return -((out - y) @ dg.T) @ du / (u.shape[0] * gamma)

    return rhs


def misfit(problem: Problem, gamma: float) -> Callable[[Tensor], Tensor]:
    """``Phi(u) = |y - G(u)|^2 / (2 gamma)`` on the full training data, for one point."""
    data = problem.train_data

    def phi(u):
        out, y = problem.forward_map(u.unsqueeze(0), data, False)
        return 0.5 * ((out[0] - y) ** 2).sum() / gamma

    return phi


def preconditioned_gradient_flow(problem: Problem, gamma: float) -> Callable[[Tensor, Tensor], Tensor]:
    """``rhs(t, U)``: every member moved by ``-C_uu grad Phi(u_j)``, the gradient by ``torch.func``."""
    grad = torch.func.vmap(torch.func.grad(misfit(problem, gamma)))

    def rhs(t, u):
        du = u - u.mean(0)
        return -grad(u) @ (du.T @ du / u.shape[0])

    return rhs


def stiffness(problem: Problem, gamma: float, u: Tensor) -> float:
    """Largest eigenvalue of ``S = dG Gamma^-1 dG^T / J`` at the ensemble ``u``: the fastest rate of the
    ensemble flow (for linear ``G`` the largest eigenvalue of ``C_uu grad^2 Phi``), so ``h S`` decides whether
    an ``h`` is in the asymptotic regime."""
    out, _ = problem.forward_map(u, problem.train_data, False)
    dg = out - out.mean(0)
    return float(torch.linalg.eigvalsh(dg @ dg.T / (u.shape[0] * gamma))[-1])


def nonlinearity(problem: Problem, u: Tensor) -> float:
    """``max_j |G(u_j) - G(m) - G'(m)(u_j - m)| / |G(u_j) - G(m)|`` about the ensemble mean ``m``: round-off for a
    linear (affine) ``G``; decides whether the two flows above must coincide."""
    data = problem.train_data
    g = lambda x: problem.forward_map(x.unsqueeze(0), data, False)[0][0]  # noqa: E731
    m = u.mean(0)
    g_m = g(m)
    worst = 0.0
    for u_j in u:
        lin = torch.func.jvp(g, (m,), (u_j - m,))[1]
        change = torch.linalg.vector_norm(g(u_j) - g_m)
        if change > 0:
            worst = max(worst, float(torch.linalg.vector_norm(g(u_j) - g_m - lin) / change))
    return worst
