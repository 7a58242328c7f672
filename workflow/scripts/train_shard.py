import logging

import torch

from momentum_ct.stages import train, load_plugins

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
load_plugins(snakemake.params.plugins)
torch.set_num_threads(snakemake.threads)
train(snakemake.params.specs, snakemake.output.trajectory, snakemake.output.meta, snakemake.output.vectors)
