rule draw_claim_figure:
    input:
        fits="results/measures/{claim}.csv",
        points="results/measures/{claim}_points.csv",
    output:
        report(
            "results/figures/{claim}/{figure}.png",
            caption="../report/figure.rst",
            category="{claim}",
        ),
    params:
        caption=get_caption,
        plugins=PLUGINS,
        code=get_draw_code,
    conda:
        CONDA_ENV
    log:
        "logs/draw/{claim}/{figure}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../scripts/draw_figure.py"


rule draw_experiment_figure:
    input:
        trajectories=get_experiment_trajectories,
    output:
        report(
            "results/figures/{claim}/{experiment}/{figure}.png",
            caption="../report/figure.rst",
            category="{claim}",
            labels={"experiment": "{experiment}", "figure": "{figure}"},
        ),
    params:
        caption=get_caption,
        plugins=PLUGINS,
        code=get_draw_code,
    conda:
        CONDA_ENV
    log:
        "logs/draw/{claim}/{experiment}/{figure}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../scripts/draw_experiment_figure.py"
