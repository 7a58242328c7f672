"""LMS: linear least squares on a finite training set built so that the input covariance ``H`` and the noise
variance ``s2`` hold exactly on it (SCIENCE.md 2), so the late-time values of annealed on-line learning are exact.

``f(w) = 1/(2N) sum_i (x_i^T w - y_i)^2``, ``y_i = x_i^T w* + r_i``. The training set is every pair of ``n_inputs``
input points and ``n_noise`` noise values: the inputs are whitened and scaled so that their second moment is
exactly ``H = Q diag(eigenvalues) Q^T`` (``Q`` a random rotation, or the identity), and the noise values come in
``+-`` pairs scaled to mean square ``s2``. On that set, with samples drawn uniformly with replacement,
``E[x x^T] = H``, ``E[r x] = 0`` (so ``w*`` is the exact minimiser) and the per-sample gradient covariance at ``w*``
is ``S = E[r^2 x x^T] = s2 H``. A sample's Hessian is ``x x^T``: ``extra["sample_inputs"]`` holds the distinct inputs,
each drawn equally often. The seed sets only the start point ``w* + start_distance * u`` (``u`` a random unit
vector), so every seed of one data set shares the instance and the seeds are the Monte Carlo's runs.
"""
from __future__ import annotations

import torch

from .base import Problem
from .regression import least_squares_grad, least_squares_hvp, least_squares_loss


def _whitened(n: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    eig, vec = torch.linalg.eigh(z.T @ z / n)
    return z @ (vec / eig.sqrt()) @ vec.T  # second moment exactly I


def make_lms(*, seed: int = 0, eigenvalues: list[float] = (1.0, 0.5, 0.2), noise_variance: float = 1.0,
             n_inputs: int = 64, n_noise: int = 4, rotate: bool = True, start_distance: float = 1.0,
             data_seed: int = 0) -> Problem:
    eigenvalues = [float(v) for v in eigenvalues]
    if not eigenvalues or min(eigenvalues) <= 0.0:
        raise ValueError(f"lms: eigenvalues must be a non-empty list of positive numbers, got {eigenvalues}")
    dim = len(eigenvalues)
    if n_inputs < dim:
        raise ValueError(f"lms: n_inputs must be >= the number of eigenvalues ({dim}), got {n_inputs}")
    if n_noise < 2 or n_noise % 2:
        raise ValueError(f"lms: n_noise must be an even number >= 2, got {n_noise}")
    if noise_variance < 0.0:
        raise ValueError(f"lms: noise_variance must be >= 0, got {noise_variance}")
    if start_distance < 0.0:
        raise ValueError(f"lms: start_distance must be >= 0, got {start_distance}")
    gen = torch.Generator().manual_seed(4000 + data_seed)
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))[0] if rotate \
        else torch.eye(dim, dtype=torch.float64)
    hessian = (q * lam) @ q.T
    inputs = _whitened(n_inputs, dim, gen) * lam.sqrt() @ q.T  # second moment exactly H
    half = torch.randn(n_noise // 2, generator=gen, dtype=torch.float64)
    noise = torch.cat([half, -half])
    noise = noise * (noise_variance / noise.pow(2).mean()).sqrt() if noise_variance > 0 else torch.zeros_like(noise)
    w_star = torch.randn(dim, generator=gen, dtype=torch.float64)
    xs = inputs.repeat_interleave(n_noise, dim=0)
    ys = xs @ w_star + noise.repeat(n_inputs)
    u = torch.randn(dim, generator=torch.Generator().manual_seed(5000 + seed), dtype=torch.float64)
    x0 = w_star + start_distance * u / torch.linalg.vector_norm(u)

    return Problem(
        name="lms", options=dict(seed=seed, eigenvalues=eigenvalues, noise_variance=noise_variance, n_inputs=n_inputs,
                                 n_noise=n_noise, rotate=rotate, start_distance=start_distance, data_seed=data_seed),
        x0=x0, loss=least_squares_loss, grad=least_squares_grad, hessian_vector=least_squares_hvp, train_data=(xs, ys), hessian=hessian,
        minimiser=w_star, seed_sets_start_only=True, vectorised=True,
        extra=dict(eigenvalues=lam, noise_variance=float(noise_variance),
                   gradient_covariance=noise_variance * hessian, sample_inputs=inputs),
    )
