"""Annealed on-line methods of Orr & Leen (SCIENCE.md 2), in the method protocol.

Every method here draws one training sample per step with replacement (``ONE_SAMPLE``; the engine's
``batch_size``, where set, makes it that many) and anneals its learning rate as

    mu_k = scale / (k + 1 + offset),        k = 0, 1, ... the step index, so t = k + 1 counts samples seen.

- ``annealed_sgd``: ``w_{k+1} = w_k - mu_k grad f_i(w_k) + beta (w_k - w_{k-1})`` with ``mu_k = mu0 / (t + t0)``;
  the nominal ``h`` is ``mu0`` and the nominal ``lam`` is ``beta`` (so a sweep over ``(h, lam)`` is a sweep over
  ``(mu0, beta)``, and the late-time effective rate is ``mu_eff = h / (1 - lam)``); own hyperparameter ``t0 >= 0``
  (a clock offset: annealing from ``t = 1`` with a large ``mu0`` blows up early).
- ``search_then_converge``: Darken & Moody's schedule in its common form ``mu_k = mu0 / (1 + k / tau)``
  (constant ``mu0`` for ``k << tau``, ``mu0 tau / k`` after), i.e. ``scale = mu0 tau``, ``offset = tau - 1``;
  ``h`` is ``mu0``, ``lam`` a constant momentum ``beta`` (usually 0); own hyperparameter ``tau > 0``.
- ``matrix_momentum`` (and ``_exact``, ``_difference``): adaptive matrix momentum
  ``w_{k+1} = w_k - mu_k grad f_i(w_k) + (I - mu0 H)(w_k - w_{k-1})``, ``mu_k = mu0 / (t + t0)``, whose late-time
  effective rate is ``mu_k (mu0 H)^{-1} = H^{-1} / t``, the optimal matrix rate. ``H (w_k - w_{k-1})`` is a
  Hessian-vector product of the step's sample (``matrix_momentum``), of the full training loss (``_exact``, a
  reference with the exact curvature), or the difference of two gradients of the step's sample
  (``_difference``, gradients only; exact on a quadratic loss). No Hessian is formed. ``h`` is ``mu0``; ``lam``
  is ignored (the momentum is a matrix).

Every method records ``x`` only: Monte Carlo runs come by the thousand and ``E|w - w*|^2`` needs ``x`` alone.
"""
from __future__ import annotations

from typing import Callable, Mapping

from torch import Tensor

from ..errors import ConfigError
from .protocol import GRAD, HVP, ONE_SAMPLE, Hyperparameter, Method, Oracle, State


def check_rate(h: float, lam: float) -> None:
    """The nominal ``mu0 = h > 0`` and momentum ``beta = lam`` in [0, 1) of an annealed run."""
    if not (0.0 <= lam < 1.0):
        raise ConfigError(f"momentum lam must lie in [0, 1), got {lam}")
    if not (h > 0.0):
        raise ConfigError(f"learning rate h must be positive, got {h}")


T0 = Hyperparameter("t0", "clock offset of the annealing mu0 / (t + t0)", lambda v: v >= 0.0, "be >= 0", default=0.0)
TAU = Hyperparameter("tau", "length of the search phase of mu0 / (1 + k / tau), in steps", lambda v: v > 0.0,
                     "be positive")


def annealing_rate(state: State, k: int) -> Tensor:
    """``mu_k = scale / (k + 1 + offset)`` per run (``runs x 1``)."""
    return state["scale"] / (k + 1.0 + state["offset"])


class AnnealedSGD(Method):
    """On-line SGD with annealing ``scale / (t + offset)`` and constant momentum ``beta``; one state for every
    schedule, so annealed and search-then-converge runs stack together.

    Args:
        name, description: as registered.
        schedule: ``(h, own hyperparameters) -> (scale, offset)``.
        hyperparameters: the schedule's own hyperparameters.
    """

    needs = frozenset({GRAD, ONE_SAMPLE})
    records = ("x",)

    def __init__(self, name: str, description: str,
                 schedule: Callable[[float, Mapping[str, float]], tuple[float, float]],
                 hyperparameters: tuple[Hyperparameter, ...]):
        self.name, self.description, self._schedule = name, description, schedule
        self.hyperparameters = hyperparameters

    def stack_key(self, columns: Mapping[str, float]) -> str:
        return "annealed_sgd"

    def columns(self, h: float, lam: float, **hyperparameters: float) -> dict[str, float]:
        check_rate(h, lam)
        scale, offset = self._schedule(h, self.check(hyperparameters))
        return {"scale": scale, "offset": offset, "beta": lam}

    def init(self, x0: Tensor, columns: Mapping[str, Tensor]) -> State:
        return {"x": x0, "x_prev": x0.clone(), **{k: columns[k] for k in ("scale", "offset", "beta")}}

    def step(self, state: State, k: int, oracle: Oracle) -> State:
        x = state["x"]
        new = x - annealing_rate(state, k) * oracle.grad(x) + state["beta"] * (x - state["x_prev"])
        return {**state, "x": new, "x_prev": x}

    def iterate(self, state: State) -> Tensor:
        return state["x"]

    def record(self, state: State) -> dict[str, Tensor]:
        return {"x": state["x"]}


# How matrix momentum gets H (w_k - w_{k-1}): oracle, x_k, x_{k-1}, the difference, grad f_i(x_k) -> product.
Curvature = Callable[[Oracle, Tensor, Tensor, Tensor, Tensor], Tensor]


def sample_hvp(oracle: Oracle, x: Tensor, x_prev: Tensor, d: Tensor, grad: Tensor) -> Tensor:
    return oracle.hvp(x, d)


def full_hvp(oracle: Oracle, x: Tensor, x_prev: Tensor, d: Tensor, grad: Tensor) -> Tensor:
    return oracle.hvp(x, d, full=True)


def gradient_difference(oracle: Oracle, x: Tensor, x_prev: Tensor, d: Tensor, grad: Tensor) -> Tensor:
    # the same sample's gradient at both points (the oracle's data are fixed within a step)
    return grad - oracle.grad(x_prev)


class MatrixMomentum(Method):
    """Adaptive matrix momentum ``w_{k+1} = w_k - mu_k grad f_i(w_k) + (I - mu0 H)(w_k - w_{k-1})``.

    Args:
        name, description: as registered.
        curvature: how ``H (w_k - w_{k-1})`` is formed (``sample_hvp``, ``full_hvp``, ``gradient_difference``).
        needs: what ``curvature`` asks of the oracle besides a gradient on one sample.
    """

    records = ("x",)
    hyperparameters = (T0,)

    def __init__(self, name: str, description: str, curvature: Curvature, needs: frozenset[str]):
        self.name, self.description, self._curvature = name, description, curvature
        self.needs = frozenset({GRAD, ONE_SAMPLE}) | needs

    def stack_key(self, columns: Mapping[str, float]) -> str:
        return self.name  # the curvature differs between variants, so each has its own stack

    def columns(self, h: float, lam: float, **hyperparameters: float) -> dict[str, float]:
        check_rate(h, lam)
        return {"mu0": h, "offset": self.check(hyperparameters)["t0"]}

    def init(self, x0: Tensor, columns: Mapping[str, Tensor]) -> State:
        return {"x": x0, "x_prev": x0.clone(), "mu0": columns["mu0"], "offset": columns["offset"]}

    def step(self, state: State, k: int, oracle: Oracle) -> State:
        x, x_prev, mu0 = state["x"], state["x_prev"], state["mu0"]
        d = x - x_prev
        grad = oracle.grad(x)
        hd = self._curvature(oracle, x, x_prev, d, grad)
        mu = mu0 / (k + 1.0 + state["offset"])
        return {**state, "x": x - mu * grad + d - mu0 * hd, "x_prev": x}

    def iterate(self, state: State) -> Tensor:
        return state["x"]

    def record(self, state: State) -> dict[str, Tensor]:
        return {"x": state["x"]}


ANNEALED = (
    AnnealedSGD("annealed_sgd", "on-line SGD, mu_t = h / (t + t0), constant momentum beta = lam",
                lambda h, hp: (h, hp["t0"]), (T0,)),
    AnnealedSGD("search_then_converge", "on-line SGD, Darken & Moody's mu_k = h / (1 + k / tau), momentum lam",
                lambda h, hp: (h * hp["tau"], hp["tau"] - 1.0), (TAU,)),
    MatrixMomentum("matrix_momentum", "adaptive matrix momentum, H (w_k - w_{k-1}) a Hessian-vector product of "
                   "the step's sample; mu_t = h / (t + t0), lam ignored", sample_hvp, frozenset({HVP})),
    MatrixMomentum("matrix_momentum_exact", "adaptive matrix momentum with the full-data Hessian-vector product "
                   "(exact curvature); mu_t = h / (t + t0), lam ignored", full_hvp, frozenset({HVP})),
    MatrixMomentum("matrix_momentum_difference", "adaptive matrix momentum, H (w_k - w_{k-1}) from the difference "
                   "of two gradients of the step's sample; mu_t = h / (t + t0), lam ignored",
                   gradient_difference, frozenset()),
)
