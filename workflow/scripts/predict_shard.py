import logging

import torch

from momentum_ct.stages import predict, load_plugins

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
load_plugins(snakemake.params.plugins)
torch.set_num_threads(snakemake.threads)
predict(snakemake.wildcards.claim, snakemake.input.trajectory, snakemake.input.meta,
        snakemake.output.prediction, snakemake.output.info, snakemake.params.ode,
        snakemake.input.get("vectors"))
