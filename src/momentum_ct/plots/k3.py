"""Figures of claim K3: the distance to the invariant manifold, its contraction ratio, the phase portrait
of the 2-D toy, and the competing modified losses."""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.k3 import FORMULAS, PAPER
from ..claims.claim import Claim
from .style import empty_panel, log_axes, method_order, save, setup

FORMULA_LABELS = {"kovachki_stuart": "F_h (Kovachki & Stuart)", "flow": "f (K1 flow)",
                  "barrett_dherin": "Barrett & Dherin", "ghosh": "Ghosh et al. (HB form)",
                  "from_start": "F_h from x_0 (through transient)"}


def _points(inputs, kind: str) -> pd.DataFrame:
    points = pd.read_csv(inputs["points"], low_memory=False)
    return points[points["kind"] == kind].copy()


def manifold_distance(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """|m_k - phi(x_k)| against k at the finest h, leading-order and corrected manifold, lam^k for reference."""
    setup()
    d = _points(inputs, "distance")
    d = d[d["h"] == d.groupby(["experiment", "method", "lam", "seed"])["h"].transform("min")]
    d = d[d["distance"] > 0]
    grid = sns.relplot(data=d, x="step", y="distance", hue="manifold", style="method", col="problem", row="lam",
                       kind="line", hue_order=["leading", "corrected"],
                       style_order=method_order(d["method"]), units="seed", estimator=None,
                       facet_kws=dict(sharex=False, sharey=False), height=2.6, aspect=1.3)
    for (lam, problem), ax in grid.axes_dict.items():
        ax.set_yscale("log")
        here = d[(d["lam"] == lam) & (d["problem"] == problem)]
        if len(here):
            k = np.arange(int(here["step"].max()) + 1)
            ax.plot(k, here.loc[here["step"] == 0, "distance"].max() * lam**k, color="grey", ls=":", lw=1)
            ax.set_ylim(0.3 * here["distance"].min(), 3.0 * here["distance"].max())
    grid.set_axis_labels("step k (finest h)", "|m_k - phi(x_k)|")
    grid.figure.suptitle("K3: distance of the velocity from the invariant manifold (dotted: lam^k)", y=1.02)
    save(grid.figure, output)


def contraction(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Fitted per-step contraction ratio over lam against h, per problem; band: the tolerance."""
    setup()
    quantity = claim.quantity("contraction_ratio")
    c = _points(inputs, "contraction")
    c = c[np.isfinite(c["ratio"])].copy()
    c["ratio / lam"] = c["ratio"] / c["lam"]
    c["series"] = c["method"] + ", " + c["manifold"]
    order = [f"{m}, {k}" for m in method_order(c["method"]) for k in ("leading", "corrected") if f"{m}, {k}" in set(c["series"])]
    grid = sns.relplot(data=c, x="h", y="ratio / lam", hue="series", style="lam", col="problem", kind="line",
                       marker="o", hue_order=order, units="seed", estimator=None, height=3.0, aspect=1.1,
                       facet_kws=dict(sharex=False, sharey=True))
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        ax.axhspan(1.0 - quantity.tolerance, 1.0 + quantity.tolerance, color="grey", alpha=0.15, lw=0)
        ax.axhline(1.0, color="grey", ls=":", lw=1)
    grid.set_axis_labels("learning rate h", "fitted ratio / lam")
    grid.figure.suptitle("K3: contraction towards the manifold, per step, over lam "
                        f"(band: {quantity.tolerance_text} tolerance)", y=1.03)
    save(grid.figure, output)


def phase_portrait(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Toy 2-D problem, third-coarsest h: each coordinate's (x_i, m_i) falling from m_0 = 0 onto the manifold,
    drawn as ``phi(x_k)`` along the same iterates (leading order and first-order corrected)."""
    setup()
    p = _points(inputs, "phase")
    if p.empty:
        empty_panel(output, "K3: phase portrait", "no 2-D problem carries K3")
        return
    # the third-coarsest h: the transient still spans a visible stretch of x, the O(h) offset is small
    rank = p.groupby(["experiment", "method", "lam", "seed"])["h"].rank(method="dense", ascending=False)
    p = p[rank == min(3, int(rank.max()))]
    lams = sorted(p["lam"].unique())
    methods = method_order(p["method"])
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    fig, axes = plt.subplots(2, len(lams), figsize=(3.6 * len(lams), 6.2), squeeze=False)
    for j, lam in enumerate(lams):
        for i, coord in enumerate(("1", "2")):
            ax = axes[i, j]
            for n, method in enumerate(methods):  # the first thick, so the next shows on it
                r = p[(p["lam"] == lam) & (p["method"] == method)].sort_values("step")
                ax.plot(r[f"x_{coord}"], r[f"phi_{coord}"], color="black", lw=3.0, alpha=0.2)
                ax.plot(r[f"x_{coord}"], r[f"psi_{coord}"], color="black", lw=0.8, ls="--")
                ax.plot(r[f"x_{coord}"], r[f"m_{coord}"], color=palette[method], lw=2.4 if n == 0 else 1.0,
                        marker=".", ms=4 if n == 0 else 2, label=method)
                ax.plot(r[f"x_{coord}"].iloc[:1], r[f"m_{coord}"].iloc[:1], "o", color=palette[method], ms=6,
                        mfc="none")
            h = float(p[p["lam"] == lam]["h"].max())
            ax.set(xlabel=f"x_{coord}", ylabel=f"m_{coord}", title=f"lam={lam:g}, h={h:.3g}")
    handles = [plt.Line2D([], [], color=palette[m], marker=".", label=m) for m in methods]
    handles.append(plt.Line2D([], [], color="black", lw=3.0, alpha=0.2, label="manifold, leading order"))
    handles.append(plt.Line2D([], [], color="black", lw=0.8, ls="--", label="manifold, first-order corrected"))
    handles.append(plt.Line2D([], [], color="grey", marker="o", mfc="none", ls="", label="k = 0 (m_0 = 0)"))
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.07))
    fig.suptitle("K3: toy 2-D problem, velocity m_k against position x_k per coordinate: the iterates fall\n"
                 "from m_0 = 0 onto the manifold m = phi(x) in a few steps, then follow it")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save(fig, output)


def modified_loss(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Sup error after the transient against h for every modified loss, one panel per method and problem/lam.

    Coinciding formulas (Ghosh et al.'s on HB, all three on GD) overlap: F_h is drawn thick underneath.
    """
    setup()
    e = _points(inputs, "modified_error")
    e = e[np.isfinite(e["err"]) & (e["err"] > 0)].copy()
    e["panel"] = e["problem"] + ", lam=" + e["lam"].map("{:g}".format)
    cols = sorted(e["panel"].unique())
    rows = method_order(e["method"])
    grid = sns.FacetGrid(e, row="method", col="panel", row_order=rows, col_order=cols, sharex="col", sharey=False,
                         height=2.2, aspect=1.1, margin_titles=True)
    styles = {"kovachki_stuart": dict(color="C0", lw=3.0, ls="-", marker="o", alpha=0.6),
              "flow": dict(color="C1", lw=1.2, ls="--", marker="x"),
              "barrett_dherin": dict(color="C2", lw=1.2, ls=":", marker="+"),
              "ghosh": dict(color="C3", lw=1.2, ls="-.", marker="^", mfc="none"),
              "from_start": dict(color="C4", lw=1.2, ls=(0, (4, 1, 1, 1, 1, 1)), marker="s", mfc="none")}
    for (method, panel), ax in grid.axes_dict.items():
        here = e[(e["method"] == method) & (e["panel"] == panel)]
        for f, style in styles.items():
            r = here[here["formula"] == f].sort_values("h")
            if len(r):
                ax.plot(r["h"], r["err"], ms=4, **style)
        log_axes(ax)
    handles = [plt.Line2D([], [], ms=4, label=FORMULA_LABELS[f], **s) for f, s in styles.items()]
    grid.figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.set_axis_labels("learning rate h", "sup |x_k - y(t_k)|")
    grid.figure.suptitle("K3: iterates against modified-loss flows started after the transient", y=1.02)
    save(grid.figure, output)


def formula_table(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Which modified loss fits best: error over the best one's at the finest fitted h (colour, log10) and the
    fitted order (text), one row per problem, method and lam."""
    setup()
    e = _points(inputs, "modified_error")
    e = e[e["formula"].isin(FORMULAS) & np.isfinite(e["err"])]
    fits = pd.read_csv(inputs["fits"])
    keys = ["problem", "method", "lam"]
    cells = []
    for key, g in e.groupby(keys + ["experiment", "seed"]):
        ks = fits[(fits["problem"] == key[0]) & (fits["method"] == key[1]) & (fits["lam"] == key[2])
                  & (fits["quantity"] == "order")]
        h = float(ks["h_min"].iloc[0]) if len(ks) and np.isfinite(ks["h_min"].iloc[0]) else float(g["h"].min())
        at_h = g[np.isclose(g["h"], h)].set_index("formula")["err"]
        best = at_h.min()
        for f, err in at_h.items():
            q = "order" if f == PAPER else f"order_{f}"
            order = fits[(fits["problem"] == key[0]) & (fits["method"] == key[1]) & (fits["lam"] == key[2])
                         & (fits["quantity"] == q)]["measured"]
            cells.append(dict(row=f"{key[0]} {key[1]} lam={key[2]:g}", formula=FORMULA_LABELS[f],
                              excess=np.log10(err / best), order=float(order.iloc[0]) if len(order) else np.nan))
    table = pd.DataFrame(cells)
    excess = table.pivot(index="row", columns="formula", values="excess")
    order = table.pivot(index="row", columns="formula", values="order")
    columns = [FORMULA_LABELS[f] for f in FORMULAS if FORMULA_LABELS[f] in excess.columns]
    excess, order = excess[columns], order[columns]
    fig, ax = plt.subplots(figsize=(1.6 * len(columns) + 2.5, 0.32 * len(excess) + 1.5))
    annot = order.map(lambda v: f"{v:.2f}") + "\n" + excess.map(lambda v: f"x{10**v:.3g}")
    sns.heatmap(excess, annot=annot, fmt="", cmap="rocket_r", vmin=0.0,
                cbar_kws=dict(label="log10(error / best error)"),
                ax=ax, annot_kws=dict(fontsize=6), linewidths=0.5)
    ax.set(xlabel="", ylabel="")
    ax.set_title("K3: which modified loss fits (text: fitted order; error over the best formula's, finest fitted h)",
                 fontsize=9)
    ax.tick_params(axis="x", labelrotation=20)
    save(fig, output)
