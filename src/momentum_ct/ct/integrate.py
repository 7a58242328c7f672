"""ODE integration through torchdiffeq (stiff systems: scipy's solvers), in float64, with tolerances that travel with
the result."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch

# scipy's stiff solvers (``OdeOptions.stiff``; the method name is torchdiffeq's for them)
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
        """The same tolerances with scipy's ``stiff_solver`` (``solve_ivp``, as torchdiffeq's ``scipy_solver``)."""
        if self.stiff_solver not in STIFF_SOLVERS:
            raise ValueError(f"unknown stiff_solver {self.stiff_solver!r}; valid: {', '.join(STIFF_SOLVERS)}")
        return replace(self, method="scipy_solver")


def integrate(rhs: Callable, y0, times: np.ndarray, options: OdeOptions = OdeOptions()):
    """Solve ``y' = rhs(t, y)`` from ``y(0) = y0`` and return ``y`` at ``times`` (any order, repeats allowed).

    ``y0`` is a tensor or a tuple of tensors (second-order systems); the result has the same
    structure with a leading time axis, one entry per element of ``times``.
    """
    times = np.asarray(times, dtype=np.float64)
    grid, inverse = np.unique(np.concatenate([[0.0], times]), return_inverse=True)
    if options.method == "scipy_solver":
        sol = _scipy_solve(rhs, y0, grid, options)
    else:
        from torchdiffeq import odeint  # imported here: it imports scipy, which the workflow's parse never needs

        sol = odeint(rhs, y0, torch.tensor(grid, dtype=torch.float64), method=options.method,
                     rtol=options.rtol, atol=options.atol)
    index = torch.as_tensor(inverse[1:])
    if isinstance(sol, tuple):
        return tuple(s[index] for s in sol)
    return sol[index]


def _scipy_solve(rhs: Callable, y0, grid: np.ndarray, options: OdeOptions):
    """``scipy.integrate.solve_ivp`` with ``options.stiff_solver`` at ``grid`` (sorted, from 0), called as torchdiffeq's
    ``scipy_solver`` calls it (the same arguments, so the same solution) but handing the right-hand side views of
    scipy's state instead of copies through torchdiffeq's wrappers, which cost more than a small system's
    right-hand side. ``y0`` a tensor or a tuple of tensors; returns the same structure with a leading time axis."""
    from scipy.integrate import solve_ivp

    parts = y0 if isinstance(y0, tuple) else (y0,)
    sizes, shapes = [p.numel() for p in parts], [p.shape for p in parts]

    def unflatten(flat: torch.Tensor):
        """Flat states (the last axis) back into the parts' shapes: views for one state, a time axis for rows."""
        pieces = tuple(piece.reshape(*flat.shape[:-1], *shape)
                       for piece, shape in zip(torch.split(flat, sizes, dim=-1), shapes))
        return pieces if isinstance(y0, tuple) else pieces[0]

    def f(t, y):
        with torch.no_grad():
            out = rhs(t, unflatten(torch.from_numpy(y)))
        out = out if isinstance(out, tuple) else (out,)
        return torch.cat([o.reshape(-1) for o in out]).numpy()

    flat0 = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in parts]).numpy()
    if len(grid) == 1:
        ys = flat0[None]
    else:
        ys = solve_ivp(f, t_span=[grid.min(), grid.max()], y0=flat0, t_eval=grid, method=options.stiff_solver,
                       rtol=options.rtol, atol=options.atol).y.T
    return unflatten(torch.from_numpy(np.ascontiguousarray(ys)))


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
