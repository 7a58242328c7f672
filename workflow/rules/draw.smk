# One job per claim draws all its figures: each takes about a second, a job several to start.
rule draw_claim_figures:
    input:
        unpack(get_draw_inputs),
    output:
        report(
            directory("results/figures/{claim}"),
            patterns=["{figure}.png"],
            caption="../report/figure.rst",
            category="{claim}",
            labels={"figure": "{figure}"},
        ),
    params:
        captions=get_captions,
        trajectories=get_figure_trajectories,
        plugins=PLUGINS,
        code=get_draw_code,
    conda:
        CONDA_ENV
    log:
        "logs/draw/{claim}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../scripts/draw_figures.py"
