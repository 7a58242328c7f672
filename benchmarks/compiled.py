"""A K1 experiment's training batch through the stacked engine in lockstep and in compiled loops.

    python benchmarks/compiled.py                      # config/paper.yaml's k1_toy2d (about 3 minutes here)
    python benchmarks/compiled.py --quick              # config/config.yaml's k1_toy2d (seconds)

Every run of the experiment is built as its training job builds it and trained twice in one process on one
torch thread: by ``run_many(..., compiled=False)`` (lockstep: one tensor step per iteration for all active
runs) and by ``run_many(...)`` (``train.compiled``: one compiled loop per run; its time includes numba's
compilation, paid once per process). Printed: both times, their ratio, and the largest difference between the
two engines' recorded values (every column of every row of every run).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def requests_of(config_path: str, experiment: str) -> list:
    import yaml

    from momentum_ct.sweep import expand_series
    from momentum_ct.train.series import series_problem, series_runs
    from momentum_ct.train.stacked import RunRequest

    config = yaml.safe_load(open(config_path))
    exp = dict(config["experiments"][experiment], engine="stacked")
    out = []
    for spec in expand_series(dict(experiments={experiment: exp})):
        problem = series_problem(spec)
        out += [RunRequest(problem, r["method"], r["h"], spec.lam, r["n_steps"], r["record_at"], spec.batch_size,
                           spec.seed) for r in series_runs(spec)]
    return out


def largest_difference(a: list, b: list) -> float:
    worst = 0.0
    for ra, rb in zip(a, b, strict=True):
        ca, cb = ra.columns(), rb.columns()
        if ca.keys() != cb.keys():
            return float("inf")
        for name in ca:
            va = np.asarray(np.stack(ca[name]) if name in ("x", "m") else ca[name], dtype=float)
            vb = np.asarray(np.stack(cb[name]) if name in ("x", "m") else cb[name], dtype=float)
            if va.shape != vb.shape or not np.array_equal(np.isfinite(va), np.isfinite(vb)):
                return float("inf")
            finite = np.isfinite(va)
            if finite.any():
                worst = max(worst, float(np.abs(va[finite] - vb[finite]).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the default config's experiment instead of the paper's")
    parser.add_argument("--config", default=None, help="config file (default: paper.yaml, --quick: config.yaml)")
    parser.add_argument("--experiment", default="k1_toy2d")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from momentum_ct.train.stacked import run_many

    config = args.config or os.path.join(HERE, "..", "config", "config.yaml" if args.quick else "paper.yaml")
    requests = requests_of(config, args.experiment)
    steps = sum(r.n_steps for r in requests)
    times, results = {}, {}
    for name, compiled in (("compiled", True), ("lockstep", False)):
        start = time.perf_counter()
        results[name] = run_many(requests, device="cpu", compiled=compiled)
        times[name] = time.perf_counter() - start
    diff = largest_difference(results["compiled"], results["lockstep"])
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"1 torch thread, float64.\n")
    print("| experiment | config | runs | run-steps | longest run | lockstep (s) | compiled (s) | speed-up | "
          "largest difference |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.experiment} | {os.path.basename(config)} | {len(requests)} | {steps:,} | "
          f"{max(r.n_steps for r in requests):,} | {times['lockstep']:.1f} | {times['compiled']:.2f} | "
          f"{times['lockstep'] / times['compiled']:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
