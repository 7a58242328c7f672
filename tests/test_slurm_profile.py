"""The SLURM workflow profile itself, without a cluster: it groups every rule but the verdict and sets no
site values, and a dry run shows how many cluster jobs a config gives (one per shard, claim and verdict).
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
TEST_CONFIG = REPO / ".test" / "config.yaml"


def count_cluster_jobs(dry_run_output: str) -> dict[str, int]:
    """Cluster submissions in a dry run: each group job once, each ungrouped job with an action once
    (`localrule` jobs and `all`, which runs nothing, stay on the submitting machine)."""
    lines = [re.sub(r"^\[[^]]*\] ", "", line) for line in dry_run_output.splitlines()]
    groups = [m.group(1) for line in lines if (m := re.match(r"Group job (\w+)", line))]
    singles = [m.group(1) for line in lines if (m := re.match(r"rule (\w+):", line)) and m.group(1) != "all"]
    counts = {f"group {g}": groups.count(g) for g in sorted(set(groups))}
    counts.update({f"rule {r}": singles.count(r) for r in sorted(set(singles))})
    counts["total"] = len(groups) + len(singles)
    return counts


def snakemake_quick(*args) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_profile_groups_every_rule_and_sets_no_site_values(tmp_path):
    profile = yaml.safe_load((PROFILE / "profile.yaml").read_text())
    rules = set(snakemake_quick("--list-rules", "--snakefile", REPO / "Snakefile", "--configfile", TEST_CONFIG,
                                "-d", tmp_path).split())
    # `all` runs nothing; judge_claims needs every measure and runs alone.
    assert rules and set(profile["groups"]) == rules - {"all", "judge_claims"}
    assert set(profile["group-components"]) == set(profile["groups"].values())
    # Site values and per-rule resources live elsewhere (see the profile's header): a command-line
    # --default-resources or a user profile must not wipe anything out.
    assert not {"default-resources", "set-resources", "set-threads"} & set(profile)


# The default config only: the cluster run of .test/config.yaml (test_slurm_pipeline.py) counts its group jobs
# itself, and paper.yaml's validation alone, which builds every problem, takes 15 s.
@pytest.mark.parametrize("config", ["config/config.yaml"])
def test_dry_run_counts_cluster_jobs(config, tmp_path):
    out = snakemake_quick("-n", "--snakefile", REPO / "Snakefile", "--configfile", REPO / config, "-d", tmp_path,
                          "--workflow-profile", PROFILE)
    stats = out[out.index("Job stats:"):]
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, flags=re.M)}
    sweep_size = yaml.safe_load((PROFILE / "profile.yaml").read_text())["group-components"]["sweep"]
    expected = {"group sweep": math.ceil(jobs["train_shard"] / sweep_size),
                "group claim": jobs["measure_claim"],
                "rule judge_claims": 1}
    expected["total"] = sum(expected.values())
    assert count_cluster_jobs(out) == expected
    assert expected["total"] < jobs["total"] - 1  # fewer cluster jobs than jobs (`all` runs nothing)
