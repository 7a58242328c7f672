import logging

from momentum_ct.stages import draw_all, load_plugins

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
load_plugins(snakemake.params.plugins)
draw_all(snakemake.wildcards.claim, snakemake.input.fits, snakemake.input.points, snakemake.params.trajectories,
         snakemake.output[0])
