"""A batch: several series trained in one process and written to one trajectory file.

Batches keep the number of jobs small (a scheduler starts each job in seconds); the key columns
``method, lam, seed`` tell the series of a batch apart.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..io import concat_columns, write_json, write_table
from .series import SeriesSpec, run_series

SERIES_KEYS = ("method", "lam", "seed")


def run_batch(specs: list[SeriesSpec], log: Callable[[str], None] = print) -> tuple[dict, dict]:
    parts, metas = [], []
    for spec in specs:
        columns, meta = run_series(spec, log)
        n = len(columns["step"])
        parts.append({"method": [spec.method] * n, "lam": [spec.lam] * n, "seed": [spec.seed] * n, **columns})
        metas.append(meta)
    return concat_columns(parts), {"series": metas}


def write_batch(specs: list[SeriesSpec], trajectory: str | Path, meta: str | Path,
                log: Callable[[str], None] = print) -> None:
    columns, metadata = run_batch(specs, log)
    write_table(trajectory, columns)
    write_json(meta, metadata)
