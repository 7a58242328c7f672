import logging

from momentum_ct.stages import measure, load_plugins

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(message)s")
load_plugins(snakemake.params.plugins)
inp = snakemake.input
measure(snakemake.wildcards.claim, list(inp.trajectories), list(inp.metas), list(inp.get("predictions", [])),
        list(inp.get("infos", [])), snakemake.output.fits, snakemake.output.points, snakemake.params.options)
