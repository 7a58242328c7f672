"""One function per pipeline stage, from input files to output files.

The workflow's scripts call these and nothing else; the package knows nothing of Snakemake.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from .claims import judge as judge_mod
from .claims import measures
from .ct.integrate import OdeOptions
from .io import read_json, read_table, read_trajectory, write_json, write_table
from .train.batch import write_batch
from .train.series import SeriesSpec

log = logging.getLogger("momentum_ct")


def train(specs: list[dict[str, Any]], trajectory: str, meta: str) -> None:
    write_batch([SeriesSpec.from_dict(s) for s in specs], trajectory, meta, log=log.info)


def predict(claim_id: str, trajectory: str, meta: str, prediction: str, info: str, ode: dict[str, Any]) -> None:
    columns, details = measures.predict_batch(claim_id, read_trajectory(trajectory), read_json(meta, ["series"]),
                                              OdeOptions(**ode))
    write_table(prediction, columns)
    write_json(info, details)


def measure(claim_id: str, trajectories: list[str], metas: list[str], predictions: list[str], infos: list[str],
            fits: str, points: str, options: dict[str, Any]) -> None:
    batches = []
    for i, (t, m) in enumerate(zip(trajectories, metas)):
        b = dict(traj=read_trajectory(t), meta=read_json(m, ["series"]))
        if predictions:
            b["pred"] = read_table(predictions[i], ["kind", "t", "x"])
            b["info"] = read_json(infos[i], ["series"])
        batches.append(b)
    fit_table, point_table = measures.measure(claim_id, batches, options)
    Path(fits).parent.mkdir(parents=True, exist_ok=True)
    fit_table.to_csv(fits, index=False)
    point_table.to_csv(points, index=False)


def judge(fits: Iterable[str], claims_csv: str, claims_md: str) -> None:
    table = pd.concat([pd.read_csv(f) for f in fits], ignore_index=True)
    claims = judge_mod.judge(table)
    claims.to_csv(claims_csv, index=False)
    Path(claims_md).write_text(judge_mod.to_markdown(claims))


def draw(figure: str, inputs: dict[str, str], output: str) -> None:
    from .plots import FIGURES

    FIGURES[figure](inputs, output)
