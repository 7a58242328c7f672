"""Ill-conditioned quadratic ``f(x) = 1/2 (x - x*)^T A (x - x*)`` with known spectrum.

Eigenvalues are log-spaced in ``[L / condition, L]`` and the eigenbasis is a seeded random
rotation, so every flow has a closed form (``expm`` of ``A``) to test against.
"""
from __future__ import annotations

import torch

from .base import Problem


def make_quadratic(*, seed: int = 0, dim: int = 10, condition: float = 10.0, lipschitz: float = 1.0) -> Problem:
    if dim < 1:
        raise ValueError(f"quadratic: dim must be >= 1, got {dim}")
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

    def loss(x, batch=()):
        d = x - x_star
        return 0.5 * d @ (a @ d)

    def grad(x, batch=()):
        return a @ (x - x_star)

    return Problem(
        name="quadratic",
        options=dict(seed=seed, dim=dim, condition=condition, lipschitz=lipschitz),
        x0=x0, loss=loss, grad=grad, hessian=a, minimiser=x_star,
        extra=dict(eigenvalues=eig, eigenvectors=q),
    )
