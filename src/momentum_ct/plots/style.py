"""Common look of every figure and a saver that writes deterministic files."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

# The package's methods first, in this order; any other (a plug-in's) after them, sorted: never dropped.
KNOWN_ORDER = ["hb", "nag", "gd_rescaled", "gd"]


def method_order(present) -> list[str]:
    """Every method in ``present``, the package's own first."""
    present = set(present)
    return [m for m in KNOWN_ORDER if m in present] + sorted(present - set(KNOWN_ORDER))


def setup() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")


def log_axes(ax) -> None:
    """Log-log axes without minor tick labels (they collide on short ranges)."""
    ax.set(xscale="log", yscale="log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def annotate_orders(grid, orders, title: str) -> None:
    """Write the fitted orders (rows with method, lam, problem, measured) in each lam x problem panel."""
    for (lam, problem), ax in grid.axes_dict.items():
        here = orders[(orders["lam"] == lam) & (orders["problem"] == problem)]
        text = "\n".join(f"{r.method}: {r.measured:.2f}" for r in here.itertuples())
        ax.text(0.97, 0.03, f"{title}\n{text}", transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                bbox=dict(facecolor="white", alpha=0.8, lw=0))


def save(fig, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No creation date in the file, so reruns are byte-identical.
    meta = {"Software": None} if path.suffix == ".png" else {"CreationDate": None}
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)  # renamed into place: never a half-written figure
    fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    tmp.replace(path)


def empty_panel(output: str | Path, title: str, reason: str) -> None:
    """A figure that says why it has nothing to draw (the pipeline goes on)."""
    setup()
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, f"{title}\nnothing to draw: {reason}", ha="center", va="center", wrap=True)
    ax.set_axis_off()
    save(fig, output)
