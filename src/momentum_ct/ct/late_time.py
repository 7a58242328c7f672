"""Late-time values of annealed on-line learning (SCIENCE.md 2): ``t E[v v^T] -> C`` near a non-degenerate minimum
with Hessian ``H`` and per-sample gradient covariance ``S``.

- scalar annealing ``mu / t`` (needs ``mu lam_min(H) > 1/2``): ``(mu H - I/2) C + C (mu H - I/2) = mu^2 S``;
  for LMS (``S = s2 H``) ``tr C = s2 sum_i mu^2 lam_i / (2 mu lam_i - 1)``;
- the optimal matrix rate ``H^{-1} / t``: ``C = H^{-1} S H^{-1}``, for LMS ``tr C = s2 tr(H^{-1})``;
- below ``mu_crit = 1 / (2 lam_min)``: ``E|v|^2`` decays like ``t^(-2 mu lam_min)``, slower than ``1/t``.
Constant momentum ``beta`` with ``mu0`` acts at late times as ``mu_eff = mu0 / (1 - beta)``.
"""
from __future__ import annotations

import math

import numpy as np

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.


def effective_rate(mu0: float, beta: float = 0.0) -> float:
    return mu0 / (1.0 - beta)


def critical_rate(eigenvalues) -> float:
    """``mu_crit = 1 / (2 lam_min)``: below it ``E|v|^2`` decays slower than ``1/t``."""
    return 0.5 / float(np.min(eigenvalues))


def lms_scalar_limit(eigenvalues, noise_variance: float, mu: float) -> float:
    """``lim t E|v|^2 = s2 sum_i mu^2 lam_i / (2 mu lam_i - 1)`` for annealing ``mu / t``; ``inf`` at or below
    ``mu_crit`` (the decay is then slower than ``1/t``)."""
    lam = np.asarray(eigenvalues, dtype=float)
    if mu * lam.min() <= 0.5:
        return math.inf
    return float(noise_variance * np.sum(mu**2 * lam / (2.0 * mu * lam - 1.0)))


def lms_optimal_limit(eigenvalues, noise_variance: float) -> float:
    """``lim t E|v|^2 = s2 tr(H^{-1})`` for the optimal matrix rate ``H^{-1} / t``."""
    return float(noise_variance * np.sum(1.0 / np.asarray(eigenvalues, dtype=float)))


def scalar_limit_covariance(hessian: np.ndarray, covariance: np.ndarray, mu: float) -> np.ndarray:
    """``C`` solving ``(mu H - I/2) C + C (mu H - I/2) = mu^2 S`` (annealing ``mu / t``; needs ``mu lam_min > 1/2``)."""
    from scipy.linalg import solve_continuous_lyapunov
    hessian = np.asarray(hessian, dtype=float)
    a = mu * hessian - 0.5 * np.eye(hessian.shape[0])
    if np.linalg.eigvalsh(a).min() <= 0.0:
        raise ValueError(f"mu = {mu} is at or below mu_crit = {critical_rate(np.linalg.eigvalsh(hessian))}: "
                         f"t E|v|^2 has no finite limit")
    return solve_continuous_lyapunov(a, mu**2 * np.asarray(covariance, dtype=float))


def optimal_limit_covariance(hessian: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """``C = H^{-1} S H^{-1}`` (the optimal matrix rate ``H^{-1} / t``)."""
    h_inv_s = np.linalg.solve(hessian, covariance)
    return np.linalg.solve(hessian, h_inv_s.T).T


def subcritical_exponent(eigenvalues, mu: float) -> float:
    """Exponent ``p`` of ``E|v|^2 ~ t^(-p)``: ``1`` above ``mu_crit``, ``2 mu lam_min`` below it."""
    return min(1.0, 2.0 * mu * float(np.min(eigenvalues)))
