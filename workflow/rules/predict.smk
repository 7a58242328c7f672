rule predict_shard:
    input:
        unpack(get_predict_inputs),
    output:
        prediction=f"results/predictions/{{claim}}/{SHARDS.wildcard_pattern}.parquet",
        info=f"results/predictions/{{claim}}/{SHARDS.wildcard_pattern}.json",
    params:
        ode=config["ode"],
        plugins=PLUGINS,
        code=get_predict_code,
    conda:
        CONDA_ENV
    log:
        f"logs/predict/{{claim}}/{SHARDS.wildcard_pattern}.log",
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    script:
        "../scripts/predict_shard.py"
