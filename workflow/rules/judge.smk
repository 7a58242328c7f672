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
    conda:
        CONDA_ENV
    log:
        "logs/judge/claims.log",
    script:
        "../scripts/judge_claims.py"
