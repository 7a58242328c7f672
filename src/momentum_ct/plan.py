"""What a configuration asks the pipeline to do: the sweep, the claims, their figures and captions, and the
code each stage runs. The workflow asks this module and names no claim, problem or method itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import plugins as plugin_loader
from .claims.registry import get_claim
from .optim import resolve_method
from .provenance import fingerprint, module_of
from .sweep import recorded_bytes, shard_table
from .train.shard import estimate_memory_mb

# Modules each stage starts from (their import closure is the stage's code).
TRAIN_MODULES = ("momentum_ct.train.shard",)  # not stages: it imports the claims, which training never runs
CLAIM_MODULES = ("momentum_ct.stages", "momentum_ct.claims.measures")
JUDGE_MODULES = ("momentum_ct.stages", "momentum_ct.claims.judge")


@dataclass
class Plan:
    config: dict[str, Any]
    plugins: list[plugin_loader.Plugin]
    sweep: pd.DataFrame
    claims: list[str] = field(default_factory=list)
    _problems: dict[str, Any] = field(default_factory=dict, repr=False)  # experiment -> its first series' problem

    # -- what to build --------------------------------------------------------------------------------
    def predicted_claims(self) -> list[str]:
        return [c for c in self.claims if get_claim(c).predict is not None]

    def experiments_of(self, claim_id: str) -> list[str]:
        return [e for e, exp in self.config["experiments"].items() if claim_id in exp.get("claims", [])]

    def figures(self, claim_id: str, source: str) -> list[str]:
        return get_claim(claim_id).figure_names(source)

    def captions(self, claim_id: str) -> dict[str, str]:
        """Every figure's caption, keyed by its path under the claim's figure folder without ``.png``
        (``<figure>`` or ``<experiment>/<figure>``)."""
        claim = get_claim(claim_id)
        return {name: claim.caption(figure) for name, (figure, _) in claim.figure_files(self.experiments_of(claim_id)).items()}

    def size(self) -> dict[str, Any]:
        """How big the sweep is: series, shards, runs, run-steps, the longest run, trajectory bytes, job memory."""
        specs = list(self.sweep["spec"])
        steps = [s.steps_for(h) for s in specs for h in s.h]
        rows = sum(len(s.h) * (s.n_records + 1 + s.dense_steps) for s in specs)
        vector_rows = [min(s.n_records + 1 + s.dense_steps, s.vector_records or float("inf")) for s in specs]
        trajectory_bytes = sum(recorded_bytes(len(s.h) * n, self._problem(s.experiment).dim,
                                              None if s.velocity_steps is None else len(s.h) * s.velocity_steps)
                               for s, n in zip(specs, vector_rows))
        shards = self.sweep.groupby(["experiment", "shard"])["spec"].apply(list)
        return dict(series=len(specs), shards=len(shards), runs=len(steps), run_steps=float(sum(steps)),
                    longest_run=max(steps, default=0), recorded_rows=rows, trajectory_gb=trajectory_bytes / 1e9,
                    job_memory_mb=max((estimate_memory_mb(list(s)) for s in shards), default=0))

    def vectors_apart(self, experiment: str) -> bool:
        """Whether the experiment's training jobs set their path vectors apart for the prediction jobs
        (``SeriesSpec.vectors_apart``)."""
        return bool(self._first_spec(experiment).vectors_apart)

    def train_gpus(self, experiment: str) -> int:
        """GPUs a training job of the experiment uses (0 or 1): the workflow's ``gpu`` resource, so that a
        machine's GPU is shared by as many training jobs as its profile allows, never by all of them."""
        from .train.series import STACKED_ENGINES
        from .train.stacked import resolve_device

        spec = self._first_spec(experiment)
        if spec.engine not in STACKED_ENGINES:
            return 0
        return int(resolve_device(spec.device, self._problem(experiment)).type == "cuda")

    def _first_spec(self, experiment: str):
        return self.sweep[self.sweep["experiment"] == experiment]["spec"].iloc[0]

    def _problem(self, experiment: str):
        """The problem of the experiment's first series, built once (the workflow asks per job)."""
        if experiment not in self._problems:
            from .problems import make_problem

            spec = self._first_spec(experiment)
            self._problems[experiment] = make_problem(spec.problem, seed=spec.seed, **spec.problem_options)
        return self._problems[experiment]

    # -- the code each job runs -----------------------------------------------------------------------
    def _plugin_files(self, names: set[tuple[str, str]]) -> list[Path]:
        return [p.path for p in self.plugins if p.registered & names]

    def _experiment_names(self, experiments) -> set[tuple[str, str]]:
        names = set()
        for e in experiments:
            exp = self.config["experiments"][e]
            names.add(("problem", exp["problem"]))
            names.update(("method", resolve_method(m).name) for m in exp["methods"])
        return names

    def train_code(self, experiment: str) -> str:
        return fingerprint(TRAIN_MODULES, self._plugin_files(self._experiment_names([experiment])))

    def claim_code(self, claim_id: str, stage: str) -> str:
        """``stage``: ``predict`` or ``measure``."""
        claim = get_claim(claim_id)
        fn = claim.predict if stage == "predict" else claim.measure
        names = self._experiment_names(self.experiments_of(claim_id)) | {("claim", claim_id)}
        return fingerprint(CLAIM_MODULES + (module_of(fn),), self._plugin_files(names))

    def judge_code(self) -> str:
        return fingerprint(JUDGE_MODULES, self._plugin_files({("claim", c) for c in self.claims}))

    def draw_code(self, claim_id: str) -> str:
        """The code that draws all of a claim's figures."""
        modules = sorted({module_of(f.draw) for f in get_claim(claim_id).figures.values()})
        return fingerprint(("momentum_ct.stages", *modules), self._plugin_files({("claim", claim_id)}))


def make_plan(config: dict[str, Any], config_dir: str | Path = ".", validate: bool = True) -> Plan:
    """Load the config's plug-ins, validate it against the registries (unless ``validate`` is false: a config
    the run has validated already) and expand the sweep."""
    loaded = plugin_loader.load(list(config.get("plugins", [])), config_dir)
    sweep = shard_table(config, validate)
    claims = sorted({c for exp in config["experiments"].values() for c in exp.get("claims", [])})
    return Plan(config, loaded, sweep, claims)
