"""From a claim's registry entry to its predictions and measurements over the shards of a sweep."""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from ..ct.integrate import OdeOptions
from ..train.shard import SERIES_KEYS
from ..train.series import SeriesSpec
from .claim import Claim
from .registry import get_claim


def series_of(traj: pd.DataFrame, meta: dict[str, Any]):
    """Yield ``(key, series_traj, series_meta)`` for every series of a shard."""
    for series_meta in meta["series"]:
        spec = SeriesSpec.from_dict(series_meta["spec"])
        key = (spec.method, spec.lam, spec.seed)
        mask = (traj["method"] == spec.method) & (traj["lam"] == spec.lam) & (traj["seed"] == spec.seed)
        yield key, traj[mask].reset_index(drop=True), series_meta


def measure_series_claim(claim: Claim, shards: list[dict], options: dict[str, Any]):
    """Claims judged series by series, against a prediction when the claim makes one."""
    rows, points = [], []
    for s in shards:
        infos = {tuple(i["key"]): i for i in s["info"]["series"]} if "info" in s else {}
        for key, traj, meta in series_of(s["traj"], s["meta"]):
            if "pred" in s:
                mask = (s["pred"]["method"] == key[0]) & (s["pred"]["lam"] == key[1]) & (s["pred"]["seed"] == key[2])
                pred, info = s["pred"][mask].reset_index(drop=True), infos[key]
            else:
                pred, info = None, None
            r, p = claim.measure(traj, pred, info, meta, **options)
            rows += r
            points.append(p)
    return rows, points


def measure_experiment_claim(claim: Claim, shards: list[dict], options: dict[str, Any]):
    """Claims that compare the series of an experiment with one another (methods against methods)."""
    by_experiment: dict[str, list] = {}
    for s in shards:
        for key, traj, meta in series_of(s["traj"], s["meta"]):
            by_experiment.setdefault(meta["spec"]["experiment"], []).append((key, traj, meta))
    rows, points = [], []
    for exp, items in sorted(by_experiment.items()):
        traj = pd.concat([t for _, t, _ in items], ignore_index=True)
        specs = {k: SeriesSpec.from_dict(m["spec"]) for k, _, m in items}
        r, p = claim.measure(traj, specs, **options)
        rows += r
        points.append(p)
    return rows, points


SCOPES: dict[str, Callable] = {"series": measure_series_claim, "experiment": measure_experiment_claim}


def measure(claim_id: str, shards: list[dict], options: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A claim's fits and points over ``shards``: one dict per training job's files (``traj``, ``meta`` and,
    for a claim that predicts, ``pred``, ``info``)."""
    claim = get_claim(claim_id)
    rows, points = SCOPES[claim.scope](claim, shards, options)
    points = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    return pd.DataFrame(rows), points


def predict_shard(claim_id: str, traj: pd.DataFrame, meta: dict[str, Any], ode: OdeOptions):
    """Predictions for every series of a shard: ``(columns with series keys, info)``."""
    from ..io import concat_columns

    fn = get_claim(claim_id).predict
    if fn is None:
        raise ValueError(f"claim {claim_id} makes no prediction")
    parts, infos = [], []
    for key, series_traj, series_meta in series_of(traj, meta):
        columns, info = fn(series_traj, series_meta, ode)
        n = len(columns["t"])
        parts.append({k: [v] * n for k, v in zip(SERIES_KEYS, key)} | columns)
        infos.append(dict(info, key=list(key)))
    return concat_columns(parts), {"claim": claim_id, "series": infos}
