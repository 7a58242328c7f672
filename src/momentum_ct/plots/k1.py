"""Figures of claim K1: error against h, and the fitted time-rescaling factor against 1/(1-lam)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from .style import METHOD_ORDER, save, setup


def error_vs_h(inputs: dict[str, str], output: str) -> None:
    """Log-log sup error against h, one panel per problem and lam, with the fitted order in the legend."""
    setup()
    points = pd.read_csv(inputs["points"])
    fits = pd.read_csv(inputs["fits"])
    order = fits[fits["quantity"] == "order"].set_index(["experiment", "method", "lam", "seed"])["measured"]
    points = points[np.isfinite(points["err"])].copy()
    points["method (order)"] = [
        f"{m} ({order.get((e, m, l, s), np.nan):.2f})" for e, m, l, s in
        zip(points["experiment"], points["method"], points["lam"], points["seed"])]
    grid = sns.relplot(data=points, x="h", y="err", hue="method", style="method (order)", col="problem",
                       row="lam", kind="line", marker="o", hue_order=[m for m in METHOD_ORDER if m in set(points["method"])],
                       facet_kws=dict(sharex=False, sharey=False), height=2.6, aspect=1.2)
    for ax in grid.axes.flat:
        ax.set(xscale="log", yscale="log")
        xs = np.array(ax.get_xlim())
        ys = np.array(ax.get_ylim())
        ax.plot(xs, ys[0] * xs / xs[0], color="grey", ls=":", lw=1, label="slope 1")
    grid.set_axis_labels("learning rate h", "sup_k |x_k - x(kh)|")
    grid.figure.suptitle("K1: distance to the time-rescaled gradient flow (dotted: slope 1)", y=1.02)
    save(grid.figure, output)


def rescale_factor(inputs: dict[str, str], output: str) -> None:
    """Fitted c against the predicted 1/(1-lam), with the identity line."""
    setup()
    fits = pd.read_csv(inputs["fits"])
    rows = fits[fits["quantity"] == "rescale_factor"].copy()
    grid = sns.relplot(data=rows, x="predicted", y="measured", hue="method", style="problem", s=60, height=3.2)
    ax = grid.ax
    ax.errorbar(rows["predicted"], rows["measured"],
                yerr=np.abs(np.vstack([rows["measured"] - rows["ci_low"], rows["ci_high"] - rows["measured"]])),
                fmt="none", ecolor="grey", lw=1)
    lim = [0.9 * rows["predicted"].min(), 1.1 * rows["predicted"].max()]
    ax.plot(lim, lim, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="predicted 1/(1 - lam)", ylabel="fitted factor c")
    ax.set_title("K1: time-rescaling factor")
    save(grid.figure, output)
