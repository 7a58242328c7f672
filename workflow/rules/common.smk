# Workflow glue: config validation at parse time, the sweep table, input functions.
# Numerical code lives in the momentum_ct package; nothing here computes.
import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import Paramspace, validate

# Schema first: a malformed config fails in a second, before the package (and torch) is imported.
validate(config, schema="../schemas/config.schema.yaml")

from momentum_ct.errors import ConfigError
from momentum_ct.sweep import batch_table
from momentum_ct.train.batch import estimate_memory_mb
from momentum_ct.claims.measures import PREDICTORS

# One environment serves every rule (used with --software-deployment-method conda).
CONDA_ENV = "../../environment.yml"

try:
    SWEEP = batch_table(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}")

BATCHES = Paramspace(SWEEP[["experiment", "batch"]].drop_duplicates().reset_index(drop=True))
CLAIMS = sorted({c for exp in config["experiments"].values() for c in exp.get("claims", [])})
PREDICTED_CLAIMS = [c for c in CLAIMS if c in PREDICTORS]


wildcard_constraints:
    experiment="[A-Za-z0-9_]+",
    batch="[0-9]+",
    claim="[A-Z][A-Za-z0-9]*",


def batch_dir(experiment, batch):
    return f"experiment~{experiment}/batch~{batch}"


def batches_of_claim(claim):
    """(experiment, batch) pairs of the experiments that carry a claim."""
    rows = SWEEP[SWEEP["claims"].str.split(",").apply(lambda cs: claim in cs)]
    return rows[["experiment", "batch"]].drop_duplicates().itertuples(index=False)


def get_batch_specs(wildcards):
    rows = SWEEP[(SWEEP["experiment"] == wildcards.experiment) & (SWEEP["batch"] == int(wildcards.batch))]
    return [spec.as_dict() for spec in rows["spec"]]


def get_train_mem_mb(wildcards):
    """Memory of a training job on its first attempt: at least 2 GB, more for batches recording many rows."""
    rows = SWEEP[(SWEEP["experiment"] == wildcards.experiment) & (SWEEP["batch"] == int(wildcards.batch))]
    return max(2000, estimate_memory_mb(list(rows["spec"])))


def get_measure_inputs(wildcards):
    pairs = [batch_dir(e, b) for e, b in batches_of_claim(wildcards.claim)]
    inputs = dict(
        trajectories=[f"results/runs/{p}/trajectory.parquet" for p in pairs],
        metas=[f"results/runs/{p}/meta.json" for p in pairs],
    )
    if wildcards.claim in PREDICTED_CLAIMS:
        inputs["predictions"] = [f"results/predictions/{wildcards.claim}/{p}.parquet" for p in pairs]
        inputs["infos"] = [f"results/predictions/{wildcards.claim}/{p}.json" for p in pairs]
    return inputs


def measure_options():
    return dict(config.get("measure", {}))


def experiments_of_claim(claim):
    return sorted({e for e, _ in batches_of_claim(claim)})


def get_experiment_trajectories(wildcards):
    rows = SWEEP[SWEEP["experiment"] == wildcards.experiment]
    return [f"results/runs/{batch_dir(wildcards.experiment, b)}/trajectory.parquet" for b in sorted(set(rows["batch"]))]


# Figures drawn from a claim's measure tables: claim -> figure names.
CLAIM_FIGURES = {
    "K1": ["k1_error_vs_h", "k1_rescale_factor"],
    "K2": ["k2_error_vs_h", "k2_error_ratio", "k2_error_in_time"],
    "K3": ["k3_manifold_distance", "k3_contraction", "k3_phase_portrait", "k3_modified_loss", "k3_formula_table"],
    "K4": ["k4_gap_vs_h"],
}


def get_final_outputs():
    outputs = ["results/claims.csv", "results/claims.md"]
    outputs += [f"results/figures/{c}/{f}.png" for c in CLAIMS for f in CLAIM_FIGURES.get(c, [])]
    if "K4" in CLAIMS:
        outputs += [f"results/figures/K4/k4_curves_{e}.png" for e in experiments_of_claim("K4")]
    return outputs
