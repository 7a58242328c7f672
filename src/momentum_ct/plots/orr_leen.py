"""Figures of the annealed on-line claims (O1-O3), in the paper's style: ``E|v|^2`` against the number of samples
``t`` on log-log axes with confidence bands, and the late-time ``t E|v|^2`` against the effective rate."""
from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..claims.claim import Claim
from ..claims.o3 import SMALL_FRACTION
from .style import empty_panel, log_axes, save, setup


def _label(r) -> str:
    if r.method.startswith("annealed_sgd"):
        return f"annealed SGD beta={r.lam:g} mu0={r.h:g}"
    if r.method == "batch_cg":
        return "batch CG (scipy)"
    return f"{r.method.split('(')[0]} mu0={r.h:g}" + (f" beta={r.lam:g}" if r.lam else "")


def error_vs_samples(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Mean ``|w_t - w*|^2`` over seeds against ``t`` per group, with its band; one panel per panel key."""
    setup()
    points = pd.read_csv(inputs["points"])
    curves = points[(points["kind"] == "curve") & np.isfinite(points["mean"]) & (points["step"] > 0)].copy()
    if curves.empty:
        empty_panel(output, f"{claim.id}: E|v|^2 against t", "no finite mean (every group diverged?)")
        return
    panel = "panel" if "panel" in curves else "mu_eff"
    panels = sorted(curves[panel].unique())
    curves[panel] = curves[panel].map(lambda v: f"{v:.3g}" if isinstance(v, float) else str(v))
    panels = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), squeeze=False, sharey=True)
    palette = sns.color_palette("colorblind", 10)
    for ax, name in zip(axes[0], panels):
        here = curves[curves[panel] == name]
        for i, (key, g) in enumerate(here.groupby(["method", "lam", "h"], sort=True)):
            g = g.sort_values("step")
            color = palette[i % len(palette)]
            ax.plot(g["step"], g["mean"], color=color, lw=1.2, label=_label(g.iloc[0]))
            ax.fill_between(g["step"], np.maximum(g["ci_low"], 1e-300), g["ci_high"], color=color, alpha=0.25, lw=0)
            if "predicted" in g and np.isfinite(g["predicted"]).any():
                pred = float(g["predicted"].dropna().iloc[0])
                if np.isfinite(pred):
                    ax.plot(g["step"], pred / g["step"], color=color, ls="--", lw=0.8)
        log_axes(ax)
        # diverging groups and batch CG (which reaches w* to round-off) would squash the rest: clip to the range
        # of the finite on-line means
        online = here[(here["method"] != "batch_cg") & (here["diverged"] == 0)]["mean"]
        if len(online):
            ax.set_ylim(online.min() / 3.0, online.max() * 3.0)
        ax.set(title=f"{panel} = {name}" if panel == "mu_eff" else name, xlabel="samples t")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("E|w - w*|^2")
    fig.suptitle(f"{claim.id}: mean squared distance to w* over seeds (bands: 95% intervals)", y=1.02)
    save(fig, output)


def late_value_vs_rate(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Late-time ``t E|v|^2`` against ``mu_eff`` with bars, the exact curve and ``mu_crit``."""
    setup()
    points = pd.read_csv(inputs["points"])
    late = points[(points["kind"] == "late") & np.isfinite(points["mu_eff"])].copy()
    late = late[np.isfinite(late["mean"])]
    if late.empty:
        empty_panel(output, f"{claim.id}: t E|v|^2 against mu_eff", "no finite late-time value")
        return
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    half = 1.96 * late["std"] / np.sqrt(late["count"])
    for (lam, g), marker in zip(late.groupby("lam"), "osD^v<>"):
        ax.errorbar(g["mu_eff"], g["mean"], yerr=half[g.index], fmt=marker, ms=5, mfc="none", capsize=2,
                    label=f"beta={lam:g}")
    mu_crit = float(points["mu_crit"].dropna().iloc[0])
    grid = np.geomspace(min(late["mu_eff"].min(), mu_crit) * 0.9, late["mu_eff"].max() * 1.1, 200)
    exact = points[(points["kind"] == "exact") & np.isfinite(points["predicted"])].sort_values("mu_eff")
    if len(exact):
        ax.plot(exact["mu_eff"], exact["predicted"], color="black", lw=1, label="exact")
    ax.axvline(mu_crit, color="grey", ls=":", lw=1, label="mu_crit")
    ax.set(xscale="log", yscale="log", xlabel="effective rate mu_eff = mu0/(1 - beta)", ylabel="late t E|v|^2",
           xlim=(grid[0], grid[-1]))
    ax.legend(fontsize=7)
    fig.suptitle(f"{claim.id}: late-time t E|v|^2 against the effective rate", y=1.02)
    save(fig, output)


def exponents(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Fitted decay exponents against ``mu_eff`` beside ``min(1, 2 mu_eff lam_min)``."""
    setup()
    points = pd.read_csv(inputs["points"])
    fits = points[(points["kind"] == "exponent") & np.isfinite(points["exponent"])]
    if fits.empty:
        empty_panel(output, f"{claim.id}: decay exponents", "no exponent fitted")
        return
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for (experiment, lam), g in fits.groupby(["experiment", "lam"]):
        ax.plot(g["mu_eff"], g["exponent"], "o", mfc="none", label=f"{experiment}, beta={lam:g}")
    for experiment, g in fits.groupby("experiment"):
        lam_min = float(g["lam_min"].iloc[0])
        grid = np.geomspace(g["mu_eff"].min() * 0.8, g["mu_eff"].max() * 1.25, 200)
        ax.plot(grid, np.minimum(1.0, 2 * grid * lam_min), color="black", lw=1)
        ax.axvline(float(g["mu_crit"].iloc[0]), color="grey", ls=":", lw=1)
    ax.set(xscale="log", xlabel="effective rate mu_eff", ylabel="decay exponent p (E|v|^2 ~ t^-p)")
    ax.legend(fontsize=7)
    fig.suptitle(f"{claim.id}: decay exponent against the effective rate", y=1.02)
    save(fig, output)


def stability(inputs: dict[str, Any], output: str, claim: Claim) -> None:
    """Late ``t E|v|^2`` over the optimum against ``mu0`` for the matrix momentum variants."""
    setup()
    points = pd.read_csv(inputs["points"])
    late = points[(points["kind"] == "late") & points["panel"].astype(str).str.startswith("matrix momentum")].copy()
    if late.empty:
        empty_panel(output, f"{claim.id}: stability", "no matrix momentum group")
        return
    optimum = float(late["optimum"].iloc[0])
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for (method, g), marker in zip(late.groupby("method"), "osD^"):
        g = g.sort_values("h")
        finite = np.isfinite(g["mean"])
        half = 1.96 * g["std"] / np.sqrt(g["count"])
        ax.errorbar(g["h"][finite], g["mean"][finite] / optimum, yerr=half[finite] / optimum, fmt=marker + "-",
                    ms=4, mfc="none", capsize=2, label=method)
        if (~finite).any():
            ax.plot(g["h"][~finite], np.full((~finite).sum(), ax.get_ylim()[1]), "x", color="red", ms=7)
    exact = float(late["exact_bound"].iloc[0]) if "exact_bound" in late else math.nan
    if math.isfinite(exact):
        ax.axvline(exact, color="grey", ls=":", lw=1, label="2/lam_max")
    bound = float(late["mean_square_bound"].iloc[0]) if "mean_square_bound" in late else math.nan
    if math.isfinite(bound):
        ax.axvline(bound, color="grey", ls="--", lw=1, label="mu_ms (one-sample)")
        ax.axvspan(ax.get_xlim()[0], SMALL_FRACTION * bound, color="grey", alpha=0.12, lw=0,
                   label=f"judged: mu0 <= {SMALL_FRACTION:g} mu_ms")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="mu0", ylabel="late t E|v|^2 / s2 tr(H^-1)")
    ax.legend(fontsize=7)
    fig.suptitle(f"{claim.id}: matrix momentum against mu0", y=1.02)
    save(fig, output)
