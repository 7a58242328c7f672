"""One function per pipeline stage, from input files to output files.

The workflow's scripts call these and nothing else; the package knows nothing of Snakemake.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from . import plugins as plugin_loader
from .claims import judge as judge_mod
from .claims import measures
from .claims.common import MEASURE_COLUMNS
from .claims.registry import get_claim
from .ct.integrate import OdeOptions
from .io import attach_vectors, read_json, read_table, read_trajectory, write_json, write_table, write_text
from .train.shard import write_shard
from .train.series import SeriesSpec

log = logging.getLogger("momentum_ct")


def load_plugins(plugins: Iterable[str] = ()) -> None:
    """Register a config's plug-ins in this process (paths already resolved by the workflow)."""
    plugin_loader.load(list(plugins))


def train(specs: list[dict[str, Any]], trajectory: str, meta: str, vectors: str | None = None) -> None:
    write_shard([SeriesSpec.from_dict(s) for s in specs], trajectory, meta, log=log.info, vectors=vectors)


def predict(claim_id: str, trajectory: str, meta: str, prediction: str, info: str, ode: dict[str, Any],
            vectors: str | None = None) -> None:
    """``vectors``: the shard's vectors file, where its series set their path vectors apart."""
    traj = read_trajectory(trajectory)
    if vectors is not None:
        traj = attach_vectors(traj, vectors)
    columns, details = measures.predict_shard(claim_id, traj, read_json(meta, ["series"]), OdeOptions(**ode))
    write_table(prediction, columns)
    write_json(info, details)


def measure(claim_id: str, trajectories: list[str], metas: list[str], predictions: list[str], infos: list[str],
            fits: str, points: str, options: dict[str, Any]) -> None:
    shards = []
    for i, (t, m) in enumerate(zip(trajectories, metas)):
        shard = dict(traj=read_trajectory(t), meta=read_json(m, ["series"]))
        if predictions:
            shard["pred"] = read_table(predictions[i], get_claim(claim_id).prediction_columns)
            shard["info"] = read_json(infos[i], ["series"])
        shards.append(shard)
    fit_table, point_table = measures.measure(claim_id, shards, options)
    _write_csv(fit_table, fits)
    _write_csv(point_table, points)


def _read_fits(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a claim that measured no row (e.g. no series fitted)
        return pd.DataFrame(columns=MEASURE_COLUMNS)


def judge(fits: Iterable[str], claims_csv: str, claims_md: str) -> None:
    table = pd.concat([_read_fits(f) for f in fits], ignore_index=True)
    claims = judge_mod.judge(table)
    _write_csv(claims, claims_csv)
    write_text(claims_md, judge_mod.to_markdown(claims))


def draw_all(claim_id: str, fits: str, points: str, trajectories: dict[str, list[str]], out_dir: str) -> None:
    """Every figure of a claim in one process (a figure takes about a second to draw, a job several to start):
    ``<out_dir>/<figure>.png`` from the claim's measure tables and ``<out_dir>/<experiment>/<figure>.png`` from each
    experiment's trajectory files (``trajectories``: experiment -> files; only claims with such figures read them)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name, (figure, experiment) in get_claim(claim_id).figure_files(trajectories).items():
        path = Path(out_dir) / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        inputs = (dict(fits=fits, points=points) if experiment is None
                  else dict(trajectories=list(trajectories[experiment]), experiment=experiment))
        draw(claim_id, figure, inputs, str(path))


def draw(claim_id: str, figure: str, inputs: dict[str, Any], output: str) -> None:
    """Draw one of a claim's figures (``Claim.figures``) from its inputs.

    When the claim measured nothing finite (every run diverged, or no series fitted) the figure says so in
    a panel instead of failing, and the pipeline goes on; with data to draw, a failure is a failure.
    """
    claim = get_claim(claim_id)
    try:
        claim.figure(figure).function()(inputs, output, claim)
    except Exception:
        reason = _nothing_to_draw(inputs)
        if reason is None:
            raise
        from .plots.style import empty_panel

        log.warning("%s %s: %s", claim_id, figure, reason)
        empty_panel(output, f"{claim_id}: {figure}", reason)


def _nothing_to_draw(inputs: dict[str, Any]) -> str | None:
    """Why a figure's inputs hold nothing to draw, or ``None`` when they hold something."""
    if "fits" not in inputs:
        return None
    try:
        fits = pd.read_csv(inputs["fits"])
    except pd.errors.EmptyDataError:
        return "the claim has no measured rows"
    if fits.empty or "measured" not in fits:
        return "the claim has no measured rows"
    if not np.isfinite(fits["measured"].to_numpy(dtype=float)).any():
        return "no finite measurement (every fit failed or every run diverged)"
    return None


def _write_csv(table: pd.DataFrame, path: str) -> None:
    write_text(path, table.to_csv(index=False))
