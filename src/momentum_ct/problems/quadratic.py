"""Ill-conditioned quadratic ``f(x) = 1/2 (x - x*)^T A (x - x*)`` with known spectrum.

Eigenvalues are log-spaced in ``[L / condition, L]`` and the eigenbasis is a seeded random
rotation, so every flow has a closed form (``expm`` of ``A``) to test against.
"""
from __future__ import annotations

from functools import partial

import torch

from .base import Problem


# The Hessian is stored dense: 4096^2 float64 is 128 MB, and a dry run must never try terabytes.
MAX_DIM = 4096


def quadratic_loss(x, data=(), *, a, x_star):
    """``1/2 (x - x*)^T A (x - x*)``; ``x`` one point or a stack of points (rows)."""
    d = x - x_star
    if d.dim() == 1:
        return 0.5 * d @ (a @ d)
    return 0.5 * (d * (d @ a)).sum(-1)  # a is exactly symmetric


def quadratic_grad(x, data=(), *, a, x_star):
    """``A (x - x*)``; ``x`` one point or a stack of points (rows)."""
    d = x - x_star
    return a @ d if d.dim() == 1 else d @ a


def make_quadratic(*, seed: int = 0, dim: int = 10, condition: float = 10.0, lipschitz: float = 1.0) -> Problem:
    if not 1 <= dim <= MAX_DIM:
        raise ValueError(f"quadratic: dim must lie in [1, {MAX_DIM}] (its Hessian is a dense dim x dim matrix), "
                         f"got {dim}")
    if condition < 1:
        raise ValueError(f"quadratic: condition must be >= 1, got {condition}")
    if lipschitz <= 0:
        raise ValueError(f"quadratic: lipschitz must be positive, got {lipschitz}")
    gen = torch.Generator().manual_seed(1000 + seed)
    eig = lipschitz * torch.logspace(-torch.log10(torch.tensor(condition, dtype=torch.float64)).item(), 0.0, dim,
                                     dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    a = (q * eig) @ q.T
    a = 0.5 * (a + a.T)
    x_star = torch.randn(dim, generator=gen, dtype=torch.float64)
    x0 = x_star + torch.randn(dim, generator=gen, dtype=torch.float64)

    # bound with partial (not closed over), so Problem.to moves a and x_star with the problem
    return Problem(
        name="quadratic",
        options=dict(seed=seed, dim=dim, condition=condition, lipschitz=lipschitz),
        x0=x0, loss=partial(quadratic_loss, a=a, x_star=x_star), grad=partial(quadratic_grad, a=a, x_star=x_star),
        hessian=a, minimiser=x_star, vectorised=True,
        extra=dict(eigenvalues=eig, eigenvectors=q),
    )
