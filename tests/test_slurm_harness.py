"""Tests against a real single-node SLURM cluster started by the tests.

Run with ``pytest -m slurm``.  The cluster (see slurm_cluster.py and the
``cluster`` fixture in conftest.py) starts once per module; every Snakemake
run goes through the SLURM executor plugin, with status checks by squeue
(there is no accounting database) and a hard time limit.  These tests use toy
workflows; test_slurm_pipeline.py runs the pipeline itself through the
project's profile.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

try:
    from slurm_cluster import SnakemakeRun, run_snakemake
except ImportError:  # tests/ imported as a package
    from .slurm_cluster import SnakemakeRun, run_snakemake

pytestmark = pytest.mark.slurm

# Hard limit for one Snakemake run (seconds).
SNAKEMAKE_TIMEOUT = 240

# Options only the tests need: squeue status checks (no accounting DB, so no
# sacct), a short first status check, and a short file-system latency.
TEST_ONLY_ARGS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]

PLAIN_ARGS = [
    "--executor",
    "slurm",
    "--jobs",
    "4",
    "--latency-wait",
    "5",
    "--default-resources",
    "slurm_partition=debug",
    "runtime=5",
    "mem_mb=400",
    *TEST_ONLY_ARGS,
]


def write_snakefile(directory: Path, body: str) -> Path:
    snakefile = directory / "Snakefile"
    snakefile.write_text(
        f"PY = {sys.executable!r}\n\n" + textwrap.dedent(body).lstrip()
    )
    return snakefile


def slurm_logs(workdir: Path, rule: str) -> list[Path]:
    return sorted((workdir / ".snakemake" / "slurm_logs").glob(f"*{rule}*/*.log"))


def describe(result, cluster) -> str:
    return (
        f"returncode={result.returncode} timed_out={result.timed_out} "
        f"after {result.seconds:.0f}s\n{result.output[-6000:]}\n{cluster.logs()}"
    )


def test_sbatch_runs_and_completes(cluster, tmp_path):
    assert "slurm" in cluster.version.lower()
    out = tmp_path / "hi.out"
    job = cluster.sbatch("--wrap", "echo hi", "-o", str(out))
    assert cluster.wait_for_job(job, timeout=60) == "COMPLETED"
    assert out.read_text().strip() == "hi"


def test_two_rule_workflow(cluster, tmp_path):
    write_snakefile(
        tmp_path,
        """
        rule all:
            input: "b.txt"

        rule a:
            output: "a.txt"
            shell: "sleep 3; echo a > {output}"

        rule b:
            input: "a.txt"
            output: "b.txt"
            shell: "cat {input} > {output}; echo b >> {output}"
        """,
    )
    result = run_snakemake(
        PLAIN_ARGS, cwd=tmp_path, env=cluster.env, timeout=SNAKEMAKE_TIMEOUT
    )
    assert result.returncode == 0, describe(result, cluster)
    assert (tmp_path / "b.txt").read_text().split() == ["a", "b"]
    # Both rules went through SLURM, not the local machine.
    assert slurm_logs(tmp_path, "rule_a") and slurm_logs(tmp_path, "rule_b")


def test_memory_overuse_is_killed_then_retried_with_more(cluster, tmp_path):
    # The step running the rule also holds a Snakemake process (~160 MB), so
    # 300 MB fits Snakemake but not a 600 MB allocation; 1200 MB fits both.
    write_snakefile(
        tmp_path,
        """
        rule hog:
            output: "hog.txt"
            retries: 1
            params: py=PY
            resources:
                mem_mb=lambda wc, attempt: 300 * 4 ** (attempt - 1),
                runtime=5,
            shell:
                "{params.py} -c 'import time; b = b\\"x\\" * (600 * 2**20); time.sleep(4)'"
                " && echo {resources.mem_mb} > {output}"
        """,
    )
    result = run_snakemake(
        PLAIN_ARGS, cwd=tmp_path, env=cluster.env, timeout=SNAKEMAKE_TIMEOUT
    )
    assert result.returncode == 0, describe(result, cluster)
    # The first attempt was killed by SLURM and Snakemake reported it ...
    assert "Error in rule hog" in result.output, describe(result, cluster)
    assert "SLURM-job" in result.output and "failed" in result.output
    logs = slurm_logs(tmp_path, "rule_hog")
    assert len(logs) == 2, logs
    first, second = (p.read_text(errors="replace") for p in logs)
    assert "exceeded memory limit" in first, first
    assert "exceeded memory limit" not in second, second
    # ... and the retry got four times the memory and succeeded.
    assert (tmp_path / "hog.txt").read_text().strip() == "1200"


def test_memory_overuse_without_retry_fails(cluster, tmp_path):
    write_snakefile(
        tmp_path,
        """
        rule hog:
            output: "hog.txt"
            params: py=PY
            resources: mem_mb=300, runtime=5
            shell:
                "{params.py} -c 'import time; b = b\\"x\\" * (600 * 2**20); time.sleep(4)'"
                " && touch {output}"
        """,
    )
    result = run_snakemake(
        PLAIN_ARGS, cwd=tmp_path, env=cluster.env, timeout=SNAKEMAKE_TIMEOUT
    )
    assert not result.timed_out, describe(result, cluster)
    assert result.returncode not in (0, None), describe(result, cluster)
    assert "Error in rule hog" in result.output
    assert not (tmp_path / "hog.txt").exists()
    (log,) = slurm_logs(tmp_path, "rule_hog")
    assert "exceeded memory limit" in log.read_text(errors="replace")


def test_cancelled_job_is_retried(cluster, tmp_path):
    write_snakefile(
        tmp_path,
        """
        rule slow:
            output: "slow.txt"
            resources:
                try_no=lambda wc, attempt: attempt,
                runtime=5,
            shell:
                "touch started.{resources.try_no}; "
                "if [ {resources.try_no} -eq 1 ]; then sleep 120; fi; "
                "echo {resources.try_no} > {output}"
        """,
    )
    with SnakemakeRun(
        [*PLAIN_ARGS, "--retries", "1"], cwd=tmp_path, env=cluster.env
    ) as run:
        deadline = time.monotonic() + 90
        while not (tmp_path / "started.1").exists():
            assert run.proc.poll() is None, run.wait(5).output
            assert time.monotonic() < deadline, "first attempt never started"
            time.sleep(0.5)
        running = cluster.job_ids("RUNNING")
        assert len(running) == 1, running
        cluster.scancel(running[0])
        result = run.wait(SNAKEMAKE_TIMEOUT)
    assert result.returncode == 0, describe(result, cluster)
    assert cluster.job_states()[running[0]] == "CANCELLED"
    assert "CANCELLED" in result.output
    assert (tmp_path / "started.2").exists()
    assert (tmp_path / "slow.txt").read_text().strip() == "2"
