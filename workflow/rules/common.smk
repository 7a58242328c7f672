# Workflow glue: config validation at parse time, the sweep table, input functions.
# Numerical code lives in the momentum_ct package; nothing here computes, and no claim, problem or
# method is named here: the package's plan (registries, plug-ins) says what to build.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import Paramspace, validate

from momentum_ct.errors import ConfigError
from momentum_ct.validation import check_config, load_yaml

# The package's one validation, as `momentum-ct check` runs it: the files (YAML syntax with its line,
# duplicated keys), then non-finite numbers and the schema, each error one line naming its key path; all
# before the package's numerical part (and torch) is imported. Only in the main process: a job (a cluster
# job, or a job step inside it) parses the workflow again for a config this run has validated already.
if workflow.is_main_process:
    try:
        for configfile in workflow.configfiles:
            load_yaml(configfile)
        check_config(config, workflow.source_path("../schemas/config.schema.yaml"))
    except ConfigError as err:
        raise WorkflowError(f"invalid configuration: {err}")
    validate(config, schema="../schemas/config.schema.yaml")

from momentum_ct.plan import make_plan
from momentum_ct.train.shard import estimate_memory_mb

# One environment serves every rule (used with --software-deployment-method conda).
CONDA_ENV = "../../environment.yml"

# Plug-in paths are relative to the folder of the config file that names them.
CONFIG_DIR = os.path.dirname(os.path.abspath(workflow.configfiles[-1])) if workflow.configfiles else os.getcwd()

try:
    PLAN = make_plan(config, CONFIG_DIR, validate=workflow.is_main_process)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}")

SWEEP = PLAN.sweep
# One training job per shard: a few series of one experiment (``series_per_shard``).
SHARDS = Paramspace(SWEEP[["experiment", "shard"]].drop_duplicates().reset_index(drop=True))
CLAIMS = PLAN.claims
PREDICTED_CLAIMS = PLAN.predicted_claims()
# Jobs load the plug-ins themselves; relative paths keep the parameters independent of where the project lies.
PLUGINS = [os.path.relpath(p.path) for p in PLAN.plugins]


wildcard_constraints:
    experiment="[A-Za-z0-9_]+",
    shard="[0-9]+",
    claim="[A-Z][A-Za-z0-9]*",


def shard_dir(experiment, shard):
    return f"experiment~{experiment}/shard~{shard}"


def shards_of_claim(claim):
    """(experiment, shard) pairs of the experiments that carry a claim."""
    rows = SWEEP[SWEEP["experiment"].isin(PLAN.experiments_of(claim))]
    return rows[["experiment", "shard"]].drop_duplicates().itertuples(index=False)


def shard_rows(wildcards):
    return SWEEP[(SWEEP["experiment"] == wildcards.experiment) & (SWEEP["shard"] == int(wildcards.shard))]


def get_shard_specs(wildcards):
    return [spec.as_dict() for spec in shard_rows(wildcards)["spec"]]


def get_train_gpu(wildcards):
    return PLAN.train_gpus(wildcards.experiment)


def get_train_mem_mb(wildcards):
    """Memory of a training job on its first attempt: at least 2 GB, more for shards recording many rows."""
    return max(2000, estimate_memory_mb(list(shard_rows(wildcards)["spec"])))


def get_predict_inputs(wildcards):
    """The shard's trajectory and metadata, and its vectors file where its series set their vectors apart."""
    run = f"results/runs/{shard_dir(wildcards.experiment, wildcards.shard)}"
    inputs = dict(trajectory=f"{run}/trajectory.parquet", meta=f"{run}/meta.json.gz")
    if PLAN.vectors_apart(wildcards.experiment):
        inputs["vectors"] = f"{run}/vectors.parquet"
    return inputs


def get_measure_inputs(wildcards):
    pairs = [shard_dir(e, s) for e, s in shards_of_claim(wildcards.claim)]
    inputs = dict(
        trajectories=[f"results/runs/{p}/trajectory.parquet" for p in pairs],
        metas=[f"results/runs/{p}/meta.json.gz" for p in pairs],
    )
    if wildcards.claim in PREDICTED_CLAIMS:
        inputs["predictions"] = [f"results/predictions/{wildcards.claim}/{p}.parquet" for p in pairs]
        inputs["infos"] = [f"results/predictions/{wildcards.claim}/{p}.json" for p in pairs]
    return inputs


def measure_options():
    return dict(config.get("measure", {}))


def experiment_trajectories(experiment):
    rows = SWEEP[SWEEP["experiment"] == experiment]
    return [f"results/runs/{shard_dir(experiment, s)}/trajectory.parquet" for s in sorted(set(rows["shard"]))]


def get_figure_trajectories(wildcards):
    """Experiment -> trajectory files, for a claim with figures drawn from trajectories (else empty)."""
    if not PLAN.figures(wildcards.claim, "trajectories"):
        return {}
    return {e: experiment_trajectories(e) for e in PLAN.experiments_of(wildcards.claim)}


def get_draw_inputs(wildcards):
    files = [f for fs in get_figure_trajectories(wildcards).values() for f in fs]
    measures = f"results/measures/{wildcards.claim}"
    return dict(fits=f"{measures}.csv", points=f"{measures}_points.csv.gz", trajectories=files)


# Fingerprints of the package code (and plug-ins) each job runs: editing it reruns the job.
def get_train_code(wildcards):
    return PLAN.train_code(wildcards.experiment)


def get_predict_code(wildcards):
    return PLAN.claim_code(wildcards.claim, "predict")


def get_measure_code(wildcards):
    return PLAN.claim_code(wildcards.claim, "measure")


def get_draw_code(wildcards):
    return PLAN.draw_code(wildcards.claim)


def get_captions(wildcards):
    return PLAN.captions(wildcards.claim)


def get_final_outputs():
    """Every file the pipeline writes, intermediate ones included: a deleted one is rebuilt (with what depends
    on it) by the next run, instead of being skipped because the files after it exist. A claim's figures are
    one folder, drawn by one job: deleting the folder draws them again."""
    outputs = ["results/claims.csv", "results/claims.md"]
    for e, s in SHARDS.itertuples(index=False):
        run = f"results/runs/{shard_dir(e, s)}"
        outputs += [f"{run}/trajectory.parquet", f"{run}/meta.json.gz"]
    for c in CLAIMS:
        outputs += [f"results/measures/{c}.csv", f"results/measures/{c}_points.csv.gz"]
        for e, s in shards_of_claim(c):
            if c in PREDICTED_CLAIMS:
                outputs += [f"results/predictions/{c}/{shard_dir(e, s)}.parquet",
                            f"results/predictions/{c}/{shard_dir(e, s)}.json"]
        outputs.append(f"results/figures/{c}")
    return outputs
