"""One series: a (problem, method, lam, seed) trained at every learning rate of its h grid.

An order of convergence is a property of a whole h series, so a series is the unit of work: one
trajectory file with a column ``h`` and one metadata file. The single-run engines train a series
one run after another (``run_series``); the stacked engine trains many series at once
(``run_series_stacked``); both give the same columns and metadata.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..io import concat_columns
from ..optim import HeavyBallFamily, Method, check_needs, resolve_method
from ..problems import Problem, make_problem
from .stacked import PROVIDES as STACKED_PROVIDES
from .stacked import RunRequest, lockstep_iterations, resolve_device, resolve_dtype, run_many, run_stacked
from .functional_runner import PROVIDES as FUNCTIONAL_PROVIDES
from .functional_runner import run_functional
from .progress import Progress
from .recorder import TrajectoryRecorder
from .schedule import n_steps_for, record_steps

# Single-run engines (one run per call). "stacked" here trains one run through the stacked engine;
# ``run_series_stacked`` hands it whole shards of series, which is where it is fast.
ENGINES: dict[str, Callable] = {"functional": run_functional, "stacked": run_stacked}
STACKED_ENGINES = ("stacked",)
# What each engine's oracle serves (the Lightning engine runs the heavy-ball family's optimizer instead).
ENGINE_PROVIDES = {"functional": FUNCTIONAL_PROVIDES, "stacked": STACKED_PROVIDES}


def _lightning_engine():
    from .lightning_system import run_lightning  # imported lazily: Lightning is slow to import

    return run_lightning


@dataclass(frozen=True)
class SeriesSpec:
    """Everything that determines a series' trajectories (and nothing that does not)."""

    experiment: str
    problem: str
    method: str  # a method's label: its name, or name(k=v, ...) with its own hyperparameters (optim.methods)
    lam: float
    seed: int
    h: tuple[float, ...]
    t_max: float
    n_records: int = 200
    dense_steps: int = 0
    batch_size: int | None = None
    engine: str = "functional"
    problem_options: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"  # float32 only for curves (K4), never for orders
    device: str = "auto"  # stacked engine: auto (CUDA where present), cpu or cuda; the others run on the CPU
    samples: int | None = None  # steps of every run whatever its h (on-line methods' clock), else t_max / h
    # None: the method's vectors (x, m) at every recorded step; n: only at n evenly spaced recorded steps of each
    # run (its first and last among them), empty elsewhere (the loss and metrics stay at every recorded step)
    vector_records: int | None = None
    # None: the vectors other than x (the velocity m) wherever x is kept; n: only at the records with step < n (the
    # dense head, where K3 compares velocities), empty elsewhere
    velocity_steps: int | None = None
    # True: the path vectors go to the shard's vectors file, which only the predictions read (a network's vectors,
    # where no claim's measure reads them: ``sweep.vectors_apart``); the trajectory keeps the loss and metrics, with
    # empty vectors
    vectors_apart: bool = False

    def steps_for(self, h: float) -> int:
        """Steps of the run with learning rate ``h``: ``samples`` where set, else enough to reach ``t_max``."""
        return int(self.samples) if self.samples is not None else n_steps_for(self.t_max, h)

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


def check_engine(method: Method, engine: str) -> None:
    """Refuse a method that ``engine`` cannot train.

    Raises:
        ConfigError: the method needs what the engine's oracle does not provide, or the Lightning engine is
            asked for a method outside the heavy-ball family.
    """
    if engine == "lightning":
        if not isinstance(method, HeavyBallFamily):
            raise ConfigError(f"engine 'lightning' trains the heavy-ball family only, not method {method.name!r}; "
                              f"use engine functional or stacked")
        return
    if engine not in ENGINE_PROVIDES:
        raise ConfigError(f"unknown engine {engine!r}; valid engines: lightning, {', '.join(ENGINE_PROVIDES)}")
    check_needs(method, ENGINE_PROVIDES[engine], engine)


def series_problem(spec: SeriesSpec) -> Problem:
    """The series' problem in the series' dtype (on the CPU)."""
    problem = make_problem(spec.problem, seed=spec.seed, **spec.problem_options)
    dtype = resolve_dtype(spec.dtype)
    return problem if dtype == problem.x0.dtype else problem.to(dtype=dtype)


def series_runs(spec: SeriesSpec) -> list[dict[str, Any]]:
    """One entry per h: the method with its hyperparameters, the per-run coefficients it iterates
    (``columns``), the number of steps and the steps recorded."""
    method = resolve_method(spec.method)
    out = []
    for h in spec.h:
        n_steps = spec.steps_for(h)
        out.append(dict(h=h, method=method, columns=method.columns(h, spec.lam), n_steps=n_steps,
                        record_at=record_steps(n_steps, spec.n_records, spec.dense_steps)))
    return out


# The records of a run that keep its vectors when its experiment's claims read none along the path (for instance
# K4's curvature: the iterates at five evenly spaced records of its reference run).
SPARSE_VECTOR_RECORDS = 5


def sparse_positions(n_rows: int, n_keep: int) -> np.ndarray:
    """The ``n_keep`` evenly spaced positions among ``n_rows`` records (first and last included)."""
    return np.unique(np.linspace(0, n_rows - 1, min(n_keep, n_rows)).astype(int)) if n_rows else np.array([], int)


def series_output(spec: SeriesSpec, problem: Problem, runs: list[dict[str, Any]],
                  recorders: list[TrajectoryRecorder], device: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(columns, metadata)`` of a trained series, whichever engine trained it."""
    parts, entries = [], []
    for run, rec in zip(runs, recorders):
        cols = rec.columns()
        if spec.vector_records is not None:
            keep = set(sparse_positions(len(cols["step"]), spec.vector_records).tolist())
            for key in rec.vector_keys:
                cols[key] = [v if i in keep else v[:0] for i, v in enumerate(cols[key])]
        if spec.velocity_steps is not None:
            for key in rec.vector_keys[1:]:  # x first: the iterate stays wherever vectors are kept
                cols[key] = [v if k < spec.velocity_steps else v[:0] for k, v in zip(cols["step"], cols[key])]
        cols["h"] = np.full(len(cols["step"]), float(run["h"]))
        parts.append(cols)
        columns = run["columns"]
        entry = dict(h=run["h"])
        if isinstance(run["method"].method, HeavyBallFamily):
            entry.update(step_size=columns["step_size"], momentum=columns["lam"], lookahead=columns["a"])
        entries.append(entry | dict(columns=dict(columns), n_steps=run["n_steps"],
                                    diverged=rec.diverged_at is not None, diverged_at_step=rec.diverged_at))
    meta = dict(spec=spec.as_dict(), dim=problem.dim, problem_options=problem.options, runs=entries,
                x_kind="apart" if spec.vectors_apart else "full" if spec.vector_records is None else "sparse",
                m_kind="dense_head" if spec.velocity_steps is not None else "as_x", dtype=spec.dtype, device=device,
                torch_version=torch.__version__)
    return concat_columns(parts), meta


def run_series(spec: SeriesSpec, log: Callable[[str], None] = print) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train every h of the series one run after another; return ``(columns, metadata)``."""
    problem = series_problem(spec)
    engine = get_engine(spec.engine)
    runs, recorders = series_runs(spec), []
    for run in runs:
        start = time.perf_counter()
        rec = engine(problem, method=run["method"], h=run["h"], lam=spec.lam, n_steps=run["n_steps"],
                     record_at=run["record_at"], batch_size=spec.batch_size, seed=spec.seed)
        seconds = time.perf_counter() - start
        recorders.append(rec)
        n_steps = run["n_steps"]
        log(f"{spec.experiment} {spec.method} lam={spec.lam} seed={spec.seed} h={run['h']:.3g}: {n_steps} steps "
            f"in {seconds:.2f}s ({n_steps / max(seconds, 1e-9):.0f} steps/s)"
            + (f", diverged at step {rec.diverged_at}" if rec.diverged_at is not None else ""))
    return series_output(spec, problem, runs, recorders, "cpu")


def run_series_stacked(specs: list[SeriesSpec], log: Callable[[str], None] = print, *,
                       progress: bool = True) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Train every run of every series at once with the stacked engine; one ``(columns, metadata)`` per spec.

    Specs of different dtype or device go to separate engine calls; within one call the engine stacks
    all runs that share a problem instance (``stacked.run_many``).
    """
    problems = [series_problem(spec) for spec in specs]
    runs = [series_runs(spec) for spec in specs]
    recorders: list[list[TrajectoryRecorder | None]] = [[None] * len(r) for r in runs]
    devices: list[str] = [""] * len(specs)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault((spec.dtype, spec.device), []).append(i)
    for (dtype, device_name), members in groups.items():
        device = resolve_device(device_name, problems[members[0]])
        requests, owners = [], []
        for i in members:
            for j, run in enumerate(runs[i]):
                requests.append(RunRequest(problems[i], run["method"], run["h"], specs[i].lam, run["n_steps"],
                                           run["record_at"], specs[i].batch_size, specs[i].seed))
                owners.append((i, j))
        label = f"{specs[members[0]].experiment} ({len(members)} series, {device.type}, {dtype})"
        meter = (Progress(len(requests), sum(r.n_steps for r in requests), log=log, label=label,
                          total_iterations=lockstep_iterations(requests)) if progress else None)
        log(f"{label}: {len(requests)} runs, {sum(r.n_steps for r in requests)} steps in all")
        for (i, j), rec in zip(owners, run_many(requests, device=device, dtype=dtype, progress=meter)):
            recorders[i][j] = rec
        if meter is not None:
            meter.close()
        for i in members:
            devices[i] = device.type
    return [series_output(spec, problems[i], runs[i], recorders[i], devices[i]) for i, spec in enumerate(specs)]
