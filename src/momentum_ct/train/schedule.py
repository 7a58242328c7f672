"""Which steps of a run are recorded.

A uniform grid in ``t = k h`` (so runs with different ``h`` share recording times and one ODE
solve serves them all), plus the first ``dense_steps`` steps, where transients live.
"""
from __future__ import annotations

import functools

import numpy as np


def n_steps_for(horizon: float, h: float) -> int:
    """Number of steps that reach time ``horizon`` with step size ``h`` (rounded to the nearest)."""
    return max(1, int(round(horizon / h)))


def record_steps(n_steps: int, n_records: int, dense_steps: int = 0) -> np.ndarray:
    """Sorted unique step indices in ``[0, n_steps]``: ``n_records`` intervals plus a dense head."""
    grid = np.rint(np.linspace(0, n_steps, n_records + 1)).astype(np.int64)
    head = np.arange(min(dense_steps, n_steps + 1), dtype=np.int64)
    return np.unique(np.concatenate([grid, head]))


@functools.lru_cache(maxsize=None)
def n_recorded(n_steps: int, n_records: int, dense_steps: int = 0) -> int:
    """How many steps ``record_steps`` records (cached: a sweep's runs share a few schedules)."""
    return len(record_steps(n_steps, n_records, dense_steps))
