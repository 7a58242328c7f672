"""One series: a (problem, method, lam, seed) trained at every learning rate of its h grid.

An order of convergence is a property of a whole h series, so a series is the unit of work: one
trajectory file with a column ``h`` and one metadata file.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..io import concat_columns
from ..optim import coefficients
from ..problems import make_problem
from .functional_runner import run_functional
from .schedule import n_steps_for, record_steps

ENGINES: dict[str, Callable] = {"functional": run_functional}


def _lightning_engine():
    from .lightning_system import run_lightning  # imported lazily: Lightning is slow to import

    return run_lightning


@dataclass(frozen=True)
class SeriesSpec:
    """Everything that determines a series' trajectories (and nothing that does not)."""

    experiment: str
    problem: str
    method: str
    lam: float
    seed: int
    h: tuple[float, ...]
    t_max: float
    n_records: int = 200
    dense_steps: int = 0
    batch_size: int | None = None
    engine: str = "functional"
    problem_options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["h"] = list(self.h)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SeriesSpec":
        d = dict(d)
        d["h"] = tuple(d["h"])
        return cls(**d)


def get_engine(name: str):
    if name == "lightning":
        return _lightning_engine()
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid engines: lightning, {', '.join(ENGINES)}")
    return ENGINES[name]


def run_series(spec: SeriesSpec, log: Callable[[str], None] = print) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train every h of the series; return ``(columns, metadata)``."""
    problem = make_problem(spec.problem, seed=spec.seed, **spec.problem_options)
    engine = get_engine(spec.engine)
    parts, runs = [], []
    for h in spec.h:
        step, lam, a = coefficients(spec.method, h, spec.lam)
        n_steps = n_steps_for(spec.t_max, h)
        start = time.perf_counter()
        rec = engine(problem, h=h, step=step, lam=lam, a=a, n_steps=n_steps,
                     record_at=record_steps(n_steps, spec.n_records, spec.dense_steps),
                     batch_size=spec.batch_size, seed=spec.seed)
        seconds = time.perf_counter() - start
        cols = rec.columns()
        cols["h"] = [h] * len(cols["step"])
        parts.append(cols)
        runs.append(dict(h=h, step_size=step, momentum=lam, lookahead=a, n_steps=n_steps,
                         diverged=rec.diverged_at is not None, diverged_at_step=rec.diverged_at))
        log(f"{spec.experiment} {spec.method} lam={spec.lam} seed={spec.seed} h={h:.3g}: {n_steps} steps "
            f"in {seconds:.2f}s ({n_steps / max(seconds, 1e-9):.0f} steps/s)"
            + (f", diverged at step {rec.diverged_at}" if rec.diverged_at is not None else ""))
    meta = dict(spec=spec.as_dict(), dim=problem.dim, problem_options=problem.options, runs=runs,
                x_kind="full", dtype="float64", torch_version=torch.__version__)
    return concat_columns(parts), meta
