"""Late-time values of annealed on-line learning (SCIENCE.md 2): ``t E[v v^T] -> C`` near a non-degenerate minimum
with Hessian ``H`` and per-sample gradient covariance ``S``.

- scalar annealing ``mu / t`` (needs ``mu lam_min(H) > 1/2``): ``(mu H - I/2) C + C (mu H - I/2) = mu^2 S``;
  for LMS (``S = s2 H``) ``tr C = s2 sum_i mu^2 lam_i / (2 mu lam_i - 1)``;
- the optimal matrix rate ``H^{-1} / t``: ``C = H^{-1} S H^{-1}``, for LMS ``tr C = s2 tr(H^{-1})``;
- below ``mu_crit = 1 / (2 lam_min)``: ``E|v|^2`` decays like ``t^(-2 mu lam_min)``, slower than ``1/t``.
Constant momentum ``beta`` with ``mu0`` acts at late times as ``mu_eff = mu0 / (1 - beta)``.

Matrix momentum with a one-sample estimate ``A_t`` of ``H`` moves its step ``d_t = w_t - w_{t-1}`` by
``d_{t+1} = (I - mu0 A_t) d_t + mu_t G_t``; once ``mu_t`` is small, the step's second moment stays bounded only
while that random product is mean-square stable (``mean_square_bound``), a stricter bound than the exact-H
``mu0 lam_max < 2``.
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


# The mean-square bound is computed on d^2 x d^2 matrices: only for small dimensions.
MEAN_SQUARE_MAX_DIM = 12


def mean_square_bound(sample_hessians: np.ndarray, tol: float = 1e-10) -> float:
    """The least ``mu0 > 0`` where ``d -> (I - mu0 A) d`` with ``A`` drawn uniformly from ``sample_hessians``
    (``n x d x d``, symmetric) stops being mean-square stable: where the spectral radius of
    ``E[(I - mu0 A) (x) (I - mu0 A)] = I - mu0 (I (x) H + H (x) I) + mu0^2 E[A (x) A]`` reaches 1 (``H = E A``). At
    most ``2/lam_max(H)``, the bound of the exact ``H``; NaN above ``MEAN_SQUARE_MAX_DIM`` dimensions."""
    a = np.asarray(sample_hessians, dtype=float)
    d = a.shape[1]
    if d > MEAN_SQUARE_MAX_DIM:
        return math.nan
    hessian = a.mean(axis=0)
    second = np.einsum("nij,nkl->ikjl", a, a).reshape(d * d, d * d) / len(a)
    first = np.kron(np.eye(d), hessian) + np.kron(hessian, np.eye(d))

    def radius(mu: float) -> float:
        return float(np.abs(np.linalg.eigvalsh(np.eye(d * d) - mu * first + mu * mu * second)).max())

    top = 2.0 / float(np.linalg.eigvalsh(hessian).max())
    # the first crossing of 1 on a grid, then bisection (the radius starts below 1 and is >= 1 at the top)
    grid = np.linspace(0.0, top, 201)[1:]
    high = next((float(mu) for mu in grid if radius(mu) >= 1.0), top)  # round-off may leave the top just below 1
    low = high - grid[0]
    while high - low > tol * high:
        mid = 0.5 * (low + high)
        low, high = (mid, high) if radius(mid) < 1.0 else (low, mid)
    return 0.5 * (low + high)


def subcritical_exponent(eigenvalues, mu: float) -> float:
    """Exponent ``p`` of ``E|v|^2 ~ t^(-p)``: ``1`` above ``mu_crit``, ``2 mu lam_min`` below it."""
    return min(1.0, 2.0 * mu * float(np.min(eigenvalues)))
