"""Claim K4: momentum with (h, lam) and GD with h/(1-lam) give the same curves against t/(1-lam)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..ct.fit import loglog_slope
from ..train.series import SeriesSpec
from .common import row

REFERENCE = "gd_rescaled"
CURVES = {"loss": "max_gap_loss", "test_accuracy": "max_gap_accuracy"}


def _curve(run: pd.DataFrame, column: str, grid: np.ndarray) -> np.ndarray:
    return np.interp(grid, run["t"].to_numpy(), run[column].to_numpy(), right=np.nan)


def gaps(traj: pd.DataFrame, specs: dict[tuple, SeriesSpec], n_grid: int = 200) -> pd.DataFrame:
    """Largest |momentum curve - rescaled-GD curve| per (method, lam, seed, h) on a common time grid.

    Both curves are recorded on the same ``t = k h`` grid (same h), so ``t / (1 - lam)`` is common.
    A diverged run has an infinite gap.
    """
    out = []
    for (lam, seed, h), group in traj.groupby(["lam", "seed", "h"], sort=True):
        ref = group[group["method"] == REFERENCE]
        if ref.empty:
            continue
        grid = np.linspace(0.0, group["t"].max(), n_grid)
        for method, run in group.groupby("method"):
            if method == REFERENCE:
                continue
            entry = dict(method=method, lam=lam, seed=seed, h=h)
            for column, quantity in CURVES.items():
                if column not in run:
                    continue
                a, b = _curve(run, column, grid), _curve(ref, column, grid)
                if not (np.all(np.isfinite(run[column])) and np.all(np.isfinite(ref[column]))):
                    entry[quantity] = math.inf
                else:
                    entry[quantity] = float(np.nanmax(np.abs(a - b)))
            out.append(entry)
    return pd.DataFrame(out)


def measure(traj: pd.DataFrame, specs: dict[tuple, SeriesSpec], *, confidence: float = 0.95):
    """Fit rows per (method, lam, seed): gaps at the smallest h and the slope of the loss gap in h."""
    table = gaps(traj, specs)
    rows = []
    for (method, lam, seed), g in table.groupby(["method", "lam", "seed"]):
        spec = specs[(method, lam, seed)]
        g = g.sort_values("h")
        smallest = g.iloc[0]
        batch = "full batch" if spec.batch_size is None else f"mini-batch {spec.batch_size}"
        for quantity in CURVES.values():
            if quantity in g:
                rows.append(row("K4", spec, quantity, 0.0, float(smallest[quantity]), h_min=smallest["h"],
                                h_max=smallest["h"], n_points=1, note=batch))
        fit = loglog_slope(g["h"], g["max_gap_loss"], confidence)
        rows.append(row("K4", spec, "gap_slope", 0.0, fit.slope, (fit.ci_low, fit.ci_high), h_min=g["h"].min(),
                        h_max=g["h"].max(), n_points=fit.n_points, note=batch))
    points = table.assign(claim_id="K4", experiment=next(iter(specs.values())).experiment,
                          problem=next(iter(specs.values())).problem)
    return rows, points
