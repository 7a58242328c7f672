"""Figures of claim K2: K1's and K2's errors against h, their ratio against lam, and along the finest run.

Several models nearly coincide (HB's K2 and NAG's unsubstituted form lag alike; HB's and NAG's K1
errors agree), so every series has its own colour and dash, thick solid lines under thin dashed ones.
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.k2 import lag_ratio, transient_steps
from ..claims.claim import Claim
from .style import annotate_orders, log_axes, save, setup

# (model, method) -> line style; drawn in this order, so thin lines lie on thick ones
SERIES = {
    ("rescaled_flow", "hb"): dict(color="0.3", lw=2.6, ls="-", marker="o", label="K1 flow, hb"),
    ("rescaled_flow", "nag"): dict(color="0.7", lw=1.2, ls="--", marker="x", label="K1 flow, nag"),
    ("second_order", "hb"): dict(color="C0", lw=2.6, ls="-", marker="o", label="K2, hb"),
    ("second_order", "nag"): dict(color="C1", lw=1.2, ls="--", marker="x", label="K2, nag"),
    ("second_order_hessian", "nag"): dict(color="C3", lw=1.6, ls=(0, (1, 1.5)), marker="+",
                                          label="K2 unsubstituted (Hessian) form, nag"),
}
SERIES_METHODS = {method for _, method in SERIES}
MODEL_LABELS = {"rescaled_flow": "K1 flow", "second_order": "K2", "second_order_hessian": "K2 unsubstituted form"}


def _points(inputs) -> pd.DataFrame:
    points = pd.read_csv(inputs["points"])
    return points[np.isfinite(points["err"]) & (points["err"] > 0)]


def _with_k1(sup: pd.DataFrame) -> pd.DataFrame:
    """K2's sup rows plus K1's (its error sits in ``err_k1`` of the substituted model's rows)."""
    k1 = sup[sup["model"] == "second_order"].assign(model="rescaled_flow", err=lambda d: d["err_k1"])
    return pd.concat([k1, sup], ignore_index=True)


def _styles(data) -> dict:
    """``SERIES`` for the package's methods; every other (model, method) in ``data`` (a plug-in's method) gets a
    style of its own after them, so no series is left out."""
    styles = {key: s for key, s in SERIES.items() if ((data["model"] == key[0]) & (data["method"] == key[1])).any()}
    others = sorted(set(zip(data["model"], data["method"])) - set(SERIES))
    for j, (model, method) in enumerate(others):
        styles[(model, method)] = dict(color=f"C{(4 + j) % 10}", lw=1.2, ls="-.", marker="^",
                                       label=f"{MODEL_LABELS.get(model, model)}, {method}")
    return styles


def _draw(grid, data, x, y, markers: bool) -> None:
    """Every series in its own style, on a grid with rows ``lam`` and columns ``problem``."""
    styles = _styles(data)
    for (lam, problem), ax in grid.axes_dict.items():
        here = data[(data["lam"] == lam) & (data["problem"] == problem)]
        for (model, method), style in styles.items():
            r = here[(here["model"] == model) & (here["method"] == method)].sort_values(x)
            if r.empty:
                continue
            kw = dict(style) if markers else {k: v for k, v in style.items() if k != "marker"}
            ax.plot(r[x], r[y], ms=4, **kw)
        log_axes(ax)
        ax.set_title(f"{problem}, lam={lam:g}")
    handles = [plt.Line2D([], [], ms=4, **s) for s in styles.values()]
    grid.figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def error_vs_h(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Sup error over the horizon against h, K1's flow and K2's model(s), one panel per problem and lam."""
    setup()
    data = _with_k1(_points(inputs).query("kind == 'sup' and window == 'horizon'"))
    grid = sns.FacetGrid(data, row="lam", col="problem", sharex=False, sharey=False, height=2.6, aspect=1.25)
    _draw(grid, data, "h", "err", markers=True)
    fits = pd.read_csv(inputs["fits"]).query("quantity == 'order'")
    annotate_orders(grid, fits, "K2 order")
    grid.set_axis_labels("learning rate h", "sup_k |x_k - x(kh)|")
    grid.figure.suptitle("K2: second-order modified equation against K1's flow (sup over the horizon)", y=1.02)
    save(grid.figure, output)


def error_in_time(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Distance to K1's flow and to K2's model along the finest run against the step k, transient marked."""
    setup()
    curves = _points(inputs).query("kind == 'curve' and step > 0")
    grid = sns.FacetGrid(curves, row="lam", col="problem", sharex=False, sharey=False, height=2.6, aspect=1.3)
    _draw(grid, curves, "step", "err", markers=False)
    for (lam, problem), ax in grid.axes_dict.items():
        ax.axvline(transient_steps(lam), color="grey", ls=":", lw=1)
    grid.set_axis_labels("step k (finest h)", "|x_k - x(kh)|")
    grid.figure.suptitle("K2: where the gain is, along the finest run (dotted: end of the transient, "
                         "lam^k = 1e-3)", y=1.02)
    save(grid.figure, output)


def error_ratio(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """K2's sup error over K1's at the finest h against lam, horizon and transient, with the lag estimate."""
    setup()
    sup = _points(inputs).query("kind == 'sup'")
    finest = sup[sup["h"] == sup.groupby(["experiment", "method", "lam", "seed"])["h"].transform("min")]
    problems = list(dict.fromkeys(finest["problem"]))
    fig, axes = plt.subplots(1, len(problems), figsize=(3.3 * len(problems), 3.0), sharey=True, squeeze=False)
    lams = np.linspace(0.35, 0.97, 125)
    styles = _styles(finest)
    keys = [k for k in styles if k[0] != "rescaled_flow"]
    for ax, problem in zip(axes.flat, problems):
        here = finest[finest["problem"] == problem]
        for j, (model, method) in enumerate(keys):
            style = styles[(model, method)]
            if method in SERIES_METHODS:  # the lag estimate needs the method's look-ahead as a function of lam
                est = np.array([lag_ratio(method, lam, model) for lam in lams])
                ax.plot(lams, np.where(est > 0, est, np.nan), color=style["color"], lw=0.8, ls=":")
            r = here[(here["model"] == model) & (here["method"] == method)]
            for window, fill in (("horizon", style["color"]), ("transient", "none")):
                w = r[r["window"] == window].sort_values("lam")
                dx = 0.024 * (j - (len(keys) - 1) / 2) + (0.0065 if window == "transient" else -0.0065)
                ax.plot(w["lam"] + dx, w["ratio"], ls="", marker="os"[window == "transient"], ms=6,
                        color=style["color"], mfc=fill)
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_yscale("log")
        ax.set(title=problem, xlabel="momentum lam", xlim=(0.4, 0.97))
        ax.set_ylim(max(ax.get_ylim()[0], 0.3 * finest["ratio"].min()), 2.0)
    axes.flat[0].set_ylabel("K2 error / K1 error (finest h)")
    handles = [plt.Line2D([], [], color=styles[k]["color"], marker="o", ls="", label=styles[k]["label"]) for k in keys]
    handles += [plt.Line2D([], [], color="grey", marker="o", ls="", label="sup over the horizon"),
                plt.Line2D([], [], color="grey", marker="s", mfc="none", ls="", label="sup over the transient"),
                plt.Line2D([], [], color="grey", ls=":", label="constant-gradient lag estimate")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("K2: its error over K1's falls as lam grows (grey line: ratio 1)", y=1.02)
    fig.tight_layout()
    save(fig, output)
