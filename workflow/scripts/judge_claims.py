import logging

from momentum_ct.stages import judge

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
judge(list(snakemake.input.fits), snakemake.output.csv, snakemake.output.md)
