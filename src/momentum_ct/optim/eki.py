"""Ensemble Kalman inversion (Kovachki & Stuart 2019; SCIENCE.md 3), one implementation of the method protocol.

Learning as the inverse problem ``y = G(u) + noise``, noise covariance ``Gamma = noise * I`` (a scalar
times the identity). An ensemble ``u_1..u_J`` (state ``u``: runs x J x dim, the run axis first) moves by

    u_j <- u_j + h C_uG (h C_GG + Gamma)^{-1} (y + xi_j - G(u_j))

with the ensemble covariances ``C_uG``, ``C_GG``. No derivative of ``G`` is taken: the method asks the
oracle for ``G`` on every member and for the step's observations ``y`` (``FORWARD``; the ask/tell shape
of EnsembleKalmanProcesses.jl), on the engine's data for the step (a mini-batch: online EKI).

The update is formed in the cheaper space. With many outputs (m >= J, a network's outputs on its data),
in the J-space (Woodbury): with centred outputs ``dG`` and members ``dU`` (rows),
``S = dG Gamma^{-1} dG^T / J`` and ``E_ij = <dG_i, Gamma^{-1}(y + xi_j - G(u_j))> / J`` (both J x J),

    U <- U + h E^T (I_J + h S)^{-1} dU,

which equals the update above (``(h C_GG + Gamma)^{-1}`` expanded by Woodbury; ``C_uG = dU^T dG / J``).
Only J x J systems are solved and no dim x dim or outputs x outputs matrix is formed. With ``K = I + h S``,
``E = -(S + c 1^T) + P`` (``c_i = <dG_i, Gamma^{-1}(mean G - y)> / J``, ``P`` the perturbations' share),
and ``h S K^{-1} = I - K^{-1}``, this is

    U <- 1 (mean - h dU^T K^{-1} c)^T + (K^{-1} + h P^T K^{-1}) dU:

no J x J product without perturbations. ``K^{-1} dU`` then comes from two triangular solves with the Cholesky
factor of ``K`` (``2 J^2 dim`` operations, as many as one product with the inverse, and no inverse formed), and
the mean's shift from it (``dU^T K^{-1} c = (K^{-1} dU)^T c``, ``K`` symmetric). With perturbations the inverse
of the factor is formed instead and one J x J by J x dim product applies ``K^{-1} + h P^T K^{-1}``. With fewer
outputs than members (m < J, few labels) and no Tikhonov block, ``(h C_GG + Gamma)`` itself (m x m) is solved.
Both forms give the same increments to round-off. Every increment is a combination of the rows of ``dU``
(``C_uG = dU^T dG / J``), so the ensemble stays in the span of the initial ensemble.

Options (hyperparameters, each validated): ``J``; ``spread`` (initial members ``x0 + spread z``, ``z``
standard normal, drawn from ``ensemble_seed``); ``noise`` (``Gamma = noise I``); ``perturb`` (``s``:
perturbed observations ``xi_j ~ N(0, s Gamma / h)``, fresh each step; ``s = 1`` is ES-MDA with equal
inflation ``1/h``, which maps a linear-Gaussian prior ensemble to the posterior at ``T = n h = 1``);
``adaptive`` (``a > 0``: the step ``h_n = a / (|D_n|_F + eps)``, ``D_ij = <dG_i, Gamma^{-1}(G(u_j) - y)> / J``
the J x J misfit matrix without perturbations, as EnsembleKalmanProcesses.jl's stable scheduler with
numerator ``a``; the run's ``h`` then sets only its number of steps, ``t_max / h``, so that EKI and SGD of
one experiment make the same number of steps on the same data while each has its own step rule); ``tikhonov`` (``lambda >= 0``: ``G`` augmented with the parameters, ``y`` with the prior
mean ``x0``, ``Gamma`` with ``I / lambda``; 0 is plain EKI: the augmented block enters through
``Gamma^{-1}`` only, so it is never materialised); ``localise`` (1: for a problem whose parameters and outputs
split into independent blocks, ``Problem.blocks``, each block is updated with its own covariances and all J
members, so the cross-block covariances, zero in the model, are not estimated from J samples; each block then
stays in the span of its own initial members, so J above a block's size, not the whole dimension, reaches its
exact answer; fixed steps only).

Records ``x`` = the ensemble mean (metrics are evaluated there) and ``m`` = its increment over the step
used. A run whose J x J system is not positive definite (non-finite outputs) gets a non-finite mean, so the
engine records it as diverged.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .protocol import FORWARD, Hyperparameter, Method, Oracle, State

# Beyond this an ensemble of the digits MLP (1,210 parameters) alone is gigabytes: a typo, not a choice.
MAX_ENSEMBLE = 10**5


def _integer_in(low: int, high: int):
    return lambda v: float(v).is_integer() and low <= v <= high


HYPERPARAMETERS = (
    Hyperparameter("J", "ensemble size", _integer_in(2, MAX_ENSEMBLE), f"be an integer in [2, {MAX_ENSEMBLE}]", 100),
    Hyperparameter("spread", "standard deviation of the initial members about x0", lambda v: v > 0,
                   "be positive", 0.1),
    Hyperparameter("noise", "observation noise variance gamma (Gamma = gamma I)", lambda v: v > 0,
                   "be positive", 1.0),
    Hyperparameter("perturb", "perturbed observations xi_j ~ N(0, perturb Gamma / h); 0: none", lambda v: v >= 0,
                   "be >= 0", 0.0),
    Hyperparameter("adaptive", "a > 0: step a / (|D_n|_F + eps) (h then sets only the number of steps); 0: fixed "
                   "step h", lambda v: v >= 0, "be >= 0", 0.0),
    Hyperparameter("eps", "regulariser of the adaptive step", lambda v: v > 0, "be positive", 1e-8),
    Hyperparameter("tikhonov", "weight lambda of the Tikhonov block (u observed as x0 with covariance I/lambda); "
                   "0: none", lambda v: v >= 0, "be >= 0", 0.0),
    Hyperparameter("localise", "1: covariances localised to the problem's independent blocks (Problem.blocks), one "
                   "update per block with all J members; 0: one update over all parameters", lambda v: v in (0, 1),
                   "be 0 or 1", 0.0),
    Hyperparameter("ensemble_seed", "seed of the initial ensemble and of the perturbations",
                   _integer_in(0, 2**31 - 1), "be an integer in [0, 2^31 - 1]", 0.0),
)


# the per-run columns a step reads (runs x 1), carried in the state from ``columns``
RUN_COLUMNS = ("step_size", "noise", "perturb", "adaptive", "eps", "tikhonov")


def _generator(seed: int, k: int) -> torch.Generator:
    """One stream per (seed, step): a step's draws do not depend on which runs share the stack."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + k)


class EnsembleKalmanInversion(Method):
    name = "eki"
    description = ("ensemble Kalman inversion: an ensemble of J parameter vectors moved by Kalman updates with "
                   "ensemble covariances, no gradient (Kovachki & Stuart 2019)")
    hyperparameters = HYPERPARAMETERS
    needs = frozenset({FORWARD})
    records = ("x", "m")

    def stack_key(self, columns: Mapping[str, float]) -> tuple:
        # only equal ensemble sizes share a state, and localised runs step apart from the others
        return (self.name, int(columns["J"]), int(columns["localise"]))

    def columns(self, h: float, lam: float, **hyperparameters: float) -> dict[str, float]:
        if not (h > 0.0):
            raise ConfigError(f"method {self.name!r}: learning rate h must be positive, got {h}")
        columns = self.check(hyperparameters)
        if columns["localise"] and columns["adaptive"]:
            raise ConfigError(f"method {self.name!r}: localise takes a fixed step; set adaptive to 0")
        return {"step_size": float(h), **columns}

    def init(self, x0: Tensor, columns: Mapping[str, Tensor]) -> State:
        n_members = int(columns["J"][0, 0])
        seeds = columns["ensemble_seed"].reshape(-1).cpu().numpy().astype(np.int64)
        z = torch.stack([torch.randn(n_members, x0.shape[1], generator=_generator(s, 0), dtype=torch.float64)
                         for s in seeds]).to(x0.device, x0.dtype)
        u = x0.unsqueeze(1) + columns["spread"].unsqueeze(2) * z
        mean = u.mean(1)
        host = {key: (columns[key] != 0.0).reshape(-1).cpu().numpy()
                for key in ("perturb", "adaptive", "tikhonov", "localise")}
        return {"u": u, "mean_prev": mean.clone(), "h_used": columns["step_size"].clone(), "prior_mean": x0,
                **{key: columns[key] for key in RUN_COLUMNS},
                "seed": seeds, "any_perturb": host["perturb"], "any_adaptive": host["adaptive"],
                "any_tikhonov": host["tikhonov"], "any_localise": host["localise"]}

    def step(self, state: State, k: int, oracle: Oracle) -> State:
        u = state["u"]
        outputs, y = oracle.forward(u)  # (runs, J, m), (runs, m)
        if state["any_localise"].any() and oracle.blocks > 1:  # all or none: localise is in the stack key
            return self._localised(state, k, u, outputs, y, oracle.blocks)
        return self._advance(state, k, u, outputs, y)

    def _localised(self, state: State, k: int, u: Tensor, outputs: Tensor, y: Tensor, blocks: int) -> State:
        """One update per block (``Problem.blocks``: parameter ``i`` and output ``o`` in blocks ``i mod b`` and
        ``o mod b``), the blocks of all runs side by side on the run axis: covariances between blocks, zero in
        the prior and in the forward map, are left out instead of estimated from J members."""
        runs, n_members, dim = u.shape
        if dim % blocks or outputs.shape[2] % blocks:
            raise ValueError(f"eki: localise needs parameters ({dim}) and outputs ({outputs.shape[2]}) that split "
                             f"into the problem's {blocks} blocks")

        def split(t: Tensor) -> Tensor:  # (runs, [J,] n * blocks) -> (runs * blocks, [J,] n)
            t = t.reshape(*t.shape[:-1], -1, blocks).movedim(-1, 1)
            # contiguous: a view would keep the blocks' stride and every product would copy it again
            return t.reshape(runs * blocks, *t.shape[2:]).contiguous()

        per_block = {key: (value.repeat_interleave(blocks, 0) if isinstance(value, Tensor) else
                           np.repeat(value, blocks)) for key, value in state.items()
                     if key in RUN_COLUMNS or key.startswith("any_")}
        per_block["prior_mean"] = split(state["prior_mean"])
        # every block of every run draws its own perturbations
        per_block["seed"] = (np.asarray(state["seed"], dtype=np.int64)[:, None] * blocks + np.arange(blocks)).reshape(-1)
        moved = self._advance(per_block, k, split(u), split(outputs), split(y))["u"]
        merged = moved.view(runs, blocks, n_members, dim // blocks).movedim(1, -1).reshape(runs, n_members, dim)
        return {**state, "u": merged, "mean_prev": u.mean(1), "h_used": state["step_size"]}

    def _advance(self, state: State, k: int, u: Tensor, outputs: Tensor, y: Tensor) -> State:
        runs, n_members, _ = u.shape
        mean = u.mean(1)
        du = u - mean.unsqueeze(1)
        mean_g = outputs.mean(1, keepdim=True)
        dg = outputs - mean_g
        # the cheaper space: J x J systems unless there are fewer outputs than members (and no Tikhonov block)
        if outputs.shape[2] < n_members and not state["any_tikhonov"].any():
            coef, rows, h, info = self._in_output_space(state, k, du, dg, outputs - y.unsqueeze(1))
            base, moved = u, None
        else:
            base, moved, h, info = self._in_ensemble_space(state, k, mean, du, dg, mean_g.squeeze(1) - y)
        bad = (info != 0).view(runs, 1, 1)  # not positive definite: non-finite outputs; recorded as diverged
        if bool(bad.any()):  # a NaN base spoils the run's every member in either form
            base = torch.where(bad, torch.full_like(base, float("nan")), base)
        # base + coef @ rows in one call, or base added in place to the moved deviations: no J x dim increment is
        # stored on its own
        new = torch.baddbmm(base, coef, rows) if moved is None else moved.add_(base)
        return {**state, "u": new, "mean_prev": mean, "h_used": h}

    def _in_ensemble_space(self, state: State, k: int, mean: Tensor, du: Tensor, dg: Tensor, offset: Tensor):
        """The update in J-space (module docstring) as ``U <- base + moved``: ``base`` the new mean on every member,
        ``moved = (K^-1 + h P^T K^-1) dU``, which the caller adds ``base`` to in place (without perturbations it is
        ``dU`` itself, overwritten: the caller's centred copy, not read again).
        On the centred members, not on ``U``: ``K^-1 U`` would carry the mean through ``K^-1 1 = 1``, exact only to
        round-off relative to the mean, which swamps the spread once the ensemble has collapsed (in float32 first)."""
        n_members = du.shape[1]
        scale = (1.0 / (state["noise"] * n_members)).unsqueeze(2)  # Gamma^-1 / J, (runs, 1, 1)
        # S_ij = <dG_i, Gamma^-1 dG_j> / J and c_i = <dG_i, Gamma^-1 (mean G - y)> / J: the misfit matrix
        # D_ij = <dG_i, Gamma^-1 (G_j - y)> / J is S + c 1^T, so one J x J product over the outputs serves both
        s = torch.bmm(dg, dg.transpose(1, 2)).mul_(scale)
        c = scale * torch.bmm(dg, offset.unsqueeze(2))
        if state["any_tikhonov"].any():  # the parameter block: G~ = [G; u], y~ = [y; x0], Gamma~^-1 = [.; lambda I]
            lam_t = state["tikhonov"].unsqueeze(2) / n_members
            # as for the outputs: u_j - x0 = dU_j + (mean - x0), so one J x J product over the parameters
            s = s + lam_t * torch.bmm(du, du.transpose(1, 2))
            c = c + lam_t * torch.bmm(du, (mean - state["prior_mean"]).unsqueeze(2))
        h = self._step_size(state, lambda: torch.linalg.matrix_norm(s + c).unsqueeze(1))
        h3 = h.unsqueeze(2)
        system = s.mul_(h3)  # S is not read again: K = I + h S in its place
        system.diagonal(dim1=1, dim2=2).add_(1.0)
        chol, info = torch.linalg.cholesky_ex(system)
        # a factor that broke down is replaced by the identity, and the caller overwrites its run with NaN (recorded
        # as diverged); one flag for the stack is read on the host, as the caller does next, and only a stack with a
        # failed factor is rewritten by a select
        failed = info != 0
        if bool(failed.any()):
            chol = torch.where(failed.view(-1, 1, 1), torch.eye(n_members, dtype=chol.dtype, device=chol.device), chol)
        if state["any_perturb"].any():  # the perturbed observations' share h P^T K^-1 dU, through the inverse
            k_inv = torch.cholesky_inverse(chol)
            coef = k_inv + h3 * torch.bmm(self._perturbation(state, k, dg, du, h3).transpose(1, 2), k_inv)
            base = mean.unsqueeze(1) - h3 * torch.bmm(torch.bmm(k_inv, c).transpose(1, 2), du)
            return base, torch.bmm(coef, du), h, info
        # K^-1 dU = (dU^T L^-T L^-1)^T: two triangular solves from the right on dU^T, as many operations as the product
        # with an inverse and no inverse formed. In place on dU (the caller's fresh centred copy, not read again):
        # dU^T is column-major, so the solver works on it as it lies, where a new output would cost a transposing
        # copy per solve; the solution keeps dU's layout, members by rows, which the next forward pass reads
        torch.linalg.solve_triangular(chol.mT, du.mT, upper=True, left=False, out=du.mT)
        moved = torch.linalg.solve_triangular(chol, du.mT, upper=False, left=False, out=du.mT).mT
        # K^-1 is symmetric, so dU^T K^-1 c = (K^-1 dU)^T c: the mean's shift from the solution, without another solve
        base = mean.unsqueeze(1) - h3 * torch.bmm(c.transpose(1, 2), moved)
        return base, moved, h, info

    def _in_output_space(self, state: State, k: int, du: Tensor, dg: Tensor, misfit: Tensor):
        """``(coef, rows)`` with ``U <- U + coef @ rows``, the increment ``h (y + xi_j - G(u_j))^T (h C_GG + Gamma)^-1
        C_uG^T`` per member: m x m systems, for m < J."""
        runs, n_members, n_out = dg.shape
        gamma = state["noise"].unsqueeze(2)
        c_gg = torch.bmm(dg.transpose(1, 2), dg) / n_members
        # |D|_F^2 = tr(D^T D) = sum((G - y) C_GG * (G - y)) / (gamma^2 J)
        h = self._step_size(state, lambda: torch.sqrt((torch.bmm(misfit, c_gg) * misfit).sum((1, 2)) / n_members)
                            .unsqueeze(1) / state["noise"])
        h3 = h.unsqueeze(2)
        residual = -misfit
        if state["any_perturb"].any():
            z = self._draws(state, k, n_members, n_out, dg)[0]
            residual = residual + torch.sqrt(state["perturb"].unsqueeze(2) * gamma / h3) * z
        system = h3 * c_gg + gamma * torch.eye(n_out, dtype=dg.dtype, device=dg.device)
        chol, info = torch.linalg.cholesky_ex(system)
        solved = torch.cholesky_solve(residual.transpose(1, 2), chol)  # (runs, m, J)
        return h3 * solved.transpose(1, 2), torch.bmm(dg.transpose(1, 2), du) / n_members, h, info

    def _step_size(self, state: State, d_norm: Callable[[], Tensor]) -> Tensor:
        """``h``, or ``a / (|D_n|_F + eps)`` for the runs with ``adaptive = a > 0`` (runs x 1); ``d_norm()`` gives
        ``|D_n|_F`` and is called only where some run's step is adaptive."""
        h = state["step_size"]
        if not state["any_adaptive"].any():
            return h
        return torch.where(state["adaptive"] != 0.0, state["adaptive"] / (d_norm() + state["eps"]), h)

    def _draws(self, state: State, k: int, n_members: int, n_out: int, like: Tensor, n_prior: int = 0):
        """Standard normal draws of step ``k`` per run: ``J x m`` for the outputs, ``J x n_prior`` for the prior block
        (one stream per run's seed and step, whichever space the update is formed in)."""
        gens = [_generator(seed, k + 1) for seed in state["seed"]]
        z = torch.stack([torch.randn(n_members, n_out, generator=g, dtype=torch.float64) for g in gens])
        zp = (torch.stack([torch.randn(n_members, n_prior, generator=g, dtype=torch.float64) for g in gens])
              if n_prior else None)
        return z.to(like.device, like.dtype), None if zp is None else zp.to(like.device, like.dtype)

    def _perturbation(self, state: State, k: int, dg: Tensor, du: Tensor, h3: Tensor) -> Tensor:
        """``<dG_i, Gamma^-1 xi_j> / J`` with ``xi_j ~ N(0, s Gamma / h)`` (and the Tikhonov block's share)."""
        runs, n_members, n_out = dg.shape
        tikhonov = bool(state["any_tikhonov"].any())
        z, zp = self._draws(state, k, n_members, n_out, dg, du.shape[2] if tikhonov else 0)
        scale = (state["perturb"] / state["noise"]).unsqueeze(2) / h3  # Gamma^-1 xi = sqrt(s / (gamma h)) z
        out = torch.sqrt(scale) * torch.bmm(dg, z.transpose(1, 2)) / n_members
        if tikhonov:  # prior block: lambda xi_p with xi_p ~ N(0, s / (lambda h) I)
            scale_p = (state["perturb"] * state["tikhonov"]).unsqueeze(2) / h3
            out = out + torch.sqrt(scale_p) * torch.bmm(du, zp.transpose(1, 2)) / n_members
        return out

    def iterate(self, state: State) -> Tensor:
        return state["u"].mean(1)

    def record(self, state: State) -> dict[str, Tensor]:
        """``x`` the ensemble mean, ``m`` its increment over the step used (``(x_k - x_{k-1}) / h_k``)."""
        x = state["u"].mean(1)
        return {"x": x, "m": (x - state["mean_prev"]) / state["h_used"]}


EKI = EnsembleKalmanInversion()
