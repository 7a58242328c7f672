"""Least-squares linear regression on synthetic Gaussian data (a linear / LMS network).

``f(w) = 1/(2n) |X w - y|^2`` with ``y = X w* + noise``; its Hessian ``X^T X / n`` is exact.
"""
from __future__ import annotations

import torch

from .base import Problem


# Data are generated in memory: 1e8 float64 entries are 800 MB.
MAX_ENTRIES = 10**8


def _residual(w, xs, ys):
    """``X w - y``: one point ``w`` (dim), or a stack (runs x dim) with the data shared by all (``X``: n x dim) or
    per run (runs x n x dim); rows of the stack give rows of the result."""
    if w.dim() == 1:
        return xs @ w - ys
    if xs.dim() == 2:
        return w @ xs.T - ys
    return torch.bmm(xs, w.unsqueeze(2)).squeeze(2) - ys


def least_squares_loss(w, data):
    """``|X w - y|^2 / (2n)`` on the data's samples ``(X, y)``, for one point or a stack (``_residual``)."""
    xs, ys = data
    return 0.5 * torch.mean(_residual(w, xs, ys) ** 2, dim=-1)


def least_squares_grad(w, data):
    """Its gradient ``X^T (X w - y) / n``, for one point or a stack (``_residual``)."""
    xs, ys = data
    r = _residual(w, xs, ys)
    if w.dim() == 1:
        return xs.T @ r / xs.shape[0]
    if xs.dim() == 2:
        return r @ xs / xs.shape[0]
    return torch.bmm(r.unsqueeze(1), xs).squeeze(1) / xs.shape[1]


def least_squares_hvp(w, v, data):
    """The Hessian ``X^T X / n`` applied to ``v``, for one point or a stack (as ``least_squares_grad``, without ``y``)."""
    xs = data[0]
    if v.dim() == 1:
        return xs.T @ (xs @ v) / xs.shape[0]
    if xs.dim() == 2:
        return (v @ xs.T) @ xs / xs.shape[0]
    return torch.bmm(torch.bmm(xs, v.unsqueeze(2)).transpose(1, 2), xs).squeeze(1) / xs.shape[1]


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
