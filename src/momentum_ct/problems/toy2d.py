"""A non-convex 2-D loss: a double well in ``u`` coupled to a curved valley in ``v``.

``f(u, v) = (u^2 - 1)^2 / 4 + (v - u^2 / 2)^2``: minima at ``(+-1, 1/2)``, a saddle at the
origin, negative curvature for ``|u| < 1/sqrt(3)``. Small enough for phase-plane pictures.
"""
from __future__ import annotations

import torch

from .base import Problem


def toy2d_loss(x, data=()):
    u, v = x[..., 0], x[..., 1]
    return 0.25 * (u**2 - 1.0) ** 2 + (v - 0.5 * u**2) ** 2


def toy2d_grad(x, data=()):
    u, v = x[..., 0], x[..., 1]
    r = v - 0.5 * u**2
    return torch.stack([u * (u**2 - 1.0) - 2.0 * u * r, 2.0 * r], dim=-1)


def toy2d_point_grad(x, out):
    """``toy2d_grad`` at one point into ``out``, the same operations in the same order (compiled by numba)."""
    u, v = x[0], x[1]
    r = v - 0.5 * u**2
    out[0] = u * (u**2 - 1.0) - 2.0 * u * r
    out[1] = 2.0 * r


def toy2d_hvp(x, w, data=()):
    """Hessian ``[[6u^2 - 2v - 1, -2u], [-2u, 2]]`` at ``x = (u, v)`` applied to ``w``."""
    u, v = x[..., 0], x[..., 1]
    a, b = w[..., 0], w[..., 1]
    return torch.stack([(6.0 * u**2 - 2.0 * v - 1.0) * a - 2.0 * u * b, -2.0 * u * a + 2.0 * b], dim=-1)


def make_toy2d(*, seed: int = 0, start: tuple[float, float] = (0.3, 1.5), jitter: float = 0.05) -> Problem:
    if len(start) != 2:
        raise ValueError(f"toy2d: start must have two coordinates, got {start}")
    if jitter < 0:
        raise ValueError(f"toy2d: jitter must be >= 0, got {jitter}")
    gen = torch.Generator().manual_seed(2000 + seed)
    x0 = torch.tensor(start, dtype=torch.float64) + jitter * torch.randn(2, generator=gen, dtype=torch.float64)
    return Problem(
        name="toy2d", options=dict(seed=seed, start=list(start), jitter=jitter), x0=x0, loss=toy2d_loss, grad=toy2d_grad,
        hessian_vector=toy2d_hvp, point_grad=toy2d_point_grad,
        minimiser=torch.tensor([1.0, 0.5], dtype=torch.float64), seed_sets_start_only=True, vectorised=True,
    )
