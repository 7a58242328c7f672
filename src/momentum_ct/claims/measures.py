"""From a claim's registry entry to its predictions and measurements over the shards of a sweep."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from ..ct.integrate import OdeOptions
from ..train.shard import SERIES_KEYS
from ..train.series import SeriesSpec
from .claim import Claim
from .registry import get_claim


def series_positions(frame: pd.DataFrame):
    """A function ``key -> positions of that series' rows`` (``key = (method, lam, seed)``, file order), from one
    grouping of the frame: a shard of a Monte Carlo holds thousands of series, and one mask per series would
    scan the whole frame each time."""
    positions = frame.groupby(list(SERIES_KEYS), sort=False).indices if len(frame) else {}
    empty = np.array([], dtype=np.int64)
    return lambda key: positions.get(tuple(key), empty)


def rows_by_series(frame: pd.DataFrame):
    """A function ``key -> the rows of that series`` (a frame of its own)."""
    positions = series_positions(frame)
    return lambda key: frame.take(positions(key)).reset_index(drop=True)


def series_of(traj: pd.DataFrame, meta: dict[str, Any]):
    """Yield ``(key, series_traj, series_meta)`` for every series of a shard."""
    rows = rows_by_series(traj)
    for key, series_meta in series_keys(meta):
        yield key, rows(key), series_meta


def series_keys(meta: dict[str, Any]):
    """Yield ``(key, series_meta)`` for every series of a shard, in the shard's order."""
    for series_meta in meta["series"]:
        spec = SeriesSpec.from_dict(series_meta["spec"])
        yield (spec.method, spec.lam, spec.seed), series_meta


def measure_series_claim(claim: Claim, shards: list[dict], options: dict[str, Any]):
    """Claims judged series by series, against a prediction when the claim makes one."""
    rows, points = [], []
    for s in shards:
        infos = {tuple(i["key"]): i for i in s["info"]["series"]} if "info" in s else {}
        predictions = rows_by_series(s["pred"]) if "pred" in s else None
        for key, traj, meta in series_of(s["traj"], s["meta"]):
            if predictions is not None:
                pred, info = predictions(key), infos[key]
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
        positions = series_positions(s["traj"])
        parts: dict[str, list] = {}
        for key, meta in series_keys(s["meta"]):
            parts.setdefault(meta["spec"]["experiment"], []).append((key, positions(key), meta))
        # one take per shard and experiment (series after series, as in the shard's meta), not one per series
        for exp, items in parts.items():
            rows = s["traj"].take(np.concatenate([p for _, p, _ in items])).reset_index(drop=True)
            by_experiment.setdefault(exp, []).append((rows, [(k, m) for k, _, m in items]))
    rows, points = [], []
    for exp, pieces in sorted(by_experiment.items()):
        traj = pd.concat([t for t, _ in pieces], ignore_index=True)
        specs = {k: SeriesSpec.from_dict(m["spec"]) for _, items in pieces for k, m in items}
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

    claim = get_claim(claim_id)
    if claim.predict is None:
        raise ValueError(f"claim {claim_id} makes no prediction")
    series = list(series_of(traj, meta))
    items = [(series_traj, series_meta) for _, series_traj, series_meta in series]
    results = (claim.predict_batch(items, ode) if claim.predict_batch is not None
               else [claim.predict(*item, ode) for item in items])
    parts, infos = [], []
    for (key, _, _), (columns, info) in zip(series, results):
        n = len(columns["t"])
        parts.append({k: [v] * n for k, v in zip(SERIES_KEYS, key)} | columns)
        infos.append(dict(info, key=list(key)))
    return concat_columns(parts), {"claim": claim_id, "series": infos}
