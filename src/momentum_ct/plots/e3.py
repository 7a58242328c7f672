"""Figure of claim E3: distance of the EKI ensemble mean to its continuous-time limit against h."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.claim import Claim
from .style import log_axes, save, setup


def error_vs_h(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Log-log sup error against h, one panel per experiment, fitted orders written in each panel."""
    setup()
    points = pd.read_csv(inputs["points"])
    fits = pd.read_csv(inputs["fits"])
    points = points[np.isfinite(points["err"])]
    # one ensemble method per panel as a rule; its label (all hyperparameters) is too long for a legend
    points = points.assign(series=[f"J={m.split('J=')[1].split(',')[0].split(')')[0]}" if "J=" in m else m
                                   for m in points["method"]])
    grid = sns.relplot(data=points, x="h", y="err", hue="series", style="seed", col="experiment", kind="line",
                       marker="o", estimator=None, facet_kws=dict(sharex=False, sharey=False), height=2.6, aspect=1.2)
    for ax in grid.axes.flat:
        log_axes(ax)
        xs, ys = np.array(ax.get_xlim()), np.array(ax.get_ylim())
        ax.plot(xs, ys[0] * xs / xs[0], color="grey", ls=":", lw=1)
    orders = fits[fits["quantity"] == "order"]
    for experiment, ax in grid.axes_dict.items():
        here = orders[orders["experiment"] == experiment]
        text = "\n".join(f"seed {r.seed}: {r.measured:.3f}" for r in here.itertuples())
        ax.text(0.97, 0.03, f"order\n{text}", transform=ax.transAxes, ha="right", va="bottom", fontsize=6,
                bbox=dict(facecolor="white", alpha=0.8, lw=0))
    grid.set_axis_labels("learning rate h", "sup_k |mean u_k - mean u(kh)|")
    grid.figure.suptitle("E3: EKI mean against its ensemble flow (dotted: slope 1)", y=1.02)
    save(grid.figure, output)
