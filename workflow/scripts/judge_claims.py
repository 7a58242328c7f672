import logging

from momentum_ct.stages import judge, load_plugins

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
load_plugins(snakemake.params.plugins)
judge(list(snakemake.input.fits), snakemake.output.csv, snakemake.output.md)
