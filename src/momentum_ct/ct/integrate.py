"""ODE integration through torchdiffeq, in float64, with tolerances that travel with the result."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch

# scipy's solvers reached through torchdiffeq's ``scipy_solver`` method
STIFF_SOLVERS = ("LSODA", "BDF", "Radau")
# Fixed-grid methods step from one output time to the next; the others choose their own steps.
FIXED_GRID = ("rk4", "euler", "midpoint")


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

    @property
    def adaptive(self) -> bool:
        """Whether the solver's steps are independent of the output times (values between steps come from its
        interpolant), so that a solve at more times gives the same values at the times it shares."""
        return self.method not in FIXED_GRID

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


def member_norm(error: torch.Tensor) -> torch.Tensor:
    """Error norm of a stack of systems (members along the first axis): the largest of the members' RMS norms,
    so that every member is held to the tolerance it would get alone (an RMS over the whole stack would let
    one member's error hide among the others)."""
    return error.pow(2).reshape(error.shape[0], -1).mean(1).max().sqrt()


def integrate_stack(rhs: Callable, y0: torch.Tensor, times: list[np.ndarray],
                    options: OdeOptions = OdeOptions()) -> list[torch.Tensor]:
    """Solve a stack of autonomous systems ``Y' = rhs(Y)`` (``Y``: members x state) in one adaptive solve.

    Member ``b`` starts from ``y0[b]`` at its own time 0 and is returned at its own ``times[b]`` (one array
    per member, rows x state), so members with different start times and output grids share the solve; its
    steps are as small as the most demanding member needs (``member_norm``). One solve instead of one per
    member: the fixed cost of each step is paid once for the whole stack.
    """
    from torchdiffeq import odeint  # imported here, as in ``integrate``

    if options.method == "scipy_solver":
        raise ValueError("integrate_stack needs one of torchdiffeq's own solvers (its error norm is per member)")
    arrays = [np.asarray(t, dtype=np.float64) for t in times]
    grid = np.unique(np.concatenate([[0.0], *arrays]))
    sol = odeint(lambda t, y: rhs(y), y0, torch.tensor(grid, dtype=torch.float64), method=options.method,
                 rtol=options.rtol, atol=options.atol, options=dict(norm=member_norm))
    return [sol[torch.as_tensor(np.searchsorted(grid, t)), b] for b, t in enumerate(arrays)]
