"""A claim from outside the package, registered the way a user's own claim is: one module, one entry.

T1: every method lowers the training loss over its run (final loss below the initial one), judged per
series at the finest h; its figure draws the ratio per method.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from momentum_ct.claims import Claim, Figure, Quantity, register_claim  # noqa: E402
from momentum_ct.claims.common import row  # noqa: E402
from momentum_ct.train.series import SeriesSpec  # noqa: E402


def measure(traj, pred, info, meta, **options):
    spec = SeriesSpec.from_dict(meta["spec"])
    finest = traj[traj["h"] == traj["h"].min()].sort_values("step")
    ratio = float(finest["loss"].iloc[-1] / finest["loss"].iloc[0])
    points = pd.DataFrame(dict(experiment=[spec.experiment], problem=[spec.problem], method=[spec.method],
                               lam=[spec.lam], seed=[spec.seed], h=[finest["h"].iloc[0]], ratio=[ratio]))
    return [row("T1", spec, "loss_ratio", 1.0, ratio, h_min=spec.h[-1], h_max=spec.h[-1], n_points=1)], points


def draw(inputs, output, claim):
    points = pd.read_csv(inputs["points"])
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(np.arange(len(points)), points["ratio"], tick_label=list(points["method"]))
    ax.axhline(1.0 + claim.quantity("loss_ratio").tolerance, color="grey", ls=":")
    fig.savefig(output, metadata={"Software": None})
    plt.close(fig)


register_claim(Claim(
    id="T1",
    statement="Every method lowers the training loss over its run.",
    source="a test of the claim registry",
    prediction="final loss / initial loss below 1",
    measurement="ratio of the last recorded loss to the first, finest h",
    quantities={"loss_ratio": Quantity("loss_ratio", "final over initial loss", 0.0, comparison="below")},
    measure=measure,
    figures={"t1_loss_ratio": Figure(draw, "T1: final over initial loss per method "
                                           "(dotted: {loss_ratio.tolerance_text} above 1).")},
))
