"""Dispatch from claim ids to their prediction and measurement functions."""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from ..ct.integrate import OdeOptions
from ..train.batch import SERIES_KEYS
from ..train.series import SeriesSpec
from . import k1, k2, k3, k4
from .registry import get_claim

# claim id -> predict(series_traj, series_meta, ode) -> (columns, info); claims without an entry need no prediction
PREDICTORS: dict[str, Callable] = {"K1": k1.predict, "K2": k2.predict, "K3": k3.predict}
SERIES_MEASURES: dict[str, Callable] = {"K1": k1.measure, "K2": k2.measure, "K3": k3.measure}


def series_of(traj: pd.DataFrame, meta: dict[str, Any]):
    """Yield ``(key, series_traj, series_meta)`` for every series of a batch."""
    for series_meta in meta["series"]:
        spec = SeriesSpec.from_dict(series_meta["spec"])
        key = (spec.method, spec.lam, spec.seed)
        mask = (traj["method"] == spec.method) & (traj["lam"] == spec.lam) & (traj["seed"] == spec.seed)
        yield key, traj[mask].reset_index(drop=True), series_meta


def measure_series_claim(claim_id: str, batches: list[dict], options: dict[str, Any]):
    """For claims judged series by series against a prediction (K1, K2, K3)."""
    fn = SERIES_MEASURES[claim_id]
    rows, points = [], []
    for b in batches:
        infos = {tuple(i["key"]): i for i in b["info"]["series"]}
        for key, traj, meta in series_of(b["traj"], b["meta"]):
            mask = (b["pred"]["method"] == key[0]) & (b["pred"]["lam"] == key[1]) & (b["pred"]["seed"] == key[2])
            r, p = fn(traj, b["pred"][mask].reset_index(drop=True), infos[key], meta, **options)
            rows += r
            points.append(p)
    return rows, points


def measure_experiment_claim(claim_id: str, batches: list[dict], options: dict[str, Any]):
    """For claims that compare methods within an experiment (K4)."""
    fn = {"K4": k4.measure}[claim_id]
    by_experiment: dict[str, list] = {}
    for b in batches:
        for key, traj, meta in series_of(b["traj"], b["meta"]):
            by_experiment.setdefault(meta["spec"]["experiment"], []).append((key, traj, meta))
    rows, points = [], []
    for exp, items in sorted(by_experiment.items()):
        traj = pd.concat([t for _, t, _ in items], ignore_index=True)
        specs = {k: SeriesSpec.from_dict(m["spec"]) for k, _, m in items}
        r, p = fn(traj, specs, confidence=options.get("confidence", 0.95))
        rows += r
        points.append(p)
    return rows, points


MEASURES: dict[str, Callable] = {"K1": measure_series_claim, "K2": measure_series_claim, "K3": measure_series_claim,
                                 "K4": measure_experiment_claim}


def measure(claim_id: str, batches: list[dict], options: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    get_claim(claim_id)
    rows, points = MEASURES[claim_id](claim_id, batches, options)
    points = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    return pd.DataFrame(rows), points


def predict_batch(claim_id: str, traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions):
    """Predictions for every series of a batch: ``(columns with series keys, info)``."""
    from ..io import concat_columns

    fn = PREDICTORS[claim_id]
    parts, infos = [], []
    for key, series_traj, series_meta in series_of(traj, meta):
        columns, info = fn(series_traj, series_meta, ode)
        n = len(columns["t"])
        parts.append({k: [v] * n for k, v in zip(SERIES_KEYS, key)} | columns)
        infos.append(dict(info, key=list(key)))
    return concat_columns(parts), {"claim": claim_id, "series": infos}
