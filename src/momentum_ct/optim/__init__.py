"""The discrete methods: one recurrence covers GD, HB and NAG (SCIENCE.md 1.1)."""
from .functional import lookahead_point, momentum_step, momentum_update, velocity
from .methods import METHODS, Method, check_hyperparameters, coefficients, get_method
from .optimizer import MomentumRecurrence

__all__ = [
    "METHODS", "Method", "MomentumRecurrence", "check_hyperparameters", "coefficients", "get_method",
    "lookahead_point", "momentum_step", "momentum_update", "velocity",
]
