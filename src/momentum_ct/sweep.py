"""From a validated configuration to the sweep: one ``SeriesSpec`` per (experiment, method, lam, seed).

The JSON schema of the workflow checks shapes and types; this module checks what only the package
knows (registered problems, methods, claims and problem options) and expands the h grids.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import torch

from .claims.claim import REQUIREMENTS
from .claims.common import VECTOR_MAX_DIM
from .claims.registry import CLAIMS
from .errors import ConfigError, unknown_name
from .optim import EnsembleKalmanInversion, check_hyperparameters, resolve_method
from .optim.annealed import AnnealedSGD, MatrixMomentum
from .problems import PROBLEMS, check_problem_options, make_problem
from .train.series import SPARSE_VECTOR_RECORDS, STACKED_ENGINES, SeriesSpec, check_engine
from .train.shard import problem_dimension
from .train.stacked import check_forward

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


def steps_of(exp: dict[str, Any], lam: float, h: float) -> float:
    """Steps of one run: ``samples``, or ``horizon (1 - lam) / h`` (the horizon is in rescaled time)."""
    return float(exp["samples"]) if "samples" in exp else exp["horizon"] * (1.0 - lam) / h


def seed_list(exp: dict[str, Any]) -> list[int]:
    """An experiment's seeds: a list as given, or ``{count, start}`` for ``start .. start + count - 1``."""
    seeds = exp.get("seeds", [0])
    if isinstance(seeds, dict):
        start, count = int(seeds.get("start", 0)), int(seeds["count"])
        if count < 1 or start < 0:
            raise ConfigError(f"seeds: count must be >= 1 and start >= 0, got {seeds}")
        return list(range(start, start + count))
    return [int(s) for s in seeds]


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


# Sizes refused unless the config's ``limits`` raise them (config/paper.yaml: 1.5e9 run-steps, raised there; the longest run
# 2.1e6 steps, 13 GB of trajectories).
LIMITS = {"run_steps": 1e9, "steps_per_run": 1e7, "result_gb": 50.0}


def recorded_bytes(rows: float, dim: int, velocity_rows: float | None = None) -> float:
    """Bytes of the recorded vectors (float64) of ``rows`` trajectory rows: ``x`` in each, ``m`` in each or in
    ``velocity_rows`` of them."""
    return (rows + (rows if velocity_rows is None else min(rows, velocity_rows))) * dim * 8


def limits(config: dict[str, Any]) -> dict[str, float]:
    return LIMITS | dict(config.get("limits") or {})


def _unmet(requirement: str, exp: dict[str, Any], problem, methods, grids: dict[float, tuple]) -> bool:
    """Whether an experiment lacks what a claim needs (``claims.claim.REQUIREMENTS``)."""
    if requirement == "several_h":
        return any(len(g) < 3 for g in grids.values())
    if requirement == "momentum":
        return not (any(getattr(m.method, "uses_momentum", False) for m in methods) and max(exp["lam"]) > 0)
    if requirement == "network":
        return problem.module is None or not problem.test_data
    if requirement == "test_accuracy":
        return problem.accuracy is None or not problem.test_data
    if requirement == "rescaled_gd":
        return not any(m.name == "gd_rescaled" for m in methods)
    if requirement == "graph_prior":
        return "sqrt_c" not in problem.extra or not all(isinstance(m.method, EnsembleKalmanInversion) for m in methods)
    if requirement == "sgd_and_ensemble":
        return not (any(m.name == "gd" for m in methods)
                    and any(isinstance(m.method, EnsembleKalmanInversion) for m in methods))
    if requirement == "fixed_step_ensemble":
        return exp.get("batch_size") is not None or not all(
            isinstance(m.method, EnsembleKalmanInversion) and m.hyperparameters["adaptive"] == 0
            and m.hyperparameters["perturb"] == 0 for m in methods)
    if requirement == "late_time_prediction":
        return ("hessian_at_minimum" not in problem.extra and problem.hessian is None) or \
            "gradient_covariance" not in problem.extra
    if requirement == "annealed":
        return not any(isinstance(m.method, AnnealedSGD) for m in methods)
    if requirement == "momentum_pair":
        return not (any(m.name == "annealed_sgd" for m in methods) and 0 in exp["lam"] and max(exp["lam"]) > 0)
    if requirement == "matrix_momentum":
        return not any(isinstance(m.method, MatrixMomentum) for m in methods)
    return False


def validate_config(config: dict[str, Any]) -> None:
    """Registry-level checks, each naming the offending key; raises ``ConfigError``.

    Problems are built once here (their sizes are bounded by their factories), so what a claim needs of an
    experiment, and the sweep's size, are known before any job.
    """
    experiments = config.get("experiments") or {}
    if not experiments:
        raise ConfigError("experiments: the config has no experiments")
    bounds = limits(config)
    total_steps, total_bytes = 0.0, 0.0
    for name, exp in experiments.items():
        where = f"experiments.{name}"
        if exp["problem"] not in PROBLEMS:
            raise ConfigError(f"{where}.problem: " + str(unknown_name("problem", exp["problem"], PROBLEMS)))
        options = exp.get("problem_options", {})
        try:
            check_problem_options(exp["problem"], options)
        except ConfigError as err:
            # a bad value's message starts with its option's name, an unknown option's does not
            sep = "." if str(err).split(" ")[0].rstrip(":") in options else ": "
            raise ConfigError(f"{where}.problem_options{sep}{err}") from None
        try:
            seeds = seed_list(exp)
        except ConfigError as err:
            raise ConfigError(f"{where}.{err}") from None
        try:
            problem = make_problem(exp["problem"], seed=seeds[0], **options)
        except ConfigError as err:
            raise ConfigError(f"{where}.problem_options: {err}") from None
        method_labels(exp, where)
        methods = [resolve_method(m) for m in exp["methods"]]
        for m in methods:
            try:
                check_forward(m.method, problem)
            except ConfigError as err:
                raise ConfigError(f"{where}.methods: {err}") from None
        batch_size = exp.get("batch_size")
        if batch_size is not None and problem.n_train == 0:
            raise ConfigError(f"{where}.batch_size: problem {exp['problem']!r} has no training data to draw "
                              "mini-batches from; use null")
        if batch_size is not None and batch_size >= problem.n_train:
            raise ConfigError(f"{where}.batch_size: {batch_size} is not allowed: problem {exp['problem']!r} has "
                              f"{problem.n_train} training samples, a mini-batch must be smaller (null: full batch)")
        claims = exp.get("claims")
        if not claims:
            raise ConfigError(f"{where}.claims: an experiment without claims would be trained and never judged; "
                              f"name at least one of: {', '.join(sorted(CLAIMS))}")
        for c in claims:
            if c not in CLAIMS:
                raise ConfigError(f"{where}.claims: " + str(unknown_name("claim", c, CLAIMS)))
        grids = {}
        for lam in exp["lam"]:
            try:
                grids[lam] = h_grid(exp["h"], lam)
            except ConfigError as err:
                raise ConfigError(f"{where}.h (lam={lam}): {err}") from None
        for c in claims:
            for requirement in CLAIMS[c].requires:
                if _unmet(requirement, exp, problem, methods, grids):
                    raise ConfigError(f"{where}.claims: claim {c} needs {REQUIREMENTS[requirement]}; "
                                      f"experiment {name} does not offer it")
        if ("horizon" in exp) == ("samples" in exp):
            raise ConfigError(f"{where}: give horizon (rescaled time) or samples (steps)"
                              + (", not both" if "horizon" in exp else ""))
        if exp.get("horizon", 1) <= 0:
            raise ConfigError(f"{where}.horizon must be positive, got {exp['horizon']}")
        if exp.get("samples", 1) < 1:
            raise ConfigError(f"{where}.samples must be >= 1, got {exp['samples']}")
        longest = max(steps_of(exp, lam, h) for lam, g in grids.items() for h in g)
        if longest > bounds["steps_per_run"]:
            raise ConfigError(f"{where}.h: the finest h with this horizon takes {longest:.3g} steps, above the limit "
                              f"of {bounds['steps_per_run']:.3g} steps per run "
                              "(raise limits.steps_per_run to allow it)")
        seeds, n_methods = len(seeds), len(methods)
        records = int(exp.get("n_records", 200)) + 1 + int(exp.get("dense_steps", 0))
        velocity = velocity_steps(exp)  # the dense head records every step: that many rows keep m
        if not reads_path_vectors(exp):
            records = min(records, SPARSE_VECTOR_RECORDS)  # vectors kept at a few records per run
        for lam, g in grids.items():
            total_steps += seeds * n_methods * sum(steps_of(exp, lam, h) for h in g)
            runs = seeds * n_methods * len(g)
            total_bytes += recorded_bytes(runs * records, problem.dim, None if velocity is None else runs * velocity)
        engine, device = exp.get("engine", "functional"), exp.get("device", "auto")
        if device == "cuda" and engine not in STACKED_ENGINES:
            raise ConfigError(f"{where}.device: only the stacked engine runs on cuda; "
                              f"engine {engine!r} runs on the cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{where}.device: 'cuda' was asked for but torch finds no CUDA device here; "
                              f"valid devices here: auto, cpu")
        dtype = exp.get("dtype", "float64")
        refused = sorted(c for c in exp.get("claims", []) if dtype not in CLAIMS[c].dtypes)
        if refused:
            accept = sorted(c for c, claim in CLAIMS.items() if dtype in claim.dtypes)
            raise ConfigError(f"{where}.dtype: claim(s) {', '.join(refused)} cannot be judged on {dtype} "
                              f"trajectories (orders of convergence need float64); claims that accept {dtype}: "
                              f"{', '.join(accept) or 'none'}")
    if total_steps > bounds["run_steps"]:
        raise ConfigError(f"experiments: the sweep takes {total_steps:.3g} run-steps, above the limit of "
                          f"{bounds['run_steps']:.3g} (raise limits.run_steps to allow it)")
    if total_bytes / 1e9 > bounds["result_gb"]:
        raise ConfigError(f"experiments: the sweep would record about {total_bytes / 1e9:.3g} GB of trajectories, "
                          f"above the limit of {bounds['result_gb']:g} GB (raise limits.result_gb to allow it)")


def reads_path_vectors(exp: dict[str, Any]) -> bool:
    """Whether some claim of the experiment reads its runs' vectors along the whole path (else its runs keep them
    at ``SPARSE_VECTOR_RECORDS`` records each)."""
    return any(CLAIMS[c].path_vectors for c in exp["claims"])


def vectors_apart(exp: dict[str, Any]) -> bool:
    """Whether the experiment's path vectors go to a temporary file that only its prediction jobs read: they are a
    network's (more than ``VECTOR_MAX_DIM`` dimensions, where the predictions keep per-step distances instead of
    predicted vectors) and no claim's measure reads them (``Claim.measure_vectors``). They are most of a network
    experiment's trajectories, and the measures need only what the predictions make of them."""
    if not reads_path_vectors(exp) or any(CLAIMS[c].measure_vectors for c in exp["claims"]):
        return False
    return problem_dimension(exp["problem"], json.dumps(exp.get("problem_options", {}), sort_keys=True)) > VECTOR_MAX_DIM


def velocity_steps(exp: dict[str, Any]) -> int | None:
    """``dense_steps`` where the experiment's runs keep their velocities in the dense head only (they keep vectors
    along the path and no claim reads velocities beyond the head), else ``None``."""
    if not reads_path_vectors(exp) or any(CLAIMS[c].path_velocity for c in exp["claims"]):
        return None
    return int(exp.get("dense_steps", 0))


def expand_series(config: dict[str, Any], validate: bool = True) -> list[SeriesSpec]:
    """The config's series. ``validate=False`` skips ``validate_config`` (which builds every problem), for a
    config already validated in this run, e.g. inside a cluster job."""
    if validate:
        validate_config(config)
    out = []
    for name, exp in config["experiments"].items():
        path_vectors = reads_path_vectors(exp)
        apart = vectors_apart(exp)
        for method in method_labels(exp, f"experiments.{name}"):
            for lam in exp["lam"]:
                for seed in seed_list(exp):
                    out.append(SeriesSpec(
                        experiment=name, problem=exp["problem"], method=method, lam=float(lam), seed=int(seed),
                        h=h_grid(exp["h"], lam),
                        # horizon is in rescaled time tau = t / (1 - lam): the same dynamics for every lam;
                        # samples fixes the steps instead (t_max is then the longest run's k h)
                        t_max=(float(exp["horizon"]) * (1.0 - float(lam)) if "samples" not in exp
                               else float(exp["samples"]) * max(h_grid(exp["h"], lam))),
                        samples=None if "samples" not in exp else int(exp["samples"]),
                        n_records=int(exp.get("n_records", 200)), dense_steps=int(exp.get("dense_steps", 0)),
                        batch_size=exp.get("batch_size"), engine=exp.get("engine", "functional"),
                        problem_options=dict(exp.get("problem_options", {})),
                        dtype=exp.get("dtype", "float64"), device=exp.get("device", "auto"),
                        vector_records=None if path_vectors else SPARSE_VECTOR_RECORDS,
                        velocity_steps=velocity_steps(exp),
                        vectors_apart=apart,
                    ))
    return out


def sweep_table(config: dict[str, Any], validate: bool = True) -> pd.DataFrame:
    """One row per series, identified by ``SERIES_COLUMNS``, with its spec and claims."""
    rows = []
    for spec in expand_series(config, validate):
        claims = config["experiments"][spec.experiment].get("claims", [])
        rows.append(dict(experiment=spec.experiment, method=spec.method, lam=spec.lam, seed=spec.seed,
                         problem=spec.problem, claims=",".join(claims), spec=spec))
    return pd.DataFrame(rows)


def shard_table(config: dict[str, Any], validate: bool = True) -> pd.DataFrame:
    """Series grouped into shards (one training job each) of at most ``series_per_shard`` series.

    Series are taken in sweep order within an experiment, so the assignment is deterministic.
    """
    table = sweep_table(config, validate)
    default = int(config.get("series_per_shard", 8))
    per_shard = {}
    for name, exp in config["experiments"].items():
        per_shard[name] = int(exp.get("series_per_shard", default))
        if per_shard[name] < 1:
            where = f"experiments.{name}." if "series_per_shard" in exp else ""
            raise ConfigError(f"{where}series_per_shard must be >= 1, got {per_shard[name]}")
    table["shard"] = table.groupby("experiment", sort=False).cumcount() // table["experiment"].map(per_shard)
    return table
