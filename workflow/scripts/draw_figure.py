import logging

from momentum_ct.stages import draw

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
draw(snakemake.wildcards.figure, dict(fits=snakemake.input.fits, points=snakemake.input.points), snakemake.output[0])
