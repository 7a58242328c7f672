"""Time per data pass of ensemble Kalman inversion against SGD on the digits MLP, through the stacked engine.

    python benchmarks/eki.py            # J = 500 and 2000, online (mini-batches of 64) and offline
    python benchmarks/eki.py --quick    # J = 500 online only (under a minute)
    python benchmarks/eki.py --quick --dtype float64 float32 --threads 1 2
                                        # J = 500 online in both precisions on one and two threads

Both methods train the same network (``--hidden``, default 16: 1,210 parameters) on the same data for the
same number of passes; SGD is ``gd`` on mini-batches (offline: full-batch GD). Each configuration runs in a
fresh child process (peak memory is its own), best of ``--repeats`` timings; the recording is one row at
the end, so the table times training. The children of SGD and of EKI alternate over ``--rounds`` rounds and
each keeps its best round, so a slow spell of a shared machine does not fall on one side of the ratio only. Printed: seconds per pass, the ratio EKI / SGD, the child's peak
resident memory, and the size of the ensemble (J x dim) and of its outputs on one step's data
(J x samples x classes), the two largest arrays the update needs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
    n = args.passes * steps_per_pass
    method = "gd" if args.J == 0 else {"name": "eki", "J": args.J, "spread": 0.3, "adaptive": 1.0}
    best = float("inf")
    for _ in range(args.repeats):
        request = RunRequest(problem, method, 0.5, 0.0, n, np.array([n]), batch_size=batch)
        start = time.perf_counter()
        run_many([request], device="cpu", dtype=args.dtype)
        best = min(best, time.perf_counter() - start)
    print(json.dumps(dict(per_pass=best / args.passes, dim=problem.dim, n_train=problem.n_train,
                          peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


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
    parser.add_argument("--repeats", type=int, default=2, help="timings per child (best kept)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the SGD and EKI children "
                        "(best kept)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch threads, one or more settings (both methods run with the same)")
    parser.add_argument("--dtype", nargs="+", choices=("float64", "float32"), default=["float64"],
                        help="both methods' arithmetic, one or more settings (default float64)")
    args = parser.parse_args()
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be at least 1")
    if args.child:
        args.threads, args.dtype = args.threads[0], args.dtype[0]
        child(args)
        return
    import torch

    sizes = [500] if args.quick else [500, 2000]
    settings = [("online", 64)] if args.quick else [("online", 64), ("offline", 0)]
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, digits MLP hidden [{args.hidden}], "
          f"best of {args.rounds} alternating rounds of {args.repeats} timings\n")
    print("| setting | dtype | threads | J | dim | SGD (s/pass) | EKI (s/pass) | EKI / SGD | peak RSS (MB) | "
          "ensemble J x dim (MB) | outputs J x m (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, batch in settings:
        passes = 20 if batch else 100  # several steps even offline, where a pass is one step
        for dtype in args.dtype:
            width = 8 if dtype == "float64" else 4  # bytes per number
            for threads in args.threads:
                best: dict[int, dict] = {}
                for _ in range(args.rounds):
                    for J in [0, *sizes]:
                        got = measure(J, batch, passes if J == 0 else (2 if batch else 5), dtype, threads, args)
                        if J not in best or got["per_pass"] < best[J]["per_pass"]:
                            best[J] = got
                sgd = best[0]
                for J in sizes:
                    eki = best[J]
                    m = (batch or eki["n_train"]) * 10
                    print(f"| {name} | {dtype} | {threads} | {J} | {eki['dim']} | {sgd['per_pass']:.4f} | "
                          f"{eki['per_pass']:.3f} | {eki['per_pass'] / sgd['per_pass']:.1f} | {eki['peak_mb']:.0f} | "
                          f"{J * eki['dim'] * width / 2**20:.1f} | {J * m * width / 2**20:.1f} |", flush=True)


if __name__ == "__main__":
    main()
