"""Shared test fixtures."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from filelock import FileLock


@pytest.fixture(scope="module")
def single_torch_thread():
    """One intra-op thread for torch in a module's tests, restored afterwards.

    Tiny float64 problems gain nothing from threads, and on a loaded machine intra-op thread
    pools slow them down tenfold; the pipeline's jobs run with one thread too.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- running Snakemake in tests -----------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SnakemakeResult:
    args: list[str]
    returncode: int
    output: str  # stdout and stderr together

    def __str__(self) -> str:
        return f"snakemake {' '.join(self.args)} -> exit {self.returncode}\n{self.output[-4000:]}"


def run_snakemake(args, *, timeout: float, cwd: Path = REPO, env: dict[str, str] | None = None) -> SnakemakeResult:
    """Run ``python -m snakemake ARGS`` from the repository root with a hard timeout.

    The process gets its own session; on timeout the whole process group (Snakemake and its jobs)
    is killed, so a hung run cannot outlive the test. ``env``: variables added to the environment.
    """
    args = [str(a) for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=None if env is None else {**os.environ, **env})
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"snakemake {' '.join(args)} exceeded {timeout}s:\n{out[-4000:]}") from None
    return SnakemakeResult(args, proc.returncode, out)


@pytest.fixture(scope="session")
def snakemake():
    """The runner above, as a fixture: ``snakemake(args, timeout=...)``."""
    return run_snakemake


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


CI_RUN_TIMEOUT = 420  # one full run of the CI config takes about 1.5 minutes on 2 cores


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory, worker_id) -> Path:
    """The CI config (.test/config.yaml) run once, end to end, uninterrupted, on this machine: the reference
    that the pipeline tests and the cluster tests compare against (one run serves both).

    Under pytest-xdist the modules that use it may run in different worker processes: the first one to ask
    makes the run in the base folder the workers share, under a file lock, and the others wait for it.
    """
    if worker_id == "master":  # no xdist
        return _make_ci_run(tmp_path_factory.mktemp("ci_run"))
    shared = tmp_path_factory.getbasetemp().parent
    with FileLock(str(shared / "ci_run.lock")):
        workdir = shared / "ci_run"
        if not (workdir / "done").exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a failed attempt of another worker
            _make_ci_run(workdir)
            (workdir / "done").touch()
    return workdir


def _make_ci_run(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    result = run_snakemake(["-c2", "--snakefile", REPO / "Snakefile", "--configfile", REPO / ".test" / "config.yaml",
                            "-d", workdir], timeout=CI_RUN_TIMEOUT)
    assert result.returncode == 0, str(result)
    return workdir


# Modules that mostly wait (on a cluster, on Snakemake runs) start first, so that under pytest-xdist
# (``make test``) their waiting overlaps with the other modules' computing instead of ending the session;
# then the others, longest first, so that no long module is left for the end.
FIRST = ("test_slurm_pipeline.py", "test_pipeline.py", "test_slurm_harness.py", "test_plugins.py",
         "test_k2_k3.py", "test_config_validation.py", "test_slurm_profile.py", "test_validation.py",
         "test_continuous_time.py", "test_eki.py", "test_annealed.py", "test_orr_leen_claims.py",
         "test_recurrence.py", "test_stacked_engine.py", "test_methods.py", "test_problems.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


# --- a throw-away SLURM cluster -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A single-node SLURM cluster on 127.0.0.1 (tests/slurm_cluster.py), one per test module.

    Skips the module's tests when no cluster can be started here (not root, no apt-get); checks on
    the way out that no daemon or job of the cluster is left running.
    """
    try:
        from slurm_cluster import SlurmCluster, SlurmUnavailable
    except ImportError:  # tests/ imported as a package
        from .slurm_cluster import SlurmCluster, SlurmUnavailable
    try:
        # Finished jobs stay visible to squeue for MinJobAge seconds: long enough for tests that
        # look at job states after their runs. Eight CPUs on a smaller machine: the tests' cluster jobs
        # mostly wait (status checks, time limits, start-up), so they share the real cores instead of queueing.
        running = SlurmCluster(tmp_path_factory.mktemp("slurm"), min_job_age=3600, cpus=8).start()
    except SlurmUnavailable as err:
        pytest.skip(f"no SLURM cluster possible here: {err}")
    try:
        yield running
    finally:
        leftovers = running.stop()
    assert leftovers == [], f"cluster processes left running: {leftovers}"
