"""The prediction jobs of a finished run, timed with this checkout's code against another revision's.

    python benchmarks/predict_jobs.py --results results --base <revision>      # every K1-K3 prediction job
    python benchmarks/predict_jobs.py --results results --base <revision> --claims K2 --experiments k1_toy2d

Each (claim, training job) of ``--results`` (a folder that ``make replicate`` wrote) is predicted as its
Snakemake job predicts it (``stages``' ``measures.predict_shard``, one torch thread), in a fresh child process
per timing, alternately by the base revision's package (``git worktree`` of ``--base`` in a temporary folder,
put first on ``PYTHONPATH``) and by this checkout's; the best of ``--repeats`` each. Printed: both times, their
ratio, and whether the two predictions are equal bit for bit (every column and the info). An experiment whose
network vectors are set apart for its predictions (``vectors.parquet``, a temporary file) needs a run that kept them:
``snakemake ... --notemp``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(args: argparse.Namespace) -> None:
    import gzip
    import pickle
    import time

    import torch

    torch.set_num_threads(1)
    from momentum_ct.claims import measures
    from momentum_ct.ct.integrate import OdeOptions
    from momentum_ct.io import read_table

    # read as any revision's package can: the base revision's readers may predate the files' present format
    shard = os.path.join(args.results, "runs", f"experiment~{args.experiment}", "shard~0")
    traj = read_table(os.path.join(shard, "trajectory.parquet"))
    vectors = os.path.join(shard, "vectors.parquet")
    if os.path.exists(vectors):  # a network's path vectors, kept by a run with --notemp
        apart = read_table(vectors)
        traj = traj.assign(**{name: apart[name].to_numpy() for name in apart.columns}) if len(apart) else traj
    packed = os.path.join(shard, "meta.json.gz")
    meta = json.loads(gzip.decompress(open(packed, "rb").read()) if os.path.exists(packed)
                      else open(os.path.join(shard, "meta.json")).read())
    if any(s.get("x_kind") == "apart" for s in meta["series"]) and not len(traj["x"].iloc[0]):
        sys.exit(f"{shard}: its path vectors were set apart and deleted after its predictions; "
                 "make the run with `snakemake ... --notemp` to keep them")
    start = time.perf_counter()
    columns, info = measures.predict_shard(args.claim, traj, meta, OdeOptions())
    seconds = time.perf_counter() - start
    with open(args.out, "wb") as f:
        pickle.dump((columns, json.loads(json.dumps(info))), f)
    print(json.dumps(dict(seconds=seconds)))


def timed(claim: str, experiment: str, results: str, source: str | None, out: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if source is not None:
        env["PYTHONPATH"] = os.path.join(source, "src") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", "--claim", claim, "--experiment", experiment, "--results", results,
           "--out", out]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{claim} {experiment} ({source or 'this checkout'}): {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def equal(a: str, b: str) -> bool:
    import pickle

    import numpy as np

    (ca, ia), (cb, ib) = (pickle.load(open(p, "rb")) for p in (a, b))
    if ia != ib or list(ca) != list(cb):
        return False
    for key in ca:
        x, y = ca[key], cb[key]
        if key == "x":
            x, y = np.stack(x) if len(x) else np.array([]), np.stack(y) if len(y) else np.array([])
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or not (np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else (x == y).all()):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="a results/ folder of a finished run")
    parser.add_argument("--base", help="the revision to compare with (git)")
    parser.add_argument("--claims", nargs="+", default=["K1", "K2", "K3"])
    parser.add_argument("--experiments", nargs="+", default=None, help="default: every one with predictions")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--claim", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.results = os.path.abspath(args.results)
    if args.child:
        child(args)
        return
    if not args.base:
        parser.error("--base is required")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", base, args.base], check=True,
                       capture_output=True)
        try:
            for claim in args.claims:
                done = glob.glob(os.path.join(args.results, "predictions", claim, "experiment~*", ))
                experiments = args.experiments or sorted(os.path.basename(p).split("~", 1)[1] for p in done)
                for experiment in experiments:
                    best = {"base": float("inf"), "now": float("inf")}
                    outs = {name: os.path.join(tmp, f"{name}.pkl") for name in best}
                    for _ in range(args.repeats):
                        for name, source in (("base", base), ("now", None)):
                            best[name] = min(best[name], timed(claim, experiment, args.results, source, outs[name]))
                    rows.append((claim, experiment, best["base"], best["now"], equal(outs["base"], outs["now"])))
                    print(f"  {claim} {experiment}: {best['base']:.1f} s -> {best['now']:.1f} s", file=sys.stderr,
                          flush=True)
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", base], check=False, capture_output=True)
    print(f"Prediction jobs of {args.results}, base {args.base}; one torch thread, best of {args.repeats}.\n")
    print("| claim | experiment | base (s) | now (s) | speed-up | equal bit for bit |")
    print("|---|---|---:|---:|---:|---|")
    for claim, experiment, t0, t1, same in rows:
        print(f"| {claim} | {experiment} | {t0:.1f} | {t1:.1f} | {t0 / t1:.2f}x | {'yes' if same else 'no'} |")
    total0, total1 = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"| all | | {total0:.1f} | {total1:.1f} | {total0 / total1:.2f}x | |")


if __name__ == "__main__":
    main()
