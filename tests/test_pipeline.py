"""The whole workflow on the CI config (.test/config.yaml), in temporary working directories.

One uninterrupted run serves every test of this module and the cluster tests (``ci_run`` in
conftest.py); a second run, killed while training and resumed, must give byte-identical files (it
trains every shard again from scratch, so it is also the check that two runs agree byte for byte). The
second run goes as far as the training (``--until train_shard``): the kill lands there, and the stages
after it read only files already compared (the cluster test runs them all again and compares every file).
Deleted intermediate files are rebuilt, and a second ``make replicate`` in the same folder is refused.

What an interrupted run needs (found here, documented in the README): a run killed with SIGKILL
leaves Snakemake's lock in ``.snakemake/locks``, so a plain rerun stops with a ``LockException``
until ``snakemake --unlock`` (same options) is run; after that a plain rerun completes. Jobs killed
mid-way left no outputs (every writer goes through a temporary file and a rename), so Snakemake
simply reruns them; ``--rerun-incomplete`` (set in the default profile) is needed only when a job
was killed after writing all its outputs but before Snakemake recorded it as finished. (That profile is
not picked up by a plain ``snakemake`` from the repository root, which looks for ``profiles/default``
beside the Snakefile, so the runs here use no profile: the plain rerun works without it.)
"""
from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from momentum_ct.sweep import shard_table

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"
RUN_TIMEOUT = 420  # one full run of the CI config takes about 1.5 minutes on 2 cores
SHORT_TIMEOUT = 120
CONTRACT_COLUMNS = ["claim_id", "problem", "method", "lam", "quantity", "predicted", "measured", "ci_low", "ci_high",
                    "verdict"]
VERDICTS = {"supported", "not supported", "inconclusive"}


def expected_shards() -> list[str]:
    """``results/runs/`` folders the CI config produces, one per shard (training job)."""
    table = shard_table(yaml.safe_load(TEST_CONFIG.read_text()))
    pairs = table[["experiment", "shard"]].drop_duplicates().itertuples(index=False)
    return sorted(f"runs/experiment~{e}/shard~{s}" for e, s in pairs)


def pipeline_args(workdir: Path, *extra) -> list:
    return ["--snakefile", REPO / "Snakefile", "--configfile", TEST_CONFIG, "-d", workdir, *extra]


def result_files(workdir: Path) -> dict[str, Path]:
    """Every file under results/ except the report, by relative path."""
    root = workdir / "results"
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "report.html"}


def assert_identical(files_a: dict[str, Path], files_b: dict[str, Path], what: str):
    differing = [name for name in files_a if files_a[name].read_bytes() != files_b[name].read_bytes()]
    assert not differing, f"{what}: files differ: {differing}"


@pytest.fixture(scope="module")
def finished_run(ci_run):
    """The CI config run once, end to end, uninterrupted (shared with the cluster tests)."""
    return ci_run


# How far the killed run goes: the training, where the kill lands.
UNTIL = ("--until", "train_shard")


def kill_while_training(workdir: Path) -> list[str]:
    """Start the pipeline, SIGKILL its whole process group once training jobs run; return the markers seen."""
    cmd = [sys.executable, "-m", "snakemake", "-c2", *map(str, pipeline_args(workdir, *UNTIL))]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    markers = workdir / ".snakemake" / "incomplete"
    deadline = time.monotonic() + SHORT_TIMEOUT
    try:
        while not (markers.is_dir() and any(markers.iterdir())):  # a job has started
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("no job started before the deadline")
            time.sleep(0.1)
        time.sleep(1.0)  # the training processes are importing torch: seconds before any output is written
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass
        proc.wait(timeout=30)
    # marker names are the urlsafe base64 of the output paths of the running jobs
    return sorted(base64.urlsafe_b64decode(p.name).decode() for p in markers.iterdir())


@pytest.fixture(scope="module")
def resumed_run(snakemake, tmp_path_factory):
    """A run killed (SIGKILL, whole process group) while training, then resumed to the end."""
    workdir = tmp_path_factory.mktemp("killed")
    markers = kill_while_training(workdir)
    written = [p for p in (workdir / "results").rglob("*") if p.is_file()] if (workdir / "results").exists() else []
    assert markers and all(m.startswith("results/runs/") for m in markers), f"training jobs were running: {markers}"
    assert not written, f"the kill came too late to interrupt training: {written}"

    plain = snakemake(["-c2", *pipeline_args(workdir, *UNTIL)], timeout=SHORT_TIMEOUT)
    assert plain.returncode != 0 and "LockException" in plain.output and "--unlock" in plain.output, str(plain)
    unlock = snakemake(["--unlock", *pipeline_args(workdir)], timeout=SHORT_TIMEOUT)
    assert unlock.returncode == 0, str(unlock)
    resumed = snakemake(["-c2", *pipeline_args(workdir, *UNTIL)], timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, str(resumed)
    return workdir


def test_killed_run_resumes_to_byte_identical_outputs(resumed_run, finished_run):
    # first in the module, resumed run first: it needs no reference, so it goes on while another module's
    # worker makes the shared one (ci_run)
    files, finished = result_files(resumed_run), result_files(finished_run)
    # what --until train_shard makes: every shard's trajectory and metadata, and its vectors file, a temporary
    # output that a partial run leaves for the jobs after it
    expected = {f"{s}/{f}" for s in expected_shards() for f in ("trajectory.parquet", "meta.json.gz")}
    vectors = {f"{s}/vectors.parquet" for s in expected_shards()}
    assert files.keys() == expected | vectors, sorted(files.keys() ^ (expected | vectors))
    assert_identical({n: files[n] for n in expected}, {n: finished[n] for n in expected},
                     "every trajectory and metadata file")


def test_end_to_end_outputs(finished_run):
    results = finished_run / "results"
    claims = pd.read_csv(results / "claims.csv")
    assert list(claims.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert {"K1", "K4"} <= set(claims["claim_id"])
    assert set(claims["verdict"]) <= VERDICTS
    assert claims[CONTRACT_COLUMNS[:5]].notna().all().all()
    k1 = claims[claims["claim_id"] == "K1"]
    assert set(k1["quantity"]) == {"order", "rescale_factor"}
    assert set(k1["problem"]) == {"quadratic", "toy2d"}
    assert set(claims[claims["claim_id"] == "K4"]["quantity"]) == {"gap_order_loss", "gap_order_accuracy",
                                                                   "lag_ratio_loss", "lag_ratio_accuracy"}
    # the CI sweep on the quadratic sits in the asymptotic regime: its K1 rows are supported
    quadratic = k1[(k1["problem"] == "quadratic")]
    assert (quadratic["verdict"] == "supported").all(), quadratic.to_string()
    md = (results / "claims.md").read_text()
    assert md.startswith("# Claims and their evidence") and "## K1" in md and "## K4" in md
    for figure in ("K1/k1_error_vs_h.png", "K1/k1_rescale_factor.png", "K4/k4_gap_vs_h.png",
                   "K4/k4_digits_full/k4_curves.png"):
        data = (results / "figures" / figure).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, figure
    for shard in expected_shards():
        assert (results / shard / "trajectory.parquet").exists() and (results / shard / "meta.json.gz").exists()


def test_network_vectors_are_set_apart_for_the_predictions_and_deleted(finished_run):
    """k1_wide (20 dimensions, K1 only) keeps empty vectors in its trajectory; its prediction read them from the shard's
    vectors file, a temporary output that is gone once the predictions are made. A plane's are kept."""
    results = finished_run / "results"
    assert not list(results.rglob("vectors.parquet"))
    wide = pd.read_parquet(results / "runs/experiment~k1_wide/shard~0/trajectory.parquet")
    assert len(wide) > 100 and (wide["x"].map(len) == 0).all() and (wide["m"].map(len) == 0).all()
    plane = pd.read_parquet(results / "runs/experiment~k1_toy2d/shard~0/trajectory.parquet")
    assert (plane["x"].map(len) == 2).all()
    pred = pd.read_parquet(results / "predictions/K1/experiment~k1_wide/shard~0.parquet")
    assert len(pred) == len(wide) and np.isfinite(pred["err"]).all() and (pred["err"] > 0).any()
    fits = pd.read_csv(results / "measures/K1.csv")
    order = fits[(fits["experiment"] == "k1_wide") & (fits["quantity"] == "order")]["measured"]
    assert len(order) == 1 and abs(order.iloc[0] - 1.0) < 0.2, order


def test_report(snakemake, finished_run):
    report = finished_run / "results" / "report.html"
    result = snakemake(pipeline_args(finished_run, "--report", report), timeout=SHORT_TIMEOUT)
    assert result.returncode == 0, str(result)
    assert "Report created" in result.output
    html = report.read_text(errors="replace")
    assert len(html) > 100_000
    # captions are rendered, per figure, those of figures drawn per experiment included
    assert "time-rescaling factor c fitted" in html and "largest distance between the iterates" in html
    assert "training loss and test accuracy of the momentum methods" in html


def test_rerun_of_a_finished_pipeline_does_nothing(snakemake, finished_run):
    before = {name: p.stat().st_mtime_ns for name, p in result_files(finished_run).items()}
    result = snakemake(["-n", "-c2", *pipeline_args(finished_run)], timeout=SHORT_TIMEOUT)
    assert result.returncode == 0, str(result)
    assert "Nothing to be done" in result.output, str(result)
    assert "Job stats" not in result.output and "rule train_shard" not in result.output
    assert {name: p.stat().st_mtime_ns for name, p in result_files(finished_run).items()} == before


def test_lint_is_clean(snakemake, tmp_path):
    result = snakemake(["--lint", "--snakefile", REPO / "Snakefile", "--configfile", TEST_CONFIG,
                        "-d", tmp_path], timeout=SHORT_TIMEOUT)
    assert result.returncode == 0, str(result)
    assert "Lints for" not in result.output, str(result)
    assert "Congratulations, your workflow is in a good condition!" in result.output, str(result)


# A file of each stage before the verdict, and the rule that rebuilds it; none depends on another (other
# experiments, other claims), so each is planned again only because it is missing.
VICTIMS = {
    "runs/experiment~k1_toy2d/shard~0/meta.json.gz": "train_shard",
    "predictions/K2/experiment~k1_quadratic/shard~0.parquet": "predict_shard",
    "measures/K4_points.csv.gz": "measure_claim",
}


def test_deleted_intermediate_files_are_rebuilt(snakemake, finished_run, tmp_path):
    """A missing intermediate file is rebuilt with what depends on it, never skipped because later files exist."""
    workdir = tmp_path / "copy"
    shutil.copytree(finished_run, workdir, symlinks=True)
    for victim in VICTIMS:
        (workdir / "results" / victim).unlink()
    result = snakemake(["-n", *pipeline_args(workdir)], timeout=SHORT_TIMEOUT)
    assert result.returncode == 0, str(result)
    for victim, rebuilt in VICTIMS.items():
        assert f"rule {rebuilt}:" in result.output and victim in result.output, f"{victim}\n{result}"
    assert "judge_claims" in result.output


def test_unreadable_trajectory_names_itself(tmp_path):
    from momentum_ct.io import SchemaError, read_trajectory

    path = tmp_path / "trajectory.parquet"
    path.write_bytes(b"PAR1 truncated")
    with pytest.raises(SchemaError, match=r"trajectory\.parquet cannot be read .* delete it and rerun the pipeline"):
        read_trajectory(path)


@pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(), reason="make replicate needs the project's .venv")
def test_second_replicate_in_the_same_folder_is_refused(tmp_path):
    """An OS-level lock held for a whole ``make replicate``: a second one in the same folder stops at once
    (instead of running the same jobs beside the first), and the kernel releases the lock of a killed run."""
    lock = tmp_path / ".replicate.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "60"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the holder has the lock
            if lock.exists() and subprocess.run(["flock", "--nonblock", str(lock), "true"]).returncode != 0:
                break
            time.sleep(0.05)
        second = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "replicate", f"RESULTS={tmp_path}",
                                 f"CONFIG={TEST_CONFIG}"], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0, second.stdout + second.stderr
        assert "another 'make replicate' is running" in second.stderr
        assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake").exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    # the killed holder's lock is gone once its processes are (the child ``sleep`` holds the lock's file too,
    # and dies a moment after the ``flock`` that was waited for)
    deadline = time.monotonic() + 10
    while subprocess.run(["flock", "--nonblock", str(lock), "true"], timeout=10).returncode != 0:
        assert time.monotonic() < deadline, "the killed holder's lock was not released"
        time.sleep(0.05)
