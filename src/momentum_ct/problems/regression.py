"""Least-squares linear regression on synthetic Gaussian data (a linear / LMS network).

``f(w) = 1/(2n) |X w - y|^2`` with ``y = X w* + noise``; its Hessian ``X^T X / n`` is exact.
"""
from __future__ import annotations

import torch

from .base import Problem


# Data are generated in memory: 1e8 float64 entries are 800 MB.
MAX_ENTRIES = 10**8


def least_squares_loss(w, data):
    """``|X w - y|^2 / (2n)`` on the data's samples ``(X, y)``."""
    xs, ys = data
    return 0.5 * torch.mean((xs @ w - ys) ** 2)


def least_squares_grad(w, data):
    """Its gradient ``X^T (X w - y) / n``."""
    xs, ys = data
    return xs.T @ (xs @ w - ys) / xs.shape[0]


def linear_forward_map(ws, data, per_run: bool = False):
    """``G(w) = X w`` on the data's samples for a stack of points, and ``y`` the targets: with noise covariance
    ``Gamma = n I`` the misfit ``|y - G(w)|^2_Gamma / 2`` is the loss ``f``."""
    xs, ys = data
    out = torch.bmm(xs, ws.unsqueeze(2)).squeeze(2) if per_run else ws @ xs.T
    return out, ys


def make_regression(*, seed: int = 0, n_samples: int = 200, dim: int = 10, noise: float = 0.1,
                    n_test: int = 100) -> Problem:
    if max(n_samples, n_test) * dim > MAX_ENTRIES:
        raise ValueError(f"regression: n_samples x dim and n_test x dim must stay below {MAX_ENTRIES:.0e}, "
                         f"got {n_samples} x {dim} and {n_test} x {dim}")
    for key, val in dict(n_samples=n_samples, dim=dim, n_test=n_test).items():
        if val < 1:
            raise ValueError(f"regression: {key} must be >= 1, got {val}")
    if noise < 0:
        raise ValueError(f"regression: noise must be >= 0, got {noise}")
    gen = torch.Generator().manual_seed(3000 + seed)
    scales = torch.logspace(0.0, -1.0, dim, dtype=torch.float64)  # anisotropic inputs
    w_star = torch.randn(dim, generator=gen, dtype=torch.float64)

    def sample(n):
        xs = torch.randn(n, dim, generator=gen, dtype=torch.float64) * scales
        return xs, xs @ w_star + noise * torch.randn(n, generator=gen, dtype=torch.float64)

    train, test = sample(n_samples), sample(n_test)

    xs = train[0]
    return Problem(
        name="regression", options=dict(seed=seed, n_samples=n_samples, dim=dim, noise=noise, n_test=n_test),
        x0=torch.zeros(dim, dtype=torch.float64), loss=least_squares_loss, grad=least_squares_grad, train_data=train, test_data=test,
        hessian=xs.T @ xs / n_samples, minimiser=torch.linalg.lstsq(xs, train[1]).solution,
        forward_map=linear_forward_map,
    )
