"""The heavy-ball family, one implementation of the method protocol (SCIENCE.md 1.1):

    x_{k+1} = x_k + lam (x_k - x_{k-1}) - step_size grad f(x_k + a (x_k - x_{k-1})),   x_{-1} = x_0

A member maps the nominal ``(h, lam)`` of a run (and its own hyperparameters) to the ``(step_size, lam, a)``
actually iterated, so that a sweep over ``(h, lam)`` compares HB, NAG and rescaled GD at the same
nominal point. Every member shares one state and one step function, so runs of different members
stack together; ``(step_size, lam, a)`` are the state's columns.
"""
from __future__ import annotations

from typing import Callable, Mapping

from torch import Tensor

from ..errors import ConfigError
from .protocol import GRAD, Hyperparameter, Method, Oracle, State

# (h, lam, own hyperparameters) -> (step_size, lam, a) actually iterated
Rule = Callable[[float, float, Mapping[str, float]], tuple[float, float, float]]


def check_hyperparameters(h: float, lam: float) -> None:
    """The nominal ``h > 0`` and ``lam`` in [0, 1) every run of the family gets from the sweep."""
    # lam first: a grid scaled by (1 - lam)^2 turns lam = 1 into h = 0, and the message must name lam.
    if not (0.0 <= lam < 1.0):
        raise ConfigError(f"momentum lam must lie in [0, 1), got {lam}")
    if not (h > 0.0):
        raise ConfigError(f"learning rate h must be positive, got {h}")


def lookahead_in_range(a: float) -> bool:
    return 0.0 <= a < 1.0


class HeavyBallFamily(Method):
    """A member of the heavy-ball family.

    Args:
        name, description: as registered.
        rule: ``(h, lam, own hyperparameters) -> (step_size, lam, a)``.
        hyperparameters: the member's own hyperparameters (``a`` for the general member).
        uses_momentum: ``False`` when ``lam`` only rescales the learning rate (no two-step dynamics).
    """

    needs = frozenset({GRAD})
    records = ("x", "m")

    def __init__(self, name: str, description: str, rule: Rule, *, hyperparameters: tuple[Hyperparameter, ...] = (),
                 uses_momentum: bool = True):
        self.name, self.description, self._rule = name, description, rule
        self.hyperparameters, self.uses_momentum = tuple(hyperparameters), uses_momentum

    def stack_key(self, columns: Mapping[str, float]) -> str:
        return "heavy_ball_family"

    def coefficients(self, h: float, lam: float, **hyperparameters: float) -> tuple[float, float, float]:
        """``(step_size, lam, a)`` iterated for nominal learning rate ``h``, momentum ``lam`` and own hyperparameters.

        Raises:
            ConfigError: ``h <= 0``, ``lam`` outside [0, 1), or a bad hyperparameter.
        """
        check_hyperparameters(h, lam)
        return self._rule(h, lam, self.check(hyperparameters))

    def columns(self, h: float, lam: float, **hyperparameters: float) -> dict[str, float]:
        step_size, momentum, a = self.coefficients(h, lam, **hyperparameters)
        return {"step_size": step_size, "lam": momentum, "a": a}

    def init(self, x0: Tensor, columns: Mapping[str, Tensor]) -> State:
        # ``looks_ahead`` is a host copy of ``a != 0``: deciding whether to form the look-ahead point never
        # waits for the device.
        return {"x": x0, "x_prev": x0.clone(), "step_size": columns["step_size"], "lam": columns["lam"],
                "a": columns["a"], "looks_ahead": (columns["a"] != 0.0).reshape(-1).cpu().numpy()}

    def step(self, state: State, k: int, oracle: Oracle) -> State:
        x, x_prev = state["x"], state["x_prev"]
        # the look-ahead point only where some run has a != 0, so HB-only stacks do no extra arithmetic
        point = x + state["a"] * (x - x_prev) if state["looks_ahead"].any() else x
        grad = oracle.grad(point)
        return {**state, "x": x + state["lam"] * (x - x_prev) - state["step_size"] * grad, "x_prev": x}

    def iterate(self, state: State) -> Tensor:
        return state["x"]

    def record(self, state: State) -> dict[str, Tensor]:
        """``x = x_k`` (never a look-ahead point) and the velocity ``m = (x_k - x_{k-1}) / step_size``."""
        x = state["x"]
        return {"x": x, "m": (x - state["x_prev"]) / state["step_size"]}


LOOKAHEAD = Hyperparameter("a", "look-ahead: the gradient is taken at x_k + a (x_k - x_{k-1})",
                           lookahead_in_range, "lie in [0, 1)")

FAMILY = (
    HeavyBallFamily("gd", "gradient descent with learning rate h (lam ignored)",
                    lambda h, lam, hp: (h, 0.0, 0.0), uses_momentum=False),
    HeavyBallFamily("hb", "Polyak's heavy ball, a = 0", lambda h, lam, hp: (h, lam, 0.0)),
    HeavyBallFamily("nag", "Nesterov's accelerated gradient, a = lam", lambda h, lam, hp: (h, lam, lam)),
    HeavyBallFamily("gd_rescaled", "gradient descent with learning rate h / (1 - lam)",
                    lambda h, lam, hp: (h / (1.0 - lam), 0.0, 0.0), uses_momentum=False),
    HeavyBallFamily("heavy_ball_family", "momentum lam with look-ahead a given as a hyperparameter "
                    "(a = 0: HB, a = lam: NAG)", lambda h, lam, hp: (h, lam, hp["a"]), hyperparameters=(LOOKAHEAD,)),
)
