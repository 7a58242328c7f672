"""Figures of claim K1: error against h, and the fitted time-rescaling factor against 1/(1-lam)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.claim import Claim
from .style import annotate_orders, log_axes, method_order, save, setup


def error_vs_h(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Log-log sup error against h, one panel per problem and lam, fitted orders written in each panel."""
    setup()
    points = pd.read_csv(inputs["points"])
    fits = pd.read_csv(inputs["fits"])
    orders = fits[fits["quantity"] == "order"]
    points = points[np.isfinite(points["err"])]
    hue_order = method_order(points["method"])
    grid = sns.relplot(data=points, x="h", y="err", hue="method", col="problem", row="lam", kind="line",
                       marker="o", hue_order=hue_order, units="seed", estimator=None,
                       facet_kws=dict(sharex=False, sharey=False), height=2.6, aspect=1.2)
    for ax in grid.axes.flat:
        log_axes(ax)
        xs, ys = np.array(ax.get_xlim()), np.array(ax.get_ylim())
        ax.plot(xs, ys[0] * xs / xs[0], color="grey", ls=":", lw=1)
    annotate_orders(grid, orders, "order")
    grid.set_axis_labels("learning rate h", "sup_k |x_k - x(kh)|")
    grid.figure.suptitle("K1: distance to the time-rescaled gradient flow (dotted: slope 1)", y=1.02)
    save(grid.figure, output)


def rescale_factor(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Relative deviation of the fitted c from 1/(1-lam), per problem, lam and method, with the tolerance band."""
    setup()
    quantity = claim.quantity("rescale_factor")
    band = 100.0 * quantity.tolerance  # a relative tolerance, drawn in percent
    fits = pd.read_csv(inputs["fits"])
    rows = fits[fits["quantity"] == "rescale_factor"].copy()
    for col in ("measured", "ci_low", "ci_high"):
        rows[col + "_pct"] = 100.0 * (rows[col] / rows["predicted"] - 1.0)
    methods = method_order(rows["method"])
    lams = sorted(rows["lam"].unique())
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    grid = sns.FacetGrid(rows, col="problem", height=2.8, aspect=1.0, sharey=False)
    for problem, ax in grid.axes_dict.items():
        here = rows[rows["problem"] == problem]
        for j, method in enumerate(methods):
            r = here[here["method"] == method]
            x = np.array([lams.index(l) for l in r["lam"]]) + 0.15 * (j - (len(methods) - 1) / 2)
            err = np.abs(np.vstack([r["measured_pct"] - r["ci_low_pct"], r["ci_high_pct"] - r["measured_pct"]]))
            ax.errorbar(x, r["measured_pct"], yerr=np.nan_to_num(err), fmt="o", color=palette[method], label=method,
                        capsize=2)
        ax.axhspan(-band, band, color="grey", alpha=0.15, lw=0)
        ax.axhline(0.0, color="grey", ls=":", lw=1)
        ax.set_xticks(range(len(lams)), [f"{l:g}" for l in lams])
        ax.set(xlabel="lam", ylabel="c (1 - lam) - 1  [%]")
    grid.axes.flat[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    grid.figure.suptitle(f"K1: fitted time-rescaling factor against 1/(1 - lam) (band: {quantity.tolerance_text} "
                        "tolerance)", y=1.04)
    save(grid.figure, output)
