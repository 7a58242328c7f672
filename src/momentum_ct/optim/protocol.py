"""The method protocol: a method is a registered object of pure functions over a stacked state.

Modelled on optax's ``GradientTransformation`` (a pair of pure ``init`` / ``update`` functions over
a state) and on the ask/tell shape of CliMA's EnsembleKalmanProcesses.jl (the method never calls the
model itself: it asks an oracle, which the engine provides). ``docs/methods.md`` shows how the
methods of the next papers fit.

- **State**: a ``dict`` of tensors, each with a leading run axis. Iterates are ``runs x dim``;
  per-run coefficients are ``runs x 1`` columns, so runs with different values stack and a formula
  like ``x + lam * (x - x_prev)`` broadcasts over runs. A single run is the one-row case. A leaf may
  also be a host-side numpy array (same leading axis) for facts that ``step`` decides on in Python,
  so that the decision never waits for the device.
- **Hyperparameters**: every run gets the sweep's nominal learning rate ``h`` and momentum ``lam``;
  a method may declare more of its own (``Hyperparameter``: a name, a check, an optional default).
  ``Method.columns`` turns ``(h, lam, own values)`` into the per-run numbers the state holds.
- **Schedules**: ``step`` receives the step index ``k``, so a coefficient may be any function of it
  (``mu0 / (k + t0)``), computed from the columns.
- **Oracle**: what a step may ask of the problem, on the data the engine drew for that step.
  Capabilities are named (``GRAD``, ``HVP``, ``FORWARD``, ``ONE_SAMPLE``); a method lists those it
  needs in ``needs`` and an engine refuses, before any step, a method whose needs it does not
  provide (``check_needs``).
- **Records**: ``record(state)`` gives the per-run vectors written to the trajectory (``x`` always:
  metrics are evaluated there; the heavy-ball family adds ``m``); ``iterate(state)`` is the point
  whose size decides divergence.
- **Removal**: ``select(state, index)`` keeps the given runs (finished or diverged runs leave).
"""
from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError

State = dict[str, "Tensor | np.ndarray"]

# Oracle capabilities. The stacked engine serves GRAD, HVP, ONE_SAMPLE and FORWARD (for problems with a forward
# map), the functional engine GRAD; an engine refuses, before any step, a method whose needs it does not serve.
GRAD = "grad"  # gradient of the step's loss at given points (one row per run)
HVP = "hvp"  # Hessian-vector product of the step's loss (on-line matrix momentum)
FORWARD = "forward"  # model outputs on the step's inputs, no derivative (ensemble Kalman inversion)
ONE_SAMPLE = "one_sample"  # the step's data is one sample drawn with replacement (annealed on-line SGD)
CAPABILITIES = (GRAD, HVP, FORWARD, ONE_SAMPLE)

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Hyperparameter:
    """One named hyperparameter of a method: a number, checked by ``check`` (``requirement`` says what it
    checks, for messages), with an optional ``default`` (``None``: required)."""

    name: str
    description: str
    check: Callable[[float], bool] = lambda value: math.isfinite(value)
    requirement: str = "be finite"
    default: float | None = None


class Oracle:
    """What one step may ask of the problem, on the data the engine drew for the step.

    ``points`` have one row per active run, in the state's run order. Engines subclass this and list the
    capabilities they serve in ``provides``; the rest raise.
    """

    provides: frozenset[str] = frozenset()
    # the forward map's independent blocks (``Problem.blocks``): ensemble methods may localise to them
    blocks: int = 1

    def grad(self, points: Tensor) -> Tensor:
        """Gradient of the step's loss at each run's point (``runs x dim``)."""
        raise self._missing(GRAD)

    def hvp(self, points: Tensor, vectors: Tensor, *, full: bool = False) -> Tensor:
        """Hessian of the step's loss at each run's point times that run's vector (``runs x dim``); ``full``: of
        the loss on the full training data instead (an exact-curvature reference for on-line methods)."""
        raise self._missing(HVP)

    def forward(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Model outputs on the step's inputs for each of a run's points (``points``: runs x n x dim, e.g. an
        ensemble of n members per run; outputs: runs x n x outputs, no derivative taken) and each run's
        observations ``y`` on the same data (runs x outputs): the "tell" of an ask/tell ensemble method."""
        raise self._missing(FORWARD)

    def _missing(self, capability: str) -> NotImplementedError:
        return NotImplementedError(f"this engine's oracle provides no {capability!r}; "
                                   f"it provides: {', '.join(sorted(self.provides)) or 'nothing'}")


class Method(ABC):
    """A registered method: its hyperparameters, its needs, and pure functions over a stacked state.

    Subclasses set ``name`` and ``description`` and implement ``columns``, ``init``, ``step``, ``iterate``
    and ``record``. Runs with equal ``stack_key`` share one stacked state and one ``step`` call per step
    index (their differences must live in the columns).
    """

    name: str
    description: str
    hyperparameters: tuple[Hyperparameter, ...] = ()
    needs: frozenset[str] = frozenset({GRAD})
    records: tuple[str, ...] = ("x", "m")

    def stack_key(self, columns: Mapping[str, float]) -> Hashable:
        """Runs (of this or other methods) with equal keys can share one state: the same state layout and
        ``step``, differing only in their columns. Default: the method's name. A method whose state shape
        depends on a hyperparameter (an ensemble size) adds it to the key."""
        return self.name

    def check(self, values: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The method's own hyperparameters, checked and completed with defaults, in declared order.

        Raises:
            ConfigError: an unknown or missing name, a value that is not a number or fails its check; the
                message names the key and lists the valid ones.
        """
        values = dict(values or {})
        valid = [p.name for p in self.hyperparameters]
        listing = f"valid hyperparameters: {', '.join(valid) or 'none'}"
        unknown = [k for k in values if k not in valid]
        if unknown:
            note = " (h and lam are the experiment's own keys)" if set(unknown) & {"h", "lam"} else ""
            raise ConfigError(f"method {self.name!r} has no hyperparameter(s) {', '.join(map(str, unknown))}; "
                              f"{listing}{note}")
        missing = [p.name for p in self.hyperparameters if p.name not in values and p.default is None]
        if missing:
            raise ConfigError(f"method {self.name!r} needs hyperparameter(s) {', '.join(missing)}; {listing}")
        out = {}
        for p in self.hyperparameters:
            value = values.get(p.name, p.default)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"method {self.name!r}: hyperparameter {p.name} must be a number, got {value!r}; "
                                  f"{listing}")
            value = float(value)
            if not p.check(value):
                raise ConfigError(f"method {self.name!r}: hyperparameter {p.name} must {p.requirement}, got {value}; "
                                  f"{listing}")
            out[p.name] = value
        return out

    @abstractmethod
    def columns(self, h: float, lam: float, **hyperparameters: float) -> dict[str, float]:
        """The per-run numbers the state holds, from the nominal ``h``, ``lam`` and the method's own values.

        Raises:
            ConfigError: ``h``, ``lam`` or a hyperparameter is invalid.
        """

    @abstractmethod
    def init(self, x0: Tensor, columns: Mapping[str, Tensor]) -> State:
        """The state at step 0 from the start points (``runs x dim``) and the columns (``runs x 1`` each)."""

    @abstractmethod
    def step(self, state: State, k: int, oracle: Oracle) -> State:
        """The state after step ``k`` (from ``x_k`` to ``x_{k+1}``); pure: ``state`` is not modified."""

    @abstractmethod
    def iterate(self, state: State) -> Tensor:
        """The runs' current iterates (``runs x dim``): where divergence is judged."""

    @abstractmethod
    def record(self, state: State) -> dict[str, Tensor]:
        """The vectors recorded per run, keyed by ``records`` (``x`` first: metrics are evaluated there)."""

    def select(self, state: State, index: np.ndarray | Sequence[int] | Tensor) -> State:
        """The runs at ``index`` (positions on the run axis), in that order."""
        return select_runs(state, index)

    def __repr__(self) -> str:
        return f"<method {self.name}>"


def select_runs(state: State, index: np.ndarray | Sequence[int] | Tensor) -> State:
    """The rows ``index`` of every leaf of a state: ``index_select`` on each tensor's device, numpy
    indexing for host-side arrays."""
    per_device: dict[torch.device, Tensor] = {}

    def on(device: torch.device) -> Tensor:
        if device not in per_device:
            per_device[device] = (index.to(device) if isinstance(index, Tensor)
                                  else torch.as_tensor(np.asarray(index, dtype=np.int64), device=device))
        return per_device[device]

    host = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index, dtype=np.int64)
    return {key: value[host] if isinstance(value, np.ndarray) else value.index_select(0, on(value.device))
            for key, value in state.items()}


def check_needs(method: Method, provides: frozenset[str], engine: str) -> None:
    """Refuse a method whose needs ``engine`` does not provide (before any step)."""
    missing = sorted(set(method.needs) - set(provides))
    if missing:
        raise ConfigError(f"method {method.name!r} needs {', '.join(missing)} of the problem, which engine "
                          f"{engine!r} does not provide (it provides: {', '.join(sorted(provides)) or 'nothing'})")
