"""Figures of claim K4: training curves against rescaled time, and the largest gap against h."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from ..io import read_trajectory
from .style import METHOD_ORDER, log_axes, save, setup


def curves(inputs: dict[str, str], output: str) -> None:
    """Loss and test accuracy against t/(1-lam) for the smallest and largest h of each experiment."""
    setup()
    data = pd.concat([read_trajectory(p).drop(columns=["x", "m"]) for p in inputs["trajectories"]],
                     ignore_index=True)
    data["tau"] = data["t"] / (1.0 - data["lam"])
    hs = sorted(data["h"].unique())
    data = data[data["h"].isin([hs[0], hs[-1]])].copy()
    data["h"] = data["h"].map(lambda h: f"{h:.3g}")
    long = data.melt(id_vars=["method", "h", "tau", "lam", "seed"], value_vars=[c for c in ("loss", "test_accuracy")
                                                                               if c in data], var_name="curve")
    grid = sns.relplot(data=long, x="tau", y="value", hue="method", style="method", row="curve", col="h",
                       kind="line", hue_order=[m for m in METHOD_ORDER if m in set(long["method"])],
                       facet_kws=dict(sharey="row"), height=2.4, aspect=1.4, errorbar=None)
    grid.set_axis_labels("rescaled time t / (1 - lam)", "")
    grid.figure.suptitle(inputs.get("title", "K4: curves against rescaled time"), y=1.02)
    save(grid.figure, output)


def gap_vs_h(inputs: dict[str, str], output: str) -> None:
    """Largest loss and accuracy gap to rescaled GD against h, log-log, per experiment."""
    setup()
    points = pd.read_csv(inputs["points"])
    value_vars = [c for c in ("max_gap_loss", "max_gap_accuracy") if c in points]
    long = points.melt(id_vars=["experiment", "method", "lam", "seed", "h"], value_vars=value_vars,
                       var_name="gap", value_name="value")
    long = long[np.isfinite(long["value"]) & (long["value"] > 0)]
    grid = sns.relplot(data=long, x="h", y="value", hue="method", style="gap", col="experiment", kind="line",
                       marker="o", height=2.8, aspect=1.2, errorbar=None)
    for ax in grid.axes.flat:
        log_axes(ax)
    grid.set_axis_labels("learning rate h", "largest gap to GD with h/(1-lam)")
    grid.figure.suptitle("K4: momentum against rescaled GD", y=1.02)
    save(grid.figure, output)
