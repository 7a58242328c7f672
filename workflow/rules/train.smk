rule train_shard:
    output:
        trajectory=f"results/runs/{SHARDS.wildcard_pattern}/trajectory.parquet",
        meta=f"results/runs/{SHARDS.wildcard_pattern}/meta.json.gz",
        # a network's path vectors, for its prediction jobs only (empty where the trajectory keeps them)
        vectors=temp(f"results/runs/{SHARDS.wildcard_pattern}/vectors.parquet"),
    params:
        specs=get_shard_specs,
        plugins=PLUGINS,
        code=get_train_code,
    conda:
        CONDA_ENV
    log:
        f"logs/train/{SHARDS.wildcard_pattern}.log",
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: get_train_mem_mb(wc) * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
        gpu=get_train_gpu,
    script:
        "../scripts/train_shard.py"
