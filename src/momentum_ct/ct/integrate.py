"""ODE integration through torchdiffeq, in float64, with tolerances that travel with the result."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torchdiffeq import odeint


@dataclass(frozen=True)
class OdeOptions:
    method: str = "dopri5"
    rtol: float = 1e-10
    atol: float = 1e-12

    def as_dict(self) -> dict:
        return asdict(self)


def integrate(rhs: Callable, y0, times: np.ndarray, options: OdeOptions = OdeOptions()):
    """Solve ``y' = rhs(t, y)`` from ``y(0) = y0`` and return ``y`` at ``times`` (any order, repeats allowed).

    ``y0`` is a tensor or a tuple of tensors (second-order systems); the result has the same
    structure with a leading time axis, one entry per element of ``times``.
    """
    times = np.asarray(times, dtype=np.float64)
    grid, inverse = np.unique(np.concatenate([[0.0], times]), return_inverse=True)
    sol = odeint(rhs, y0, torch.tensor(grid, dtype=torch.float64), method=options.method,
                 rtol=options.rtol, atol=options.atol)
    index = torch.as_tensor(inverse[1:])
    if isinstance(sol, tuple):
        return tuple(s[index] for s in sol)
    return sol[index]
