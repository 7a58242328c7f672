import logging

from momentum_ct.stages import draw, load_plugins

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
load_plugins(snakemake.params.plugins)
draw(snakemake.wildcards.claim, snakemake.wildcards.figure,
     dict(fits=snakemake.input.fits, points=snakemake.input.points), snakemake.output[0])
