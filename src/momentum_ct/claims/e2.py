"""Claim E2: EKI solves graph-based semi-supervised classification (``problems.graph_ssl``): the ensemble
mean's test accuracy on the unlabelled nodes beside the closed-form posterior mean of the same Gaussian model
(same graph prior, same observation noise as the EKI series) and beside scikit-learn's label spreading on the
same points, labels and number of neighbours.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..optim import resolve_method
from ..problems.graph_ssl import posterior_mean
from .claim import Claim, Figure, Quantity, quantities
from .common import problem_of, row


def label_spreading_accuracy(problem) -> float:
    """scikit-learn's ``LabelSpreading`` (kNN kernel, the problem's number of neighbours) on the unlabelled nodes."""
    from sklearn.semi_supervised import LabelSpreading

    points = problem.extra["points"]
    labels = -np.ones(len(points), dtype=int)  # -1: unlabelled
    nodes, known = (t.numpy() for t in problem.train_data)
    labels[nodes] = known
    model = LabelSpreading(kernel="knn", n_neighbors=problem.options["n_neighbours"]).fit(points, labels)
    test_nodes, truth = (t.numpy() for t in problem.test_data)
    return float(np.mean(model.transduction_[test_nodes] == truth))


def measure(traj: pd.DataFrame, pred, info, meta: dict, **_: Any) -> tuple[list[dict], pd.DataFrame]:
    spec, problem = problem_of(meta)
    hyper = resolve_method(spec.method).hyperparameters
    noise, n_members = hyper["noise"], int(hyper["J"])
    # the members span what one update moves (a class's parameters when localised, else all) only for J - 1 at or
    # above its size; below it the mean is confined to a smaller affine subspace and equality is not predicted
    per_update = problem.dim // problem.blocks if hyper["localise"] else problem.dim
    regime = per_update / (n_members - 1)
    closed = float(problem.accuracy(posterior_mean(problem, noise), problem.test_data))
    spreading = label_spreading_accuracy(problem)
    rows, points = [], []
    for h, run in traj.groupby("h"):
        run = run.sort_values("step")
        eki = float(run["test_accuracy"].iloc[-1])
        t_end = float(run["t"].iloc[-1])
        gap_closed, gap_spreading = closed - eki, spreading - eki
        note = (f"{problem.options['dataset']}, {problem.options['n_labels']} labels of {problem.options['n_nodes']}; "
                f"J = {n_members}{', localised to ' + str(problem.blocks) + ' classes' if hyper['localise'] else ''}; "
                f"EKI {eki:.4f} at t={t_end:g}, closed form {closed:.4f}, label spreading {spreading:.4f}")
        rows.append(row("E2", spec, "accuracy_gap_closed_form", 0.0, gap_closed, h_min=h, h_max=h, n_points=1,
                        regime=regime, note=note))
        rows.append(row("E2", spec, "accuracy_gap_label_spreading", 0.0, gap_spreading, h_min=h, h_max=h,
                        n_points=1, note=note))
        points.append(dict(claim_id="E2", experiment=spec.experiment, problem=spec.problem, method=spec.method,
                           seed=spec.seed, h=h, dataset=problem.options["dataset"], n_labels=problem.options["n_labels"],
                           J=n_members, localised=bool(hyper["localise"]), per_update=per_update, accuracy_eki=eki,
                           accuracy_closed_form=closed, accuracy_label_spreading=spreading))
    return rows, pd.DataFrame(points)


CLAIM = Claim(
    id="E2",
    path_vectors=False,  # accuracies only
    statement="Ensemble Kalman inversion also solves graph-based semi-supervised classification: with a "
              "graph-Laplacian Gaussian prior on the latent labelling and a few labels, the ensemble mean classifies "
              "the unlabelled nodes as well as the posterior mean of the same model.",
    source="Kovachki & Stuart, Inverse Problems 35 (2019) 095005 (SCIENCE.md 3); graph model after Bertozzi et al.; "
           "tolerances of the replication's issue (2 points of the closed form)",
    prediction="the closed-form posterior mean's test accuracy minus the EKI mean's within 0.02 either way where the "
               "members span what one update moves (J - 1 at least the parameters, or a class's parameters when "
               "localised); label spreading's minus EKI's at most 0.02",
    measurement="final test accuracy (unlabelled nodes) of the EKI ensemble mean, of the closed-form posterior mean "
                "A^T (A A^T + noise I)^-1 y with the series' noise, and of scikit-learn's LabelSpreading (kNN kernel) "
                "on the same points and labels",
    quantities=quantities(
        Quantity("accuracy_gap_closed_form", "closed-form posterior mean's test accuracy minus EKI's", 0.02,
                 regime_limit=1.0, regime_text="parameters per update / (J - 1)"),
        Quantity("accuracy_gap_label_spreading", "label spreading's test accuracy minus EKI's", 0.02,
                 comparison="below"),
    ),
    measure=measure,
    requires=("graph_prior",),
    figures={
        "e2_accuracy": Figure(
            "momentum_ct.plots.e2:accuracy",
            "E2: test accuracy on the unlabelled nodes of the EKI ensemble mean, of the closed-form posterior mean "
            "of the same graph-Laplacian Gaussian model and of scikit-learn's label spreading, per experiment and "
            "ensemble size (predicted: EKI within {accuracy_gap_closed_form.tolerance_text} of the closed form)."),
    },
)
