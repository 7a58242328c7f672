"""Batch nonlinear conjugate gradient, the paper's batch baseline, through scipy (Polak-Ribiere CG with a Wolfe
line search, ``scipy.optimize.minimize(method="CG")``), outside the stacked engine: one deterministic run on the
full training loss. Every evaluation of the loss and its gradient reads the whole training set, so its cost in
samples is the number of evaluations times ``n_train``: the clock on which it is compared with on-line methods."""
from __future__ import annotations

import numpy as np
import torch

from ..problems import Problem

# scipy is imported inside the functions that use it: the workflow imports this module on every parse (the
# registries), and importing scipy there would cost every job about a second.


def batch_cg(problem: Problem, max_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, squared_error)``: after each CG iteration, the samples read so far and ``|w - w*|^2``, from the
    start point until ``max_samples`` samples have been read or CG stops (converged to round-off)."""
    from scipy.optimize import minimize
    n = max(problem.n_train, 1)
    w_star = problem.minimiser.numpy()
    evaluations = [0]

    def fun(w):
        evaluations[0] += 1
        x = torch.as_tensor(w, dtype=torch.float64)
        return float(problem.full_loss(x)), problem.full_grad(x).numpy()

    samples, errors = [0], [float(np.sum((problem.x0.numpy() - w_star) ** 2))]

    def record(w):
        samples.append(evaluations[0] * n)
        errors.append(float(np.sum((w - w_star) ** 2)))
        if samples[-1] >= max_samples:
            raise StopIteration  # scipy >= 1.11 ends the minimisation here

    minimize(fun, problem.x0.numpy(), jac=True, method="CG", callback=record,
             options=dict(maxiter=max(1, max_samples // n), gtol=0.0))
    return np.asarray(samples), np.asarray(errors)
