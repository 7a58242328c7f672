"""Figure of claim E1: EKI's test accuracy against the ensemble size, beside SGD's."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from ..claims.claim import Claim
from .style import save, setup


def accuracy_vs_j(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    setup()
    points = pd.read_csv(inputs["points"])
    points = points[np.isfinite(points["accuracy_eki"])]
    grid = sns.relplot(data=points, x="J", y="accuracy_eki", hue="seed", col="experiment", kind="line", marker="o",
                       estimator=None, units="h", facet_kws=dict(sharex=False, sharey=False), height=2.6, aspect=1.2)
    for experiment, ax in grid.axes_dict.items():
        here = points[points["experiment"] == experiment]
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        for sgd in sorted(set(here["accuracy_sgd"].round(6))):
            ax.axhline(sgd, color="grey", ls="--", lw=1)
        ax.axvline(float(here["dim"].iloc[0]), color="grey", ls=":", lw=1)
    grid.set_axis_labels("ensemble size J", "final test accuracy")
    grid.figure.suptitle("E1: EKI (markers) against SGD (dashed); dotted: parameter count", y=1.02)
    save(grid.figure, output)
