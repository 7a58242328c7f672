"""The judge: every measured quantity against its prediction, one verdict per row."""
from __future__ import annotations

import math

import pandas as pd

from .common import MEASURE_COLUMNS
from .registry import CLAIMS, get_claim

CLAIMS_COLUMNS = ["claim_id", "problem", "method", "lam", "quantity", "predicted", "measured", "ci_low", "ci_high",
                  "verdict", "experiment", "seed", "h_min", "h_max", "regime", "n_points", "note"]


def judge(fits: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in MEASURE_COLUMNS if c not in fits.columns]
    if missing:
        raise ValueError(f"measure table lacks column(s) {', '.join(missing)}")
    verdicts, notes = [], []
    for r in fits.itertuples(index=False):
        q = get_claim(r.claim_id).quantity(r.quantity)
        n_points = int(r.n_points) if r.n_points == r.n_points else None  # NaN: not counted
        verdict, reason = q.judge(r.predicted, r.measured, r.ci_low, r.ci_high, r.regime, n_points)
        verdicts.append(verdict)
        note = "" if not isinstance(r.note, str) else r.note
        notes.append("; ".join(part for part in (note, reason) if part))
    out = fits.assign(verdict=verdicts, note=notes)
    return out[CLAIMS_COLUMNS].sort_values(["claim_id", "experiment", "quantity", "method", "lam", "seed"],
                                            kind="stable").reset_index(drop=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    return str(v)


def to_markdown(claims: pd.DataFrame) -> str:
    lines = ["# Claims and their evidence", "",
             "Each row: a prediction, the measurement made in this run (95% interval where one exists) and a "
             "verdict. `regime` is h L / (1 - lam)^2 at the coarsest fitted h (asymptotic when well below 1).", ""]
    if claims.empty:
        return "\n".join(lines + ["No claim measured any row in this run (see the measure logs)."]) + "\n"
    summary = claims.groupby(["claim_id", "verdict"]).size().unstack(fill_value=0)
    lines += ["## Summary", "", "| claim | " + " | ".join(summary.columns) + " |",
              "|---|" + "---|" * len(summary.columns)]
    for cid, r in summary.iterrows():
        lines.append(f"| {cid} | " + " | ".join(str(int(v)) for v in r) + " |")
    for cid, group in claims.groupby("claim_id", sort=True):
        c = CLAIMS[cid]
        lines += ["", f"## {cid}: {c.statement}", "", f"- Source: {c.source}", f"- Prediction: {c.prediction}",
                  f"- Measurement: {c.measurement}", ""]
        cols = ["experiment", "method", "lam", "seed", "quantity", "predicted", "measured", "ci_low", "ci_high",
                "h_min", "h_max", "regime", "verdict", "note"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, r in group.iterrows():
            lines.append("| " + " | ".join(_fmt(r[k]) for k in cols) + " |")
    return "\n".join(lines) + "\n"
