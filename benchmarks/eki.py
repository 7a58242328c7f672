"""Time per data pass of ensemble Kalman inversion against SGD on the digits MLP, through the stacked engine.

    python benchmarks/eki.py            # J = 500 and 2000, online (mini-batches of 64) and offline
    python benchmarks/eki.py --quick    # J = 500 online only (a minute and a half here)
    python benchmarks/eki.py --quick --threads 1 2
                                        # J = 500 online on one and on two threads

Each table row is one precision (default: float32, then float64) at one thread count (default: torch's, the
machine's cores).

Both methods train the same network (``--hidden``, default 16: 1,210 parameters) on the same data; SGD is
``gd`` on mini-batches (offline: full-batch GD). Each configuration runs in a fresh child process (peak memory
is its own), which trains for P passes and for none, best of ``--repeats`` timings of each; the recording is
one row at the end, so the table times training. What the run without passes takes is the setup (building the
problem on the device, drawing the ensemble, the final record), and a pass costs the rest over P passes: a
rate per pass that does not depend on how many passes were timed. The children of SGD and of EKI alternate
over ``--rounds`` rounds (each round SGD's child, then one child per ensemble size); the ratio EKI / SGD is
taken within each round, so that a slow spell of a shared machine falls on both sides of a ratio. Printed:
medians over the rounds of seconds per pass and of setup, the median ratio per pass with its range over the
rounds, the ratio of the two methods' fastest passes over all rounds, EKI's peak resident memory (the largest
of its children), and the size of the ensemble (J x dim) and of its outputs on one step's data (J x samples x
classes), the two largest arrays the update needs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from momentum_ct.problems import make_problem
    from momentum_ct.train.stacked import RunRequest, run_many

    problem = make_problem("digits_mlp", hidden=[args.hidden])
    batch = None if args.batch == 0 else args.batch
    steps_per_pass = 1 if batch is None else problem.n_train // batch
    method = "gd" if args.J == 0 else {"name": "eki", "J": args.J, "spread": 0.3, "adaptive": 1.0}
    best = {}
    for _ in range(args.repeats):
        for passes in (0, args.passes):
            n = passes * steps_per_pass
            request = RunRequest(problem, method, 0.5, 0.0, n, np.array([n]), batch_size=batch)
            start = time.perf_counter()
            run_many([request], device="cpu", dtype=args.dtype)
            best[passes] = min(best.get(passes, float("inf")), time.perf_counter() - start)
    print(json.dumps(dict(passes=args.passes, setup=best[0], total=best[args.passes], dim=problem.dim,
                          n_train=problem.n_train, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def measure(J: int, batch: int, passes: int, dtype: str, threads: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--J", str(J), "--batch", str(batch), "--passes", str(passes),
           "--hidden", str(args.hidden), "--repeats", str(args.repeats), "--threads", str(threads), "--dtype", dtype]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--J", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timings of each length per child (best kept)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the SGD and EKI children "
                        "(medians reported)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch threads, one or more settings (both methods run with the same; default torch's)")
    parser.add_argument("--dtype", nargs="+", choices=("float64", "float32"), default=["float32", "float64"],
                        help="both methods' arithmetic, one or more settings (default both)")
    args = parser.parse_args()
    if args.repeats < 1 or args.rounds < 1 or min(args.threads or [1]) < 1:
        parser.error("--repeats, --rounds and --threads must be at least 1")
    if args.child:
        args.threads, args.dtype = args.threads[0], args.dtype[0]
        child(args)
        return
    import torch

    args.threads = args.threads or [torch.get_num_threads()]
    sizes = [500] if args.quick else [500, 2000]
    settings = [("online", 64)] if args.quick else [("online", 64), ("offline", 0)]
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, digits MLP hidden [{args.hidden}], "
          f"{args.rounds} alternating rounds, each child the best of {args.repeats} timings of each length; medians "
          f"over the rounds, the EKI / SGD ratio of each round's pair (its range in brackets), and the ratio of the "
          f"fastest passes of all rounds\n")
    print("| setting | dtype | threads | J | dim | SGD (s/pass) | EKI (s/pass) | EKI / SGD | best / best | "
          "SGD setup (s) | EKI setup (s) | peak RSS (MB) | ensemble J x dim (MB) | outputs J x m (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, batch in settings:
        for dtype in args.dtype:
            width = 8 if dtype == "float64" else 4  # bytes per number
            for threads in args.threads:
                rounds: dict[int, list[dict]] = {}
                for _ in range(args.rounds):
                    for J in [0, *sizes]:
                        # several steps even offline, where a pass is one step
                        got = measure(J, batch, (20 if batch else 100) if J == 0 else 3, dtype, threads, args)
                        got["per_pass"] = (got["total"] - got["setup"]) / got["passes"]
                        rounds.setdefault(J, []).append(got)
                sgd = rounds[0]
                for J in sizes:
                    eki = rounds[J]
                    # a slow spell of the machine falls on both children of a round, so the ratio is taken per round
                    ratios = [e["per_pass"] / s["per_pass"] for e, s in zip(eki, sgd)]
                    m = (batch or eki[0]["n_train"]) * 10
                    dim = eki[0]["dim"]
                    print(f"| {name} | {dtype} | {threads} | {J} | {dim} | {_median(sgd, 'per_pass'):.4f} | "
                          f"{_median(eki, 'per_pass'):.3f} | {statistics.median(ratios):.1f} "
                          f"[{min(ratios):.1f}, {max(ratios):.1f}] | {_best(eki) / _best(sgd):.1f} | "
                          f"{_median(sgd, 'setup'):.3f} | "
                          f"{_median(eki, 'setup'):.3f} | {max(e['peak_mb'] for e in eki):.0f} | "
                          f"{J * dim * width / 2**20:.1f} | {J * m * width / 2**20:.1f} |", flush=True)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _best(runs: list[dict]) -> float:
    """The fastest pass over the rounds: the machine's noise only ever slows a run down."""
    return min(r["per_pass"] for r in runs)


if __name__ == "__main__":
    main()
