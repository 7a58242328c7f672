"""Figure of claim E2: EKI, closed-form posterior mean and label spreading, test accuracy side by side."""
from __future__ import annotations

from typing import Any

import pandas as pd
import seaborn as sns

from ..claims.claim import Claim
from .style import save, setup

SOURCES = {"accuracy_eki": "EKI mean", "accuracy_closed_form": "posterior mean (closed form)",
           "accuracy_label_spreading": "label spreading"}


def accuracy(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    setup()
    points = pd.read_csv(inputs["points"])
    localised = points["localised"] if "localised" in points else [False] * len(points)
    points["series"] = [f"{e}\nJ={j}{' localised' if loc else ''}"
                        for e, j, loc in zip(points["experiment"], points["J"], localised)]
    long = points.melt(id_vars=["series", "seed", "h"], value_vars=list(SOURCES), var_name="model",
                       value_name="test accuracy")
    long["model"] = long["model"].map(SOURCES)
    grid = sns.catplot(data=long, x="series", y="test accuracy", hue="model", kind="bar", errorbar=None,
                       height=2.8, aspect=1.6)
    grid.set_axis_labels("", "test accuracy (unlabelled nodes)")
    grid.figure.suptitle("E2: graph-based semi-supervised classification", y=1.03)
    save(grid.figure, output)
