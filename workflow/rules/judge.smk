rule judge_claims:
    input:
        fits=expand("results/measures/{claim}.csv", claim=CLAIMS),
    output:
        csv="results/claims.csv",
        md=report(
            "results/claims.md",
            caption="../report/claims.rst",
            category="Claims",
        ),
    params:
        plugins=PLUGINS,
        code=PLAN.judge_code(),
    conda:
        CONDA_ENV
    log:
        "logs/judge/claims.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 15 * attempt,
    script:
        "../scripts/judge_claims.py"
