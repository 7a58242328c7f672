"""Registry of problems: short names resolve to factories with keyword-only options."""
from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable

from ..errors import ConfigError, unknown_name
from .base import Data, Problem
from .digits_late import make_digits_late
from .digits_mlp import make_digits_mlp
from .graph_ssl import make_graph_ssl
from .lms import make_lms
from .quadratic import make_quadratic
from .regression import make_regression
from .toy2d import make_toy2d

PROBLEMS: dict[str, Callable[..., Problem]] = {
    "quadratic": make_quadratic,
    "toy2d": make_toy2d,
    "regression": make_regression,
    "digits_mlp": make_digits_mlp,
    "graph_ssl": make_graph_ssl,
    "lms": make_lms,
    "digits_late": make_digits_late,
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


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value fits a factory's type annotation (numbers, lists and tuples of them, None)."""
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value) if args else True
    return True  # anything else: the factory checks it


def _describe(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_problem_options(name: str, options: dict[str, Any]) -> None:
    """Names and types of a problem's options, from its factory's signature; raises ``ConfigError`` naming the
    option, the value and what is allowed."""
    valid = problem_options(name)
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"problem {name!r} has no option(s) {', '.join(bad)}; valid options: {', '.join(valid)}")
    try:
        hints = typing.get_type_hints(PROBLEMS[name])
    except Exception:  # unresolvable annotations (a plug-in's): the factory checks its own values
        hints = {}
    for key, value in options.items():
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(f"{key}: {value!r} is not allowed: problem {name!r} takes {_describe(hints[key])}")


def make_problem(name: str, *, seed: int = 0, **options: Any) -> Problem:
    """Build a registered problem; unknown names or options raise ``ConfigError``."""
    check_problem_options(name, options)
    try:
        return PROBLEMS[name](seed=seed, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err


__all__ = ["Data", "PROBLEMS", "Problem", "check_problem_options", "make_problem", "problem_options",
           "register_problem"]
