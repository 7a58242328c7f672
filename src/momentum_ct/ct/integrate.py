"""ODE integration through torchdiffeq, in float64, with tolerances that travel with the result."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch

# scipy's solvers reached through torchdiffeq's ``scipy_solver`` method
STIFF_SOLVERS = ("LSODA", "BDF", "Radau")


@dataclass(frozen=True)
class OdeOptions:
    """Solver and tolerances. ``method`` serves every model; ``stiff_solver`` only the singularly perturbed
    ones (K2's ``alpha x'' + x' = ...`` with ``alpha = O(h)``), where an explicit method is held to steps of
    about ``alpha`` for the whole horizon."""

    method: str = "dopri5"
    rtol: float = 1e-10
    atol: float = 1e-12
    stiff_solver: str = "LSODA"

    def as_dict(self) -> dict:
        return asdict(self)

    def stiff(self) -> "OdeOptions":
        """The same tolerances with torchdiffeq's ``scipy_solver`` running ``stiff_solver``."""
        if self.stiff_solver not in STIFF_SOLVERS:
            raise ValueError(f"unknown stiff_solver {self.stiff_solver!r}; valid: {', '.join(STIFF_SOLVERS)}")
        return replace(self, method="scipy_solver")


def integrate(rhs: Callable, y0, times: np.ndarray, options: OdeOptions = OdeOptions()):
    """Solve ``y' = rhs(t, y)`` from ``y(0) = y0`` and return ``y`` at ``times`` (any order, repeats allowed).

    ``y0`` is a tensor or a tuple of tensors (second-order systems); the result has the same
    structure with a leading time axis, one entry per element of ``times``.
    """
    from torchdiffeq import odeint  # imported here: it imports scipy, which the workflow's parse never needs

    times = np.asarray(times, dtype=np.float64)
    grid, inverse = np.unique(np.concatenate([[0.0], times]), return_inverse=True)
    extra = {}
    if options.method == "scipy_solver":
        extra["options"] = {"solver": options.stiff_solver}
    with warnings.catch_warnings():
        # torchdiffeq hands scipy a min_step that LSODA/BDF/Radau ignore, and scipy warns about it on every call
        warnings.filterwarnings("ignore", message="The following arguments have no effect")
        sol = odeint(rhs, y0, torch.tensor(grid, dtype=torch.float64), method=options.method,
                     rtol=options.rtol, atol=options.atol, **extra)
    index = torch.as_tensor(inverse[1:])
    if isinstance(sol, tuple):
        return tuple(s[index] for s in sol)
    return sol[index]
