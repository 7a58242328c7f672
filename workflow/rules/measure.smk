rule measure_claim:
    input:
        unpack(get_measure_inputs),
    output:
        fits="results/measures/{claim}.csv",
        points="results/measures/{claim}_points.csv.gz",
    params:
        options=measure_options(),
        plugins=PLUGINS,
        code=get_measure_code,
    conda:
        CONDA_ENV
    log:
        "logs/measure/{claim}.log",
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../scripts/measure_claim.py"
