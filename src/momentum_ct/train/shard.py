"""A shard: several series trained in one process (one training job) and written to one trajectory file.

Shards keep the number of jobs small (a scheduler starts each job in seconds); the key columns
``method, lam, seed`` tell the series of a shard apart. Series whose engine is ``stacked`` are
handed to the stacked engine all at once, so every run of the shard is vectorised together; the
others are trained one run after another. The file is the same either way.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

from ..io import concat_columns, is_vector_column, write_json, write_table
from ..problems import make_problem
from .schedule import n_recorded
from .series import STACKED_ENGINES, SeriesSpec, run_series, run_series_stacked

SERIES_KEYS = ("method", "lam", "seed")

# Memory of a training job beyond its recorded rows: interpreter, torch, the engine's working set.
BASE_MEMORY_MB = 1500


def run_shard(specs: list[SeriesSpec], log: Callable[[str], None] = print) -> tuple[dict, dict]:
    stacked = [i for i, spec in enumerate(specs) if spec.engine in STACKED_ENGINES]
    results = dict(zip(stacked, run_series_stacked([specs[i] for i in stacked], log))) if stacked else {}
    parts, metas = [], []
    for i, spec in enumerate(specs):
        columns, meta = results[i] if i in results else run_series(spec, log)
        n = len(columns["step"])
        parts.append({"method": [spec.method] * n, "lam": [spec.lam] * n, "seed": [spec.seed] * n, **columns})
        metas.append(meta)
    return concat_columns(parts), {"series": metas}


def write_shard(specs: list[SeriesSpec], trajectory: str | Path, meta: str | Path,
                log: Callable[[str], None] = print, vectors: str | Path | None = None) -> None:
    """Train the shard and write its trajectory and metadata, and with ``vectors`` its vectors file: the path
    vectors where the series set them apart (``SeriesSpec.vectors_apart``; the trajectory then holds empty ones),
    else a table without rows."""
    columns, metadata = run_shard(specs, log)
    if vectors is not None:
        write_table(vectors, set_apart(columns) if all(s.vectors_apart for s in specs) else {})
    write_table(trajectory, columns)
    write_json(meta, metadata)


def set_apart(columns: dict) -> dict:
    """The vector columns of ``columns`` (lists of arrays), left in it as empty vectors: the same rows in both."""
    apart = {}
    for name, values in columns.items():
        if is_vector_column(values):
            apart[name], columns[name] = values, [v[:0] for v in values]
    return apart


@functools.lru_cache(maxsize=None)
def problem_dimension(problem: str, options: str) -> int:
    """The parameter count of a problem with its options (a JSON text, so that calls are cached)."""
    return make_problem(problem, **json.loads(options)).dim


def estimate_memory_mb(specs: list[SeriesSpec]) -> int:
    """Memory (MB) a shard needs: each recorded row holds ``x`` and ``m`` (float64) and is held about three
    times (recorders, the table, the parquet writer), plus ``BASE_MEMORY_MB``. Paper-scale shards of
    network runs record gigabytes; a scheduler needs to know."""
    row_bytes = 0
    for spec in specs:
        dim = problem_dimension(spec.problem, json.dumps(spec.problem_options, sort_keys=True))
        rows = sum(n_recorded(spec.steps_for(h), spec.n_records, spec.dense_steps) for h in spec.h)
        row_bytes += rows * 2 * 8 * dim
    return BASE_MEMORY_MB + int(3 * row_bytes / 2**20)
