"""An example plug-in: a problem and a method of the user's own, judged by the unchanged pipeline.

- Problem ``moons_logistic``: L2-regularised logistic regression with cubic features on scikit-learn's
  two moons (generated, nothing downloaded). Smooth and strongly convex, so K1-K3 apply.
- Method ``half_nesterov``: the heavy-ball family with look-ahead ``a = lam / 2``, halfway between heavy
  ball (``a = 0``) and Nesterov (``a = lam``); K1-K3's predictions use the general-``a`` coefficients.

The config beside this file names it under ``plugins``; editing this file reruns the jobs that use it.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import make_moons

from momentum_ct.optim import HeavyBallFamily, register_method
from momentum_ct.problems import Problem, register_problem


def _features(points: np.ndarray) -> np.ndarray:
    """Monomials of degree at most 3 in the two coordinates, without the constant (the bias is separate)."""
    u, v = points[:, 0], points[:, 1]
    return np.stack([u, v, u * u, u * v, v * v, u ** 3, u * u * v, u * v * v, v ** 3], axis=1)


def logistic_loss(x, data, *, l2: float):
    """Mean logistic loss of labels in {-1, 1}, plus ``l2/2 |w|^2``; ``x = (w, bias)``."""
    inputs, labels = data
    margins = labels * (inputs @ x[..., :-1, None])[..., 0] + labels * x[..., -1:]
    return torch.nn.functional.softplus(-margins).mean(-1) + 0.5 * l2 * (x[..., :-1] ** 2).sum(-1)


def make_moons_logistic(*, seed: int = 0, n_samples: int = 200, noise: float = 0.2, l2: float = 0.01) -> Problem:
    if n_samples < 10:
        raise ValueError(f"moons_logistic: n_samples must be at least 10, got {n_samples}")
    if l2 <= 0:
        raise ValueError(f"moons_logistic: l2 must be positive (strong convexity), got {l2}")
    points, labels = make_moons(n_samples=n_samples, noise=noise, random_state=0)
    inputs = torch.tensor(_features(points), dtype=torch.float64)
    targets = torch.tensor(2.0 * labels - 1.0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x0 = 0.5 * torch.randn(inputs.shape[1] + 1, generator=gen, dtype=torch.float64)
    return Problem(name="moons_logistic", options=dict(seed=seed, n_samples=n_samples, noise=noise, l2=l2), x0=x0,
                   loss=functools.partial(logistic_loss, l2=l2), train_data=(inputs, targets),
                   seed_sets_start_only=True)


register_problem("moons_logistic", make_moons_logistic)
register_method(HeavyBallFamily("half_nesterov", "momentum lam with look-ahead a = lam / 2",
                                lambda h, lam, own: (h, lam, 0.5 * lam)))
