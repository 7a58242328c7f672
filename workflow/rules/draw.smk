rule draw_claim_figure:
    input:
        fits="results/measures/{claim}.csv",
        points="results/measures/{claim}_points.csv",
    output:
        report(
            "results/figures/{claim}/{figure}.png",
            # A caption path cannot hold wildcards: one template picks the text by figure.
            caption="../report/claim_figure.rst",
            category="{claim}",
        ),
    conda:
        CONDA_ENV
    log:
        "logs/draw/{claim}/{figure}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    wildcard_constraints:
        figure="(?!k4_curves)[a-z0-9_]+",
    script:
        "../scripts/draw_figure.py"


rule draw_k4_curves:
    input:
        trajectories=get_experiment_trajectories,
    output:
        report(
            "results/figures/K4/k4_curves_{experiment}.png",
            caption="../report/k4_curves.rst",
            category="K4",
            labels={"experiment": "{experiment}"},
        ),
    conda:
        CONDA_ENV
    log:
        "logs/draw/K4/k4_curves_{experiment}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../scripts/draw_k4_curves.py"
