"""Plug-ins and code tracking, end to end: a claim registered from a module outside the package runs through
the unchanged workflow, and editing code reruns exactly the stages that run it.

The package is imported from a copy (``PYTHONPATH``), so that the tests can edit its code the way a
developer would without touching the repository.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).parent / "plugins" / "toy_claim.py"
RUN_TIMEOUT = 420

CONFIG = dict(
    plugins=["toy_claim.py"],
    series_per_shard=6,
    ode=dict(method="dopri5", rtol=1e-10, atol=1e-12),
    measure=dict(fit_points=3, confidence=0.95),
    experiments=dict(toy=dict(
        claims=["K1", "T1"], problem="toy2d", methods=["hb", "gd_rescaled"], lam=[0.5], seeds=[0],
        h=dict(start=0.02, halvings=3, scale_with_momentum=True), horizon=1.0, n_records=20, engine="stacked",
    )),
)


def planned(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's job table (empty when nothing is to be done)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
            if m.group(1) != "total"}


@pytest.fixture(scope="module")
def project(tmp_path_factory, snakemake):
    """A copy of the package, a config folder holding the plug-in, and one finished run."""
    root = tmp_path_factory.mktemp("plugins")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    config_dir = root / "config"
    config_dir.mkdir()
    shutil.copy(PLUGIN, config_dir / "toy_claim.py")
    (config_dir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    work = root / "work"

    def run(*extra):
        return snakemake(["--snakefile", REPO / "Snakefile", "--configfile", config_dir / "config.yaml", "-d", work,
                          *extra], timeout=RUN_TIMEOUT, env={"PYTHONPATH": str(root / "src")})

    result = run("-c2")
    assert result.returncode == 0, str(result)
    return root, run


def edited(path: Path):
    """Context: ``path`` with a comment appended, restored afterwards."""
    class _Edit:
        def __enter__(self):
            self.text = path.read_text()
            path.write_text(self.text + "\n# edited\n")

        def __exit__(self, *exc):
            path.write_text(self.text)

    return _Edit()


def test_plugin_claim_is_judged_and_drawn(project):
    root, _ = project
    results = root / "work" / "results"
    claims = pd.read_csv(results / "claims.csv")
    t1 = claims[claims["claim_id"] == "T1"]
    assert set(t1["method"]) == {"hb", "gd_rescaled"}
    assert (t1["verdict"] == "supported").all(), t1
    assert (t1["measured"] < 1.0).all()
    assert (claims["claim_id"] == "K1").any()
    assert (results / "figures" / "T1" / "t1_loss_ratio.png").stat().st_size > 0
    text = (results / "claims.md").read_text()
    assert "## T1: Every method lowers the training loss over its run." in text


def test_editing_the_plugin_reruns_its_claim_only(project):
    # the planned jobs are exactly the edited claim's: nothing else of the finished run is redone
    root, run = project
    with edited(root / "config" / "toy_claim.py"):
        result = run("-n")
    assert result.returncode == 0, str(result)
    assert planned(result.output) == {"measure_claim": 1, "judge_claims": 1, "draw_claim_figures": 1, "all": 1}, \
        result.output[-3000:]


def jobs_after_editing(project, *path) -> dict[str, int]:
    """The jobs a dry run plans once the package copy's file ``path`` is edited (restored afterwards)."""
    root, run = project
    with edited(root.joinpath("src", "momentum_ct", *path)):
        result = run("-n")
    assert result.returncode == 0, str(result)
    return planned(result.output)


def test_editing_a_measure_reruns_measure_judge_draw_not_training(project):
    jobs = jobs_after_editing(project, "claims", "common.py")
    assert "train_shard" not in jobs, jobs
    assert jobs.get("measure_claim") == 2 and jobs.get("judge_claims") == 1, jobs
    assert jobs.get("draw_claim_figures") == 2, jobs  # one per claim measured again


def test_editing_a_method_reruns_training_and_everything_after(project):
    jobs = jobs_after_editing(project, "optim", "__init__.py")
    assert jobs.get("train_shard") == 1 and jobs.get("measure_claim") == 2 and jobs.get("judge_claims") == 1, jobs


def test_unknown_claim_lists_plugins_too(project, snakemake, tmp_path):
    root, _ = project
    config = dict(CONFIG, experiments=dict(toy=dict(CONFIG["experiments"]["toy"], claims=["T9"])))
    (root / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(["-n", "--snakefile", REPO / "Snakefile", "--configfile", root / "config" / "bad.yaml", "-d",
                        tmp_path], timeout=120, env={"PYTHONPATH": str(root / "src")})
    assert result.returncode != 0
    assert "experiments.toy.claims: unknown claim 'T9'; valid claims: E1, E2, E3, K1, K2, K3, K4, O1, O2, O3, T1" in result.output


def test_workflow_names_no_claim():
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "workflow").rglob("*") if p.is_file()
                 for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bK[0-9]", line)]
    assert offenders == []
