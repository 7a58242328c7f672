import logging

from momentum_ct.stages import draw

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
draw("k4_curves", dict(trajectories=list(snakemake.input.trajectories),
                       title=f"K4 ({snakemake.wildcards.experiment}): curves against rescaled time"),
     snakemake.output[0])
