"""Registry of problems: short names resolve to factories with keyword-only options."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from ..errors import ConfigError, unknown_name
from .base import Data, Problem
from .digits_mlp import make_digits_mlp
from .quadratic import make_quadratic
from .regression import make_regression
from .toy2d import make_toy2d

PROBLEMS: dict[str, Callable[..., Problem]] = {
    "quadratic": make_quadratic,
    "toy2d": make_toy2d,
    "regression": make_regression,
    "digits_mlp": make_digits_mlp,
}


def register_problem(name: str, factory: Callable[..., Problem], *, replace: bool = False) -> Callable[..., Problem]:
    """Add a problem factory (a plug-in's entry point): ``factory(*, seed, **options) -> Problem`` with
    keyword-only options, which become the problem's config options. A taken name is an error unless ``replace``."""
    if not name.isidentifier():
        raise ConfigError(f"problem name {name!r} must be a Python identifier")
    if name in PROBLEMS and not replace and PROBLEMS[name] is not factory:
        raise ConfigError(f"problem {name!r} is already registered")
    if "seed" not in inspect.signature(factory).parameters:
        raise ConfigError(f"problem {name!r}: its factory must take a keyword argument seed")
    PROBLEMS[name] = factory
    return factory


def problem_options(name: str) -> list[str]:
    """The options a problem accepts (besides ``seed``)."""
    if name not in PROBLEMS:
        raise unknown_name("problem", name, PROBLEMS)
    return [p for p in inspect.signature(PROBLEMS[name]).parameters if p != "seed"]


def check_problem_options(name: str, options: dict[str, Any]) -> None:
    valid = problem_options(name)
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"problem {name!r} has no option(s) {', '.join(bad)}; valid options: {', '.join(valid)}")


def make_problem(name: str, *, seed: int = 0, **options: Any) -> Problem:
    """Build a registered problem; unknown names or options raise ``ConfigError``."""
    check_problem_options(name, options)
    try:
        return PROBLEMS[name](seed=seed, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err


__all__ = ["Data", "PROBLEMS", "Problem", "check_problem_options", "make_problem", "problem_options",
           "register_problem"]
