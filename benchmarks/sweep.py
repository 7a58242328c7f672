"""Throughput of the training engines: per-run Lightning, per-run plain loop, stacked engine at N runs
(N = 1, 8, 64, 256; on a GPU also 1,024 and 4,096).

    python benchmarks/sweep.py            # full table (about 10 minutes on a 2-core laptop)
    python benchmarks/sweep.py --quick    # smoke test (under a minute)

Every configuration runs in a fresh child process (so peak memory is its own and no state leaks
between engines), best of ``--repeats`` timings after a warm-up. The parent measures the machine's
matmul throughput in the same dtype and thread count, before and after the children, and prints
markdown tables:

1. engines: runs/s, steps/s, the ratio to the per-run Lightning loop, achieved FLOP/s and its
   fraction of the machine's matmul throughput (the best square product of the whole run, so the
   fraction is conservative on a loaded machine; each child's own measurement is shown beside it),
   and peak memory (resident set of the child; CUDA: peak allocated). ``stacked_vmap`` is the
   stacked engine with the network's stacked loss switched off (``vmap`` of ``functional_call``):
   what writing the stack's forward pass by hand gains;
2. clocks: the default configuration's K1 sweeps trained by the stacked engine in lockstep (all
   runs of a job together, each with its own number of steps) against groups of equal h run one
   after another, and against the plain loop.

The stacked rows time the lockstep engine (``compiled=False``); the compiled loops that toy2d's runs take in the
pipeline are timed by ``benchmarks/compiled.py``.

FLOPs are counted analytically, matrix products only. Digits MLP, layer widths ``w_0 .. w_L``,
``n`` samples: forward ``2 n S`` with ``S = sum_l w_(l-1) w_l``; backward ``2 n S`` for the weight
gradients plus ``2 n (S - w_0 w_1)`` for the activation gradients (none for the input layer), so a
step costs ``2 n (3 S - w_0 w_1)`` (the usual ``6 n P`` less the input layer's input gradient). A
recorded row costs one more step on the training set plus two forward passes on the test set
(loss, accuracy). Quadratic: ``2 d^2`` per gradient; toy2d: 20. Runs of the engine table all have
the same length (a fixed h), so runs/s compares engines, not schedules; the mini-batch rows draw
mini-batches of 64 (five seeds, so per-run mini-batches).
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

ENGINE_PROBLEMS = {
    # name: problem, options, h, steps per run (full, quick), records per run (n_records, dense_steps), mini-batch size
    "quadratic": dict(problem="quadratic", options=dict(dim=10, condition=10.0, lipschitz=1.0), h=0.01,
                      steps=(2000, 200), records=(100, 20), batch_size=None),
    "toy2d": dict(problem="toy2d", options={}, h=0.005, steps=(2000, 200), records=(100, 20), batch_size=None),
    "digits_mlp": dict(problem="digits_mlp", options=dict(hidden=[32]), h=0.01, steps=(200, 10), records=(20, 0),
                       batch_size=None),
    "digits_mlp_minibatch": dict(problem="digits_mlp", options=dict(hidden=[32]), h=0.01, steps=(1000, 20),
                                 records=(20, 0), batch_size=64),
}
METHODS = ("hb", "nag", "gd_rescaled")
LAMS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
SEEDS = (0, 1, 2, 3, 4)


# -- children -------------------------------------------------------------------------------------------

def _requests(name: str, n_runs: int, quick: bool):
    from momentum_ct.problems import make_problem
    from momentum_ct.train.stacked import RunRequest
    from momentum_ct.train.schedule import record_steps

    cfg = ENGINE_PROBLEMS[name]
    n_steps = cfg["steps"][quick]
    n_records, dense = cfg["records"]
    problems, out = {}, []
    combos = [(m, lam, s) for s in SEEDS for lam in LAMS for m in METHODS]
    for i in range(n_runs):
        method, lam, seed = combos[i % len(combos)]
        h = cfg["h"] * 2.0 ** -(i // len(combos))  # beyond the combinations: same length, smaller h
        if seed not in problems:
            problems[seed] = make_problem(cfg["problem"], seed=seed, **cfg["options"])
        out.append(RunRequest(problems[seed], method, h, lam, n_steps, record_steps(n_steps, n_records, dense),
                              cfg["batch_size"], seed))
    return out


def _flops(problem, n_steps: int, n_records: int, batch_size: int | None = None) -> float:
    """Matrix-product FLOPs of one run (see the module docstring)."""
    if problem.name == "digits_mlp":
        widths = [problem.train_data[0].shape[1]] + list(problem.options["hidden"]) + [10]
        s = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        per_sample = 2 * (3 * s - widths[0] * widths[1])
        samples = problem.n_train if batch_size is None else min(batch_size, problem.n_train)
        return (n_steps * samples * per_sample
                + n_records * (problem.n_train * per_sample + 2 * 2 * problem.test_data[0].shape[0] * s))
    if problem.name == "quadratic":
        return (n_steps + 2 * n_records) * 2 * problem.dim**2
    return (n_steps + 2 * n_records) * 20.0


def _child(job: dict) -> dict:
    import torch

    torch.set_num_threads(job["threads"])
    from momentum_ct.train.stacked import resolve_device, run_many
    from momentum_ct.train.functional_runner import run_functional

    quick, engine, dtype = job["quick"], job["engine"], getattr(torch, job["dtype"])
    matmul = matmul_throughput(job["dtype"], job["threads"], job["device"], square_only=True)["square"]
    requests = _requests(job["problem"], job["runs"], quick)
    if engine == "stacked_vmap":  # the stacked engine without the problem's stacked network loss
        for r in requests:
            r.problem.stacked_loss = None
    device = resolve_device(job["device"]) if engine.startswith("stacked") else torch.device("cpu")
    if engine == "lightning":
        import logging

        from momentum_ct.train.lightning_system import run_lightning

        for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)

    def once():
        if engine.startswith("stacked"):
            run_many(requests, device=device, dtype=dtype, compiled=False)
        else:
            single = run_functional if engine == "functional" else run_lightning
            for r in requests:
                single(r.problem, method=r.method, hyperparameters=r.hyperparameters, h=r.h, lam=r.lam,
                       n_steps=r.n_steps, record_at=r.record_at, batch_size=r.batch_size, seed=r.seed)
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    best = _best_time(once, job["repeats"])
    steps = sum(r.n_steps for r in requests)
    records = sum(len(r.record_at) for r in requests)
    return dict(seconds=best, runs=len(requests), steps=steps, steps_per_run=requests[0].n_steps,
                flops=sum(_flops(r.problem, r.n_steps, len(r.record_at), r.batch_size) for r in requests),
                records=records, matmul=matmul,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_before_mb=rss_before,
                cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
                device=device.type)


def _clock_child(job: dict) -> dict:
    """The default config's K1 experiment ``job['experiment']``: lockstep, groups of equal h, plain loop."""
    import torch
    import yaml

    torch.set_num_threads(job["threads"])
    from momentum_ct.sweep import expand_series
    from momentum_ct.train.stacked import RunRequest, run_many
    from momentum_ct.train.functional_runner import run_functional
    from momentum_ct.train.series import series_problem, series_runs

    config = yaml.safe_load(open(job["config"]))
    exp = dict(config["experiments"][job["experiment"]], engine="stacked")
    if job["quick"]:  # the coarsest three h of one lam (the fewest its claims accept)
        exp["h"] = dict(exp["h"], halvings=min(2, exp["h"].get("halvings", 2)))
        exp["lam"] = exp["lam"][:1]
    specs = expand_series(dict(experiments={job["experiment"]: exp}))
    requests = []
    for spec in specs:
        problem = series_problem(spec)
        requests += [RunRequest(problem, r["method"], r["h"], spec.lam, r["n_steps"], r["record_at"],
                                spec.batch_size, spec.seed) for r in series_runs(spec)]
    groups: dict[float, list] = {}
    for r in requests:
        groups.setdefault(r.h, []).append(r)
    ways = {
        "lockstep": lambda: run_many(requests, device="cpu", compiled=False),
        "groups_of_h": lambda: [run_many(g, device="cpu", compiled=False) for g in groups.values()],
        "plain_loop": lambda: [run_functional(r.problem, method=r.method, hyperparameters=r.hyperparameters,
                                              h=r.h, lam=r.lam, n_steps=r.n_steps, record_at=r.record_at,
                                              batch_size=r.batch_size, seed=r.seed)
                               for r in requests],
    }
    out = dict(runs=len(requests), steps=sum(r.n_steps for r in requests),
               longest=max(r.n_steps for r in requests),
               group_iterations=sum(max(r.n_steps for r in g) for g in groups.values()), groups=len(groups))
    for name, fn in ways.items():
        out[name] = _best_time(fn, job["repeats"])
    return out


def _best_time(fn, repeats: int, long: float = 10.0) -> float:
    """Best of ``repeats`` timings after a warm-up call; a call longer than ``long`` seconds counts as its own
    warm-up and is timed once (first-call costs are then negligible)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > long:
        return first
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# -- parent ---------------------------------------------------------------------------------------------

def _spawn(kind: str, job: dict) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, __file__, f"--{kind}", json.dumps(job)], capture_output=True, text=True,
                          env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"benchmark child {job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def matmul_throughput(dtype: str, threads: int, device: str, square_only: bool = False) -> dict:
    """Best-of-3 GFLOP/s of a large square product and of the MLP's first-layer stacked product, and the
    rate (elements/s) of tanh forward and backward on that layer's output."""
    import torch

    from momentum_ct.train.stacked import CPU_CHUNK_ELEMENTS, resolve_device

    torch.set_num_threads(threads)
    dev, dt = resolve_device(device), getattr(torch, dtype)

    def best(fn, flops, reps=3):
        fn()
        times = []
        for _ in range(reps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return flops / min(times) / 1e9

    n = 2048 if dev.type == "cpu" else 8192
    a = torch.randn(n, n, dtype=dt, device=dev)
    square = best(lambda: a @ a, 2 * n**3)
    if square_only:
        return dict(square=square)
    samples, chunk = 1438, max(1, CPU_CHUNK_ELEMENTS // (1438 * 32)) if dev.type == "cpu" else 256
    x = torch.randn(samples, 64, dtype=dt, device=dev)
    w = torch.randn(chunk, 64, 32, dtype=dt, device=dev)
    layer = best(lambda: torch.bmm(x.expand(chunk, samples, 64), w), 2 * chunk * samples * 64 * 32, reps=10)
    z = torch.randn(chunk, samples, 32, dtype=dt, device=dev)
    y = torch.tanh(z)
    # elements per second of the MLP's unavoidable elementwise work: tanh forward and backward
    tanh = best(lambda: (torch.tanh(z), torch.ops.aten.tanh_backward(z, y)), z.numel(), reps=10) * 1e9
    # seconds per run of each matrix product of one step, in the shapes and layout the engine uses
    xe, g = x.expand(chunk, samples, 64), torch.randn_like(z[..., :10])
    w2 = torch.randn(chunk, 32, 10, dtype=dt, device=dev)
    products = {
        "layer 1 forward": (lambda: torch.bmm(xe, w), 64 * 32),
        "layer 1 weight gradient": (lambda: torch.bmm(z.transpose(1, 2), xe), 64 * 32),
        "layer 2 forward": (lambda: torch.bmm(z, w2), 32 * 10),
        "layer 2 input gradient": (lambda: torch.bmm(g, w2.transpose(1, 2)), 32 * 10),
        "layer 2 weight gradient": (lambda: torch.bmm(z.transpose(1, 2), g), 32 * 10),
    }
    rates = {k: best(fn, 2 * chunk * samples * size, reps=10) for k, (fn, size) in products.items()}
    product_seconds = sum(2 * samples * size / (rates[k] * 1e9) for k, (_, size) in products.items())
    return dict(square=square, square_n=n, layer=layer, layer_chunk=chunk, tanh=tanh, rates=rates,
                product_seconds=product_seconds)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few, short runs: a smoke test")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--device", default="auto", help="stacked engine device: auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=None, help="timings per configuration (best is kept)")
    parser.add_argument("--problems", nargs="*", default=list(ENGINE_PROBLEMS), choices=list(ENGINE_PROBLEMS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--clock-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    if args.clock_child:
        print(json.dumps(_clock_child(json.loads(args.clock_child))))
        return

    repeats = args.repeats or (1 if args.quick else 3)
    import torch

    sizes = (1, 8) if args.quick else (1, 8, 64, 256)
    if not args.quick and args.device != "cpu" and torch.cuda.is_available():
        sizes += (1024, 4096)  # where a GPU has the width to fill: the stacked MLP's matmul rate at N >= 4096
    per_run = 2 if args.quick else 3
    base = dict(threads=args.threads, dtype=args.dtype, device=args.device, quick=args.quick, repeats=repeats)

    load0 = os.getloadavg()
    mm0 = matmul_throughput(args.dtype, args.threads, args.device)
    rows = []
    for problem in args.problems:
        jobs = [("lightning", per_run), ("functional", per_run)] + [("stacked", n) for n in sizes]
        if ENGINE_PROBLEMS[problem]["problem"] == "digits_mlp":
            jobs.append(("stacked_vmap", sizes[-2]))
        for engine, n in jobs:
            reps = 1 if engine == "lightning" else repeats
            result = _spawn("child", dict(base, problem=problem, engine=engine, runs=n, repeats=reps))
            rows.append(dict(problem=problem, engine=engine, **result))
            print(f"  {problem:10s} {engine:10s} N={n:<4d} {result['seconds']:8.3f}s", file=sys.stderr, flush=True)
    clocks = []
    config = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "config.yaml")
    for experiment in ("k1_quadratic", "k1_toy2d", "k1_digits_mlp"):
        result = _spawn("clock-child", dict(base, config=config, experiment=experiment))
        clocks.append(dict(experiment=experiment, **result))
        print(f"  clocks {experiment} done", file=sys.stderr, flush=True)
    mm1 = matmul_throughput(args.dtype, args.threads, args.device)
    load1 = os.getloadavg()
    square = max([mm0["square"], mm1["square"]] + [r["matmul"] for r in rows])  # the best seen: conservative
    layer = max(mm0["layer"], mm1["layer"])
    tanh = max(mm0["tanh"], mm1["tanh"])
    product_seconds = min(mm0["product_seconds"], mm1["product_seconds"])
    rates = {k: max(mm0["rates"][k], mm1["rates"][k]) for k in mm0["rates"]}

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Machine: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} torch threads, "
          f"{args.dtype}, stacked device {rows[-1]['device'] if rows else args.device}; load average "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after{' (quick mode)' if args.quick else ''}.")
    print(f"Matmul throughput, {args.dtype}: {square:.1f} GFLOP/s ({mm0['square_n']}x{mm0['square_n']} square, best "
          f"of the run; before/after the children: {mm0['square']:.1f}/{mm1['square']:.1f}, in each child just before "
          f"its timing: column 'matmul'); MLP first layer as a stacked product "
          f"({mm0['layer_chunk']} x [1438x64 @ 64x32]): {layer:.1f} GFLOP/s.")
    # the bound for the digits MLP: its matmuls at the square rate plus its tanh at the measured rate
    flops_step, hidden = 2 * 1438 * (3 * (64 * 32 + 32 * 10) - 64 * 32), 1438 * 32
    bound = flops_step / (flops_step / (square * 1e9) + hidden / tanh) / 1e9
    print(f"Digits MLP (64-32-10, 1438 samples): {flops_step / 1e6:.2f} MFLOP of matrix products per run and step "
          f"against {hidden} tanh (forward and backward) at {tanh / 1e9:.2f} G elements/s: even with every product "
          f"at the square rate, at most {bound:.1f} GFLOP/s = {100 * bound / square:.0f}% of it. With the products "
          f"at the rates measured in their own shapes ({', '.join(f'{k} {v:.0f}' for k, v in rates.items())} "
          f"GFLOP/s), at most {flops_step / (product_seconds + hidden / tanh) / 1e9:.1f} GFLOP/s = "
          f"{100 * flops_step / (product_seconds + hidden / tanh) / 1e9 / square:.0f}%.")
    print()
    print("| problem | engine | runs | steps/run | wall s | runs/s | steps/s | x Lightning | GFLOP/s | % of matmul "
          "| matmul | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for problem in args.problems:
        ref = next(r for r in rows if r["problem"] == problem and r["engine"] == "lightning")
        ref_rate = ref["runs"] / ref["seconds"]
        for r in (r for r in rows if r["problem"] == problem):
            rate = r["runs"] / r["seconds"]
            gflops = r["flops"] / r["seconds"] / 1e9
            memory = f"{r['peak_rss_mb']:.0f}" + (f" (cuda {r['cuda_peak_mb']:.0f})" if r["cuda_peak_mb"] else "")
            print(f"| {problem} | {r['engine']} | {r['runs']} | {r['steps_per_run']} | {r['seconds']:.3g} | "
                  f"{rate:.3g} | {r['steps'] / r['seconds']:.3g} | {rate / ref_rate:.3g} | {gflops:.3g} | "
                  f"{100 * gflops / square:.2g} | {r['matmul']:.3g} | {memory} |")
    print()
    print("| K1 experiment (config/config.yaml) | runs | steps | longest run | h groups | iterations, groups of h | "
          "lockstep s | groups of h s | plain loop s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in clocks:
        print(f"| {c['experiment']} | {c['runs']} | {c['steps']} | {c['longest']} | {c['groups']} | "
              f"{c['group_iterations']} | {c['lockstep']:.3g} | {c['groups_of_h']:.3g} | {c['plain_loop']:.3g} |")


if __name__ == "__main__":
    main()
