"""From a validated configuration to the sweep: one ``SeriesSpec`` per (experiment, method, lam, seed).

The JSON schema of the workflow checks shapes and types; this module checks what only the package
knows (registered problems, methods, claims and problem options) and expands the h grids.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .claims.registry import CLAIMS
from .errors import ConfigError, unknown_name
from .optim import check_hyperparameters, resolve_method
from .problems import PROBLEMS, check_problem_options
from .train.series import STACKED_ENGINES, SeriesSpec, check_engine

SERIES_COLUMNS = ["experiment", "method", "lam", "seed"]


def h_grid(spec: Any, lam: float) -> tuple[float, ...]:
    """Learning rates of a series, coarsest first.

    A list is used as given. ``{start, halvings, scale_with_momentum}`` gives
    ``start * 2^-j`` for ``j = 0..halvings``, times ``(1 - lam)^2`` when ``scale_with_momentum``:
    then ``h / (1 - lam)^2``, the number that decides the asymptotic regime, is the same for every lam.
    """
    if isinstance(spec, (list, tuple)):
        grid = tuple(float(h) for h in spec)
    else:
        if int(spec["halvings"]) < 0:
            raise ConfigError(f"halvings must be >= 0, got {spec['halvings']}")
        scale = (1.0 - lam) ** 2 if spec.get("scale_with_momentum", False) else 1.0
        grid = tuple(spec["start"] * scale * 2.0**-j for j in range(int(spec["halvings"]) + 1))
    if not grid:
        raise ConfigError("the list of learning rates h is empty")
    for h in grid:
        check_hyperparameters(h, lam)
    return tuple(sorted(grid, reverse=True))


def method_labels(exp: dict[str, Any], where: str = "experiment") -> list[str]:
    """The series labels of an experiment's ``methods`` list, checked.

    An entry is a registered name (``hb``), or a mapping naming a method with values of its own
    hyperparameters (``{name: heavy_ball_family, a: 0.3}``), or that mapping's label
    (``heavy_ball_family(a=0.3)``). Each becomes its label, the series key ``method``.

    Raises:
        ConfigError: unknown method or bad hyperparameters (naming the key and the valid ones), two entries
            with the same label, or a method the experiment's engine cannot train.
    """
    labels: list[str] = []
    engine = exp.get("engine", "functional")
    for entry in exp["methods"]:
        try:
            spec = resolve_method(entry)
            check_engine(spec.method, engine)
        except ConfigError as err:
            raise ConfigError(f"{where}.methods: {err}") from None
        if spec.label in labels:
            raise ConfigError(f"{where}.methods: {spec.label!r} is listed twice")
        labels.append(spec.label)
    return labels


def validate_config(config: dict[str, Any]) -> None:
    """Registry-level checks, each naming the offending key; raises ``ConfigError``."""
    experiments = config.get("experiments") or {}
    if not experiments:
        raise ConfigError("config has no experiments")
    for name, exp in experiments.items():
        where = f"experiments.{name}"
        if exp["problem"] not in PROBLEMS:
            raise ConfigError(f"{where}.problem: " + str(unknown_name("problem", exp["problem"], PROBLEMS)))
        try:
            check_problem_options(exp["problem"], exp.get("problem_options", {}))
        except ConfigError as err:
            raise ConfigError(f"{where}.problem_options: {err}") from None
        method_labels(exp, where)
        for c in exp.get("claims", []):
            if c not in CLAIMS:
                raise ConfigError(f"{where}.claims: " + str(unknown_name("claim", c, CLAIMS)))
        for lam in exp["lam"]:
            try:
                h_grid(exp["h"], lam)
            except ConfigError as err:
                raise ConfigError(f"{where}.h (lam={lam}): {err}") from None
        if exp["horizon"] <= 0:
            raise ConfigError(f"{where}.horizon must be positive, got {exp['horizon']}")
        engine, device = exp.get("engine", "functional"), exp.get("device", "auto")
        if device == "cuda" and engine not in STACKED_ENGINES:
            raise ConfigError(f"{where}.device: only the stacked engine runs on cuda; "
                              f"engine {engine!r} runs on the cpu")
        dtype = exp.get("dtype", "float64")
        refused = sorted(c for c in exp.get("claims", []) if dtype not in CLAIMS[c].dtypes)
        if refused:
            raise ConfigError(f"{where}.dtype: claim(s) {', '.join(refused)} cannot be judged on {dtype} "
                              f"trajectories (orders of convergence need float64); claims that accept {dtype}: "
                              f"{', '.join(sorted(c for c, claim in CLAIMS.items() if dtype in claim.dtypes)) or 'none'}")


def expand_series(config: dict[str, Any]) -> list[SeriesSpec]:
    validate_config(config)
    out = []
    for name, exp in config["experiments"].items():
        for method in method_labels(exp, f"experiments.{name}"):
            for lam in exp["lam"]:
                for seed in exp.get("seeds", [0]):
                    out.append(SeriesSpec(
                        experiment=name, problem=exp["problem"], method=method, lam=float(lam), seed=int(seed),
                        h=h_grid(exp["h"], lam),
                        # horizon is in rescaled time tau = t / (1 - lam): the same dynamics for every lam
                        t_max=float(exp["horizon"]) * (1.0 - float(lam)),
                        n_records=int(exp.get("n_records", 200)), dense_steps=int(exp.get("dense_steps", 0)),
                        batch_size=exp.get("batch_size"), engine=exp.get("engine", "functional"),
                        problem_options=dict(exp.get("problem_options", {})),
                        dtype=exp.get("dtype", "float64"), device=exp.get("device", "auto"),
                    ))
    return out


def sweep_table(config: dict[str, Any]) -> pd.DataFrame:
    """One row per series, identified by ``SERIES_COLUMNS``, with its spec and claims."""
    rows = []
    for spec in expand_series(config):
        claims = config["experiments"][spec.experiment].get("claims", [])
        rows.append(dict(experiment=spec.experiment, method=spec.method, lam=spec.lam, seed=spec.seed,
                         problem=spec.problem, claims=",".join(claims), spec=spec))
    return pd.DataFrame(rows)


def shard_table(config: dict[str, Any]) -> pd.DataFrame:
    """Series grouped into shards (one training job each) of at most ``series_per_shard`` series.

    Series are taken in sweep order within an experiment, so the assignment is deterministic.
    """
    table = sweep_table(config)
    per_shard = int(config.get("series_per_shard", 8))
    if per_shard < 1:
        raise ConfigError(f"series_per_shard must be >= 1, got {per_shard}")
    table["shard"] = table.groupby("experiment", sort=False).cumcount() // per_shard
    return table
