"""The discrete methods: a protocol (``protocol``), a registry (``methods``) and the heavy-ball family
(``heavy_ball``: GD, HB, NAG, rescaled GD, any look-ahead ``a``; SCIENCE.md 1.1) and ensemble Kalman
inversion (``eki``; SCIENCE.md 3)."""
from .eki import EKI, EnsembleKalmanInversion
from .functional import lookahead_point, momentum_step, momentum_update, velocity
from .heavy_ball import HeavyBallFamily, check_hyperparameters
from .methods import (
    METHODS, MethodSpec, coefficients, get_method, register_method, resolve_method, unregister_method,
)
from .optimizer import MomentumRecurrence
from .protocol import (
    CAPABILITIES, FORWARD, GRAD, HVP, ONE_SAMPLE, Hyperparameter, Method, Oracle, State, check_needs, select_runs,
)

__all__ = [
    "CAPABILITIES", "EKI", "EnsembleKalmanInversion", "FORWARD", "GRAD", "HVP", "ONE_SAMPLE", "METHODS", "HeavyBallFamily", "Hyperparameter", "Method",
    "MethodSpec", "MomentumRecurrence", "Oracle", "State", "check_hyperparameters", "check_needs", "coefficients",
    "get_method", "lookahead_point", "momentum_step", "momentum_update", "register_method", "resolve_method",
    "select_runs", "unregister_method", "velocity",
]
