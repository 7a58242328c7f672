"""The pipeline itself on a real SLURM cluster, through the project's workflow profile.

The CI config (.test/config.yaml) runs through ``--workflow-profile workflow/profiles/slurm`` on the
one-node cluster of slurm_cluster.py (``cluster`` fixture in conftest.py), with only the options a
cluster user types (account and partition) plus test-only options for a cluster without an
accounting database (``TEST_ONLY_ARGS``).  Three Snakemake runs go on side by side, started together
by the ``runs`` fixture, because much of a cluster run is waiting for the next status check:

* the reference is the CI config's local run (``ci_run`` in conftest.py, shared with test_pipeline.py);
* ``cluster``: the pipeline on the cluster up to the verdict (training, predictions, measures, claims),
  site values from a user profile; one of its group jobs is cancelled with scancel while it trains, and
  the profile's retries must finish the pipeline anyway, with every file equal to the reference's;
* ``memory``: one training job whose first attempt is given too little memory (a test-only
  ``--set-resources``), site values on the command line; SLURM kills it, Snakemake says so and retries
  it with more;
* ``timeout``: one training job that outlasts its time limit of one minute (a test-only problem whose
  first gradient waits, tests/plugins/slow_start.py); SLURM ends it, Snakemake says so and retries it
  with a longer limit.

Outputs of the cluster runs must equal the local reference byte for byte: every job sets torch to
the rule's thread count (1) on both sides, so the floating-point operations are the same.

The cluster runs stop before the figures (``--omit-from`` the drawing rule): drawing runs the same
code as the local run, and that the profile groups the drawing rule is checked by a dry run
(test_slurm_profile.py); drawing would lengthen every claim's group job of the cluster run.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from momentum_ct.io import read_json

try:
    from slurm_cluster import SnakemakeRun
except ImportError:  # tests/ imported as a package
    from .slurm_cluster import SnakemakeRun

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
TEST_CONFIG = REPO / ".test" / "config.yaml"

# Hard limit of one Snakemake run (seconds).
RUN_LIMIT = 900

# What a cluster user adds to the profile (README): account and partition of the site.
ACCOUNT = "momentumct"
SITE_ARGS = ["--default-resources", f"slurm_account={ACCOUNT}", "slurm_partition=debug"]

# Only for this cluster: it has no accounting database, so job states come from squeue (see
# README_slurm.md), and the first status check comes after 2 s instead of 40 s.  Logs of successful
# jobs are kept so that the tests can count submissions.
TEST_ONLY_ARGS = [
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-keep-successful-logs",
]

# The memory test: one training job, 400 MB on the first attempt (the job step holds a Snakemake
# and the training process, about 0.6 GB together), five times that on the retry.
MEMORY_TARGET = "results/runs/experiment~k1_quadratic/shard~0/trajectory.parquet"
MEMORY_RESOURCES = "train_shard:mem_mb=400*5**(attempt-1)"

# The time-limit test: one training job of a one-experiment config whose problem waits 110 s before its
# first gradient; one minute on the first attempt, three on the retry.
SLOW_PLUGIN = REPO / "tests" / "plugins" / "slow_start.py"
TIMEOUT_TARGET = "results/runs/experiment~slow/shard~0/trajectory.parquet"
TIMEOUT_RESOURCES = "train_shard:runtime=1+2*(attempt-1)"


def slow_config(path: Path) -> Path:
    settings = {k: v for k, v in yaml.safe_load(TEST_CONFIG.read_text()).items() if k != "experiments"}
    path.write_text(yaml.safe_dump({
        **settings,
        "plugins": [str(SLOW_PLUGIN)],
        "experiments": {"slow": {
            "claims": ["K1"], "problem": "slow_start", "methods": ["hb"], "lam": [0.5], "seeds": [0],
            "h": {"start": 0.1, "halvings": 2}, "horizon": 1.0, "n_records": 10}},
    }))
    return path


def pipeline_args(workdir: Path) -> list[str]:
    return ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(TEST_CONFIG), "-d", str(workdir)]


def cluster_args(workdir: Path, *site) -> list[str]:
    return [*pipeline_args(workdir), "--workflow-profile", str(PROFILE), *site, *TEST_ONLY_ARGS]


# The cluster run's stages: all but the figures (see the module's docstring).
NO_FIGURES = ["--omit-from", "draw_claim_figures"]


def result_files(workdir: Path) -> dict[str, Path]:
    """Every file under results/ except the report (the shared local run gets one from test_pipeline.py)."""
    root = workdir / "results"
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "report.html"}


def slurm_logs(workdir: Path, group: str) -> list[Path]:
    """SLURM logs of one group's jobs, in order of submission (job ids grow)."""
    logs = (workdir / ".snakemake" / "slurm_logs").glob(f"group_{group}_*/*.log")
    return sorted(logs, key=lambda p: int(p.stem))


class Background:
    """A Snakemake run that goes on while the test module does other things."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]):
        self.name, self.workdir = name, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir.parent / f"{name}.log"
        self.started = time.time()
        self.run = SnakemakeRun(args, cwd=REPO, env=env, log=self.log)
        self.deadline = self.run.start_time + RUN_LIMIT
        self._result = None

    @property
    def seconds(self) -> float:
        """How long the run took (until its last line of output)."""
        self.result()
        return self.log.stat().st_mtime - self.started

    def result(self):
        if self._result is None:
            self._result = self.run.wait(self.deadline - time.monotonic())
        return self._result

    def describe(self, cluster=None) -> str:
        r = self.result()
        text = (f"{self.name}: returncode={r.returncode} timed_out={r.timed_out} after {r.seconds:.0f}s\n"
                f"{r.output[-8000:]}")
        return text + (cluster.logs() if cluster is not None else "")


class Canceller(threading.Thread):
    """Cancels, with scancel, a cluster job of ``workdir`` that trains and predicts nothing (its retry is the
    shortest, so the run's length is not set by it), once it is RUNNING and a training script has started."""

    def __init__(self, cluster, workdir: Path, deadline: float):
        super().__init__(daemon=True)
        self.cluster, self.workdir, self.deadline = cluster, workdir, deadline
        self.job: dict[str, str] | None = None
        self.cancelled_at: float | None = None

    def run(self):
        train_logs = self.workdir / "logs" / "train"
        while self.job is None and time.monotonic() < self.deadline:
            running = [j for j in self.cluster.job_table("RUNNING")
                       if os.path.realpath(j["workdir"]) == os.path.realpath(self.workdir)
                       and "train_shard" in j["comment"] and "predict_shard" not in j["comment"]]
            if running and train_logs.is_dir() and any(train_logs.rglob("*.log")):
                self.cluster.scancel(running[0]["id"])
                self.job, self.cancelled_at = running[0], time.monotonic()
            time.sleep(0.3)


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The cluster runs, started in the background at once (the local reference is made while they go on)."""
    base = tmp_path_factory.mktemp("pipeline")
    # A user profile holding the site values: the other supported way to give them.
    site_profile = base / "site-profile"
    site_profile.mkdir()
    (site_profile / "config.yaml").write_text(yaml.safe_dump(
        {"default-resources": {"slurm_account": ACCOUNT, "slurm_partition": "debug"}}))
    env = cluster.env
    started = time.monotonic()
    on_cluster = Background("cluster", cluster_args(base / "cluster", "--profile", str(site_profile), *NO_FIGURES),
                            base / "cluster", env)
    canceller = Canceller(cluster, on_cluster.workdir, on_cluster.deadline)
    canceller.start()
    memory = Background("memory", [*cluster_args(base / "memory", *SITE_ARGS), "--set-resources",
                                   MEMORY_RESOURCES, "--", MEMORY_TARGET], base / "memory", env)
    timeout_args = ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(slow_config(base / "slow.yaml")),
                    "-d", str(base / "timeout"), "--workflow-profile", str(PROFILE), *SITE_ARGS, *TEST_ONLY_ARGS,
                    "--set-resources", TIMEOUT_RESOURCES, "--", TIMEOUT_TARGET]
    timeout = Background("timeout", timeout_args, base / "timeout", env)
    background = (on_cluster, memory, timeout)
    all_runs = dict(cluster=on_cluster, memory=memory, timeout=timeout, canceller=canceller)
    try:
        yield all_runs
    finally:
        for r in background:
            r.result()  # waits for the rest, kills the process group at its deadline
        canceller.join(timeout=5)
        times = ", ".join(f"{r.name} {r.seconds:.0f}s" for r in background)
        print(f"\npipeline runs ({time.monotonic() - started:.0f}s in all): {times}")


@pytest.fixture(scope="module")
def reference(ci_run) -> dict[str, Path]:
    """The local run of the CI config (shared with test_pipeline.py)."""
    files = result_files(ci_run)
    assert "claims.csv" in files
    return files


def assert_same_results(files: dict[str, Path], reference: dict[str, Path], what: str):
    assert files.keys() == reference.keys(), f"{what}: {sorted(files.keys() ^ reference.keys())}"
    assert any(name.endswith("trajectory.parquet") for name in files)
    differing = [name for name in files if files[name].read_bytes() != reference[name].read_bytes()]
    assert not differing, f"{what}: files differ from the local run: {differing}"


def jobs_of(cluster, workdir: Path) -> list[dict[str, str]]:
    return [j for j in cluster.job_table() if os.path.realpath(j["workdir"]) == os.path.realpath(workdir)]


@pytest.mark.slurm
def test_pipeline_on_cluster_equals_local_run(runs, reference, cluster):
    run = runs["cluster"]
    result = run.result()
    assert result.returncode == 0, run.describe(cluster)
    assert "workflow specific profile" in result.output
    files = result_files(run.workdir)
    assert not any(name.startswith("figures/") for name in files)
    # a partial run (--omit-from) keeps the temporary files that none of its jobs reads: the vectors files of the
    # shards whose trajectories keep their vectors, tables without rows (the full local run deletes them)
    leftover = {name for name in files if name.endswith("/vectors.parquet")}
    assert leftover and all(pd.read_parquet(files[name]).empty for name in leftover), leftover
    files = {name: p for name, p in files.items() if name not in leftover}
    assert_same_results(files, {n: p for n, p in reference.items() if not n.startswith("figures/")}, "cluster run")
    pd.testing.assert_frame_equal(pd.read_csv(files["claims.csv"]), pd.read_csv(reference["claims.csv"]))
    # Grouping, each group job submitted once (the cancelled one twice): one sweep job per shard (with
    # its predictions), one claim job per measure, and the verdict.
    shards = sum(name.endswith("trajectory.parquet") for name in reference)
    claims = sum(name.startswith("measures/") and not name.endswith("_points.csv.gz") for name in reference)
    assert len(slurm_logs(run.workdir, "sweep")) == shards + 1
    assert len(slurm_logs(run.workdir, "claim")) == claims
    assert len(list((run.workdir / ".snakemake" / "slurm_logs").glob("rule_judge_claims/*.log"))) == 1
    jobs = jobs_of(cluster, run.workdir)
    assert len(jobs) == shards + claims + 2, jobs
    assert sorted(j["state"] for j in jobs) == ["CANCELLED"] + ["COMPLETED"] * (len(jobs) - 1), jobs
    # The user profile's site values reached SLURM.
    assert {(j["account"], j["partition"]) for j in jobs} == {(ACCOUNT, "debug")}, jobs


@pytest.mark.slurm
def test_cancelled_job_is_retried_and_nothing_is_lost(runs, cluster):
    run, canceller = runs["cluster"], runs["canceller"]
    result = run.result()
    assert canceller.job is not None, "no training job of the run was seen RUNNING\n" + run.describe(cluster)
    assert result.returncode == 0, run.describe(cluster)
    cancelled_id = canceller.job["id"]
    # The cancelled job was reported with its SLURM log ...
    assert cluster.job_states()[cancelled_id] == "CANCELLED"
    assert "Error in group sweep" in result.output, run.describe()
    (cancelled_log,) = [p for p in slurm_logs(run.workdir, "sweep") if p.stem == cancelled_id]
    assert str(cancelled_log) in result.output and "CANCELLED" in result.output
    # ... and submitted again (same Snakemake job, new SLURM job), which completed; that nothing was
    # lost is the equality of every file with the local run's (test above).
    assert "Trying to restart job" in result.output
    submissions = {}
    for job, slurm_id in re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", result.output):
        submissions.setdefault(job, []).append(slurm_id)
    (again,) = [ids for ids in submissions.values() if cancelled_id in ids]
    assert again[0] == cancelled_id and len(again) == 2, submissions
    assert cluster.job_states()[again[1]] == "COMPLETED"


@pytest.mark.slurm
def test_memory_overrun_is_reported_and_retried_with_more(runs, reference, cluster):
    run = runs["memory"]
    result = run.result()
    assert result.returncode == 0, run.describe(cluster)
    first, second = slurm_logs(run.workdir, "sweep")
    # SLURM killed the first attempt for its memory ...
    # (the job's batch step, Snakemake running the group, or its job step, whichever crossed the limit)
    assert re.search(rf"StepId={first.stem}\.(0|batch) exceeded memory limit", first.read_text(errors="replace"))
    assert "exceeded memory limit" not in second.read_text(errors="replace")
    assert cluster.job_states()[first.stem] in ("FAILED", "OUT_OF_MEMORY")
    # ... and Snakemake's own output says which job failed, where its log is, and why
    # (the profile's show-failed-logs prints the SLURM log).
    out = result.output
    failure = out.index("Error in group sweep")
    assert str(first) in out[failure:]
    assert "rule train_shard" in out[failure:] and MEMORY_TARGET in out[failure:]
    assert "exceeded memory limit" in out[failure:]
    # The retry asked for three times the memory and finished the job.
    restart = out.index("Trying to restart job", failure)
    assert re.search(r"mem_mb=2000\b", out[restart:]) and "1 of 1 steps (100%) done" in out[restart:]
    produced = run.workdir / MEMORY_TARGET
    assert produced.read_bytes() == reference[MEMORY_TARGET.removeprefix("results/")].read_bytes()
    # The site values of the command line reached SLURM.
    assert {(j["account"], j["partition"]) for j in jobs_of(cluster, run.workdir)} == {(ACCOUNT, "debug")}


@pytest.mark.slurm
def test_time_limit_overrun_is_reported_and_retried_with_more_time(runs, cluster):
    run = runs["timeout"]
    result = run.result()
    assert result.returncode == 0, run.describe(cluster)
    first, second = slurm_logs(run.workdir, "sweep")
    # SLURM ended the first attempt at its time limit ...
    assert "DUE TO TIME LIMIT" in first.read_text(errors="replace")
    assert "DUE TO TIME LIMIT" not in second.read_text(errors="replace")
    assert cluster.job_states()[first.stem] == "TIMEOUT"
    # ... Snakemake's output says which job failed, where its log is, and why ...
    out = result.output
    failure = out.index("Error in group sweep")
    assert str(first) in out[failure:]
    assert "rule train_shard" in out[failure:] and TIMEOUT_TARGET in out[failure:]
    assert "DUE TO TIME LIMIT" in out[failure:]
    # ... and the retry asked for three minutes and finished the job.
    restart = out.index("Trying to restart job", failure)
    assert re.search(r"runtime=3\b", out[restart:]) and "1 of 1 steps (100%) done" in out[restart:]
    assert cluster.job_states()[second.stem] == "COMPLETED"
    meta = read_json((run.workdir / TIMEOUT_TARGET).with_name("meta.json.gz"))
    assert [r["diverged"] for series in meta["series"] for r in series["runs"]] == [False, False, False]
