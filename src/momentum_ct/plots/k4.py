"""Figures of claim K4: training curves against rescaled time, and the largest gap against h."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.claim import Claim
from ..io import read_trajectory
from .style import empty_panel, log_axes, method_order, save, setup


def curves(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Loss and test accuracy against t/(1-lam) for the smallest and largest h of each experiment."""
    setup()
    data = pd.concat([read_trajectory(p).drop(columns=["x", "m"], errors="ignore") for p in inputs["trajectories"]],
                     ignore_index=True)
    data["tau"] = data["t"] / (1.0 - data["lam"])
    hs = sorted(data["h"].unique())
    data = data[data["h"].isin([hs[0], hs[-1]])].copy()
    data["h"] = data["h"].map(lambda h: f"{h:.3g}")
    long = data.melt(id_vars=["method", "h", "tau", "lam", "seed"], value_vars=[c for c in ("loss", "test_accuracy")
                                                                               if c in data], var_name="curve")
    grid = sns.relplot(data=long, x="tau", y="value", hue="method", style="method", row="curve", col="h",
                       kind="line", hue_order=method_order(long["method"]),
                       facet_kws=dict(sharey="row"), height=2.4, aspect=1.4, errorbar=None)
    grid.set_axis_labels("rescaled time t / (1 - lam)", "")
    grid.figure.suptitle(f"K4 ({inputs['experiment']}): curves against rescaled time", y=1.02)
    save(grid.figure, output)


def gap_vs_h(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Largest loss and accuracy gap to rescaled GD against h, log-log, with the lag prediction and slope 1."""
    setup()
    points = pd.read_csv(inputs["points"])
    frames = []
    for curve in ("loss", "accuracy"):
        if f"gap_{curve}" in points:
            frames.append(points.assign(curve=curve, gap=points[f"gap_{curve}"], lag_gap=points[f"lag_gap_{curve}"]))
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["gap", "lag_gap"])
    long = long[np.isfinite(long["gap"]) & (long["gap"] > 0)]
    if long.empty:
        empty_panel(output, "K4: gap against h", "no finite gap (every run diverged?)")
        return
    grid = sns.relplot(data=long, x="h", y="gap", hue="method", hue_order=method_order(long["method"]),
                       style="lam", col="experiment", row="curve", kind="line", marker="o", height=2.6, aspect=1.2,
                       errorbar=None, facet_kws=dict(sharey=False))
    for (curve, experiment), ax in grid.axes_dict.items():
        here = long[(long["curve"] == curve) & (long["experiment"] == experiment)]
        for lam, g in here.groupby("lam"):
            pred = g.drop_duplicates("h").sort_values("h")
            ax.plot(pred["h"], pred["lag_gap"], color="black", ls="--", lw=1)
        log_axes(ax)
        xs, ys = np.array(ax.get_xlim()), np.array(ax.get_ylim())
        ax.plot(xs, ys[0] * xs / xs[0], color="grey", ls=":", lw=1)
    grid.set_axis_labels("learning rate h", "largest gap to GD with h/(1-lam)")
    grid.figure.suptitle("K4: momentum against rescaled GD (dashed: lag prediction; dotted: slope 1)", y=1.02)
    save(grid.figure, output)
