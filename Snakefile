# Replication of continuous-time analyses of momentum methods: train -> predict -> measure -> judge -> draw.
from snakemake.utils import min_version

min_version("9.0")


# The default configuration, unless --configfile names another: then that one alone is used (Snakemake
# would otherwise merge the two, and the default's experiments would leak into a CI or paper-scale run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/draw.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
