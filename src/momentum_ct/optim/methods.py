"""Registry of the discrete methods, all instances of one recurrence (SCIENCE.md 1.1).

    x_{k+1} = x_k + lam (x_k - x_{k-1}) - h grad f(x_k + a (x_k - x_{k-1}))

A method maps the nominal ``(h, lam)`` of a run to the ``(h, lam, a)`` actually iterated, so that a
sweep over ``(h, lam)`` compares HB, NAG and rescaled GD at the same nominal point.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, unknown_name


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    uses_momentum: bool  # False: lam only rescales the learning rate (rescaled GD)
    lookahead: bool  # True: a = lam (Nesterov), False: a = 0

    def coefficients(self, h: float, lam: float) -> tuple[float, float, float]:
        """Return ``(step, momentum, a)`` iterated for nominal learning rate ``h`` and momentum ``lam``."""
        check_hyperparameters(h, lam)
        if not self.uses_momentum:
            return h / (1.0 - lam), 0.0, 0.0
        return h, lam, (lam if self.lookahead else 0.0)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gd", "gradient descent with learning rate h (lam ignored)", False, False),
        Method("hb", "Polyak's heavy ball, a = 0", True, False),
        Method("nag", "Nesterov's accelerated gradient, a = lam", True, True),
        Method("gd_rescaled", "gradient descent with learning rate h / (1 - lam)", False, False),
    )
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def check_hyperparameters(h: float, lam: float) -> None:
    # lam first: a grid scaled by (1 - lam)^2 turns lam = 1 into h = 0, and the message must name lam.
    if not (0.0 <= lam < 1.0):
        raise ConfigError(f"momentum lam must lie in [0, 1), got {lam}")
    if not (h > 0.0):
        raise ConfigError(f"learning rate h must be positive, got {h}")


def coefficients(method: str, h: float, lam: float) -> tuple[float, float, float]:
    """``(step, momentum, a)`` for a named method; ``gd`` ignores ``lam`` entirely."""
    m = get_method(method)
    if m.name == "gd":
        check_hyperparameters(h, lam)
        return h, 0.0, 0.0
    return m.coefficients(h, lam)
