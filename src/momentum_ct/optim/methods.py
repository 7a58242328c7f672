"""Registry of methods, and a method chosen with its hyperparameters (``MethodSpec``).

The package registers the heavy-ball family (``gd``, ``hb``, ``nag``, ``gd_rescaled`` and the general
member ``heavy_ball_family`` with look-ahead ``a``), Orr & Leen's annealed on-line methods (``optim.annealed``:
``annealed_sgd``, ``search_then_converge``, the ``matrix_momentum`` variants) and ensemble Kalman inversion
(``eki``); a user's module adds its own with
``register_method``. An experiment's ``methods:`` list holds names or ``{name: ..., <hyperparameter>:
<value>}`` entries; each becomes a ``MethodSpec`` whose ``label`` (``hb``, ``heavy_ball_family(a=0.3)``)
is the series key and resolves back to the same method and values (``resolve_method``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError, unknown_name
from .annealed import ANNEALED
from .eki import EKI
from .heavy_ball import FAMILY, HeavyBallFamily, check_hyperparameters
from .protocol import NAME_PATTERN, Method

METHODS: dict[str, Method] = {m.name: m for m in (*FAMILY, *ANNEALED, EKI)}

_LABEL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to the registry under ``method.name`` and return it.

    Raises:
        ConfigError: the name is not an identifier, or is taken (unless ``replace``).
        TypeError: ``method`` does not implement the protocol (``protocol.Method``).
    """
    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a protocol.Method, got {type(method).__name__}")
    if not isinstance(method.name, str) or not NAME_PATTERN.match(method.name):
        raise ConfigError(f"method name {method.name!r} must be an identifier (letters, digits, underscores)")
    if method.name in METHODS and not replace and METHODS[method.name] is not method:
        raise ConfigError(f"method {method.name!r} is already registered; pass replace=True to replace it")
    for p in method.hyperparameters:
        if p.default is not None and not p.check(float(p.default)):
            raise ConfigError(f"method {method.name!r}: default {p.default} of {p.name} does not {p.requirement}")
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a registered method (for tests and interactive sessions)."""
    METHODS.pop(name, None)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method with values of its own hyperparameters (checked, defaults filled)."""

    method: Method
    hyperparameters: Mapping[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def label(self) -> str:
        """``name`` for a method without hyperparameters, else ``name(k=v, ...)`` in declared order."""
        if not self.hyperparameters:
            return self.method.name
        return f"{self.method.name}({', '.join(f'{k}={float(v)!r}' for k, v in self.hyperparameters.items())})"

    def columns(self, h: float, lam: float) -> dict[str, float]:
        return self.method.columns(h, lam, **self.hyperparameters)


def _bound(method: Method, values: Mapping[str, Any] | None) -> MethodSpec:
    return MethodSpec(method, method.check(values))


def get_method(name: str) -> Method:
    """The registered method of a name (or of a label ``name(k=v, ...)``, whose values are then checked).

    Raises:
        ConfigError: an unknown name (listing the registered ones) or a bad label.
    """
    if isinstance(name, str) and name in METHODS:
        return METHODS[name]
    return resolve_method(name).method


def resolve_method(entry: Any, hyperparameters: Mapping[str, Any] | None = None) -> MethodSpec:
    """A ``MethodSpec`` from a config entry: a name, a label ``name(k=v, ...)``, a mapping
    ``{name: ..., k: v}``, a ``Method`` or a ``MethodSpec``; ``hyperparameters`` add values (not twice).

    Raises:
        ConfigError: unknown method (listing the registered ones), bad entry, or bad hyperparameters.
    """
    extra = dict(hyperparameters or {})
    if isinstance(entry, MethodSpec):
        return _bound(entry.method, _merge(dict(entry.hyperparameters), extra, entry.label))
    if isinstance(entry, Method):
        return _bound(entry, extra)
    if isinstance(entry, Mapping):
        values = dict(entry)
        if "name" not in values:
            raise ConfigError(f"method entry {entry!r} has no 'name'")
        name = values.pop("name")
        return _bound(_registered(name), _merge(values, extra, repr(entry)))
    if isinstance(entry, str):
        if entry in METHODS:
            return _bound(METHODS[entry], extra)
        match = _LABEL.match(entry.strip())
        if match is None:
            raise unknown_name("method", entry, METHODS)
        return _bound(_registered(match.group(1)), _merge(_parse_values(match.group(2), entry), extra, entry))
    raise ConfigError(f"a method is a name or a mapping with a 'name', got {entry!r}")


def _registered(name: Any) -> Method:
    if not isinstance(name, str) or name not in METHODS:
        raise unknown_name("method", str(name), METHODS)
    return METHODS[name]


def _merge(values: dict, extra: dict, what: str) -> dict:
    twice = sorted(set(values) & set(extra))
    if twice:
        raise ConfigError(f"method {what}: hyperparameter(s) {', '.join(twice)} given twice")
    return values | extra


def _parse_values(text: str, label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            values[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"method label {label!r}: {part!r} is not of the form name=number") from None
    return values


def coefficients(method: Any, h: float, lam: float) -> tuple[float, float, float]:
    """``(step_size, lam, a)`` iterated by a member of the heavy-ball family (a name or label); ``gd`` ignores ``lam``.

    Raises:
        ConfigError: unknown method, a method outside the family, or bad ``h``, ``lam`` or hyperparameters.
    """
    spec = resolve_method(method)
    if not isinstance(spec.method, HeavyBallFamily):
        raise ConfigError(f"method {spec.name!r} is not a member of the heavy-ball family: "
                          f"it has no (step_size, lam, a)")
    return spec.method.coefficients(h, lam, **spec.hyperparameters)


__all__ = ["METHODS", "MethodSpec", "check_hyperparameters", "coefficients", "get_method", "register_method",
           "resolve_method", "unregister_method"]
