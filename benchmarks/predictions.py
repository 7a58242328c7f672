"""Continuous-time predictions of K1 and K3: one ODE solve per model against the stacked solves the claims use.

    python benchmarks/predictions.py            # a few minutes on a 2-core laptop
    python benchmarks/predictions.py --quick    # smoke test (small problems only)

For one series (HB, lam = 0.9, seed 0) of each K1-K3 experiment of the default configuration
(``config/config.yaml``: its problem, h grid, horizon and recording schedule), float64, one thread:

- K3: the modified flows of the series, for every h the paper's ``F_h`` from ``x_0`` and each distinct
  formula from the start of the comparison window ``t_0``: one ``integrate`` per flow (``per model``)
  against one ``integrate_stack`` over all of them (``stacked``: the flows are autonomous, each member
  keeps its own start and output times, every member held to its own tolerance). Every member starts
  from ``x_0`` here (a recorded iterate in the pipeline): the cost of a solve hardly depends on it.
- K1: the time-rescaled flow at the recorded times and the plain flow on the fitting grid, two solves,
  against one solve of the plain flow at both (the rescaled flow at ``t`` is the plain flow at
  ``t / (1 - lam)``).

Both variants run in one process, alternating, best of ``--repeats``; the table gives seconds and the
ratio, and the largest difference between the two variants' answers (the solver's tolerance, not zero:
their step sequences differ).
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from momentum_ct.claims import k1, k3
from momentum_ct.ct.flows import gradient_flow
from momentum_ct.ct.integrate import OdeOptions, integrate, integrate_stack
from momentum_ct.ct.modified import coefficient, modified_flow, modified_flows, time_scale
from momentum_ct.optim import coefficients
from momentum_ct.problems import make_problem
from momentum_ct.sweep import h_grid
from momentum_ct.train.schedule import n_steps_for, record_steps

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
METHOD, LAM = "hb", 0.9


def series(experiment: dict):
    """Problem, h grid, time grid per h and the K1 horizon of one series of a config experiment."""
    problem = make_problem(experiment["problem"], seed=0, **experiment.get("problem_options", {}))
    hs = h_grid(experiment["h"], LAM)
    t_max = experiment["horizon"] * (1.0 - LAM)
    times = {h: h * record_steps(n_steps_for(t_max, h), experiment["n_records"], experiment.get("dense_steps", 0))
             for h in hs}
    return problem, hs, times, t_max


def k3_members(problem, hs, times, t_max):
    """(start, times, c, scale) of every flow k3.predict integrates for the series."""
    t0 = min(max(k3.transient_time(h, LAM) for h in hs), 0.5 * t_max)
    members = []
    for h in hs:
        step_size, lam, a = coefficients(METHOD, h, LAM)
        scale = time_scale(step_size, lam, h)
        coefs = {f: coefficient(f, step_size, lam, a, h) for f in k3.FORMULAS}
        t = times[h]
        members.append((problem.x0, t, coefs[k3.PAPER], scale))
        if k3.transient_time(h, LAM) > t0:
            continue
        window = t[t >= t0] - t[t >= t0][0]
        for c in sorted(set(coefs.values())):
            members.append((problem.x0, window, c, scale))
    return members


def k3_per_model(problem, members, ode):
    return [integrate(modified_flow(problem, c, s), x, t, ode) for x, t, c, s in members]


def k3_stacked(problem, members, ode):
    starts, ts, cs, scales = zip(*members)
    rhs = modified_flows(problem, torch.tensor(cs, dtype=torch.float64), torch.tensor(scales, dtype=torch.float64))
    return integrate_stack(rhs, torch.stack(starts), list(ts), ode)


def k1_grids(problem, hs, times, t_max):
    t = np.concatenate([times[h] for h in hs])
    scale = 1.0 / (1.0 - LAM)
    n = k1.PLAIN_FLOW_POINTS if problem.dim <= k1.LARGE_DIM else k1.PLAIN_FLOW_POINTS_LARGE
    return t, np.linspace(0.0, 2.0 * scale * t_max, n), scale


def k1_two_solves(problem, t, s, scale, ode):
    return [integrate(gradient_flow(problem, scale), problem.x0, t, ode), integrate(gradient_flow(problem, 1.0),
                                                                                   problem.x0, s, ode)]


def k1_one_solve(problem, t, s, scale, ode):
    both = integrate(gradient_flow(problem, 1.0), problem.x0, np.concatenate([scale * t, s]), ode)
    return [both[: len(t)], both[len(t):]]


def best_of(variants: dict, repeats: int) -> tuple[dict[str, float], dict[str, list]]:
    """Seconds of each variant (best of ``repeats``, the variants alternating) and each one's last answer."""
    best, answers = {k: float("inf") for k in variants}, {}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            answers[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, answers


def largest_difference(a: list, b: list) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the two small problems, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(CONFIG.read_text())
    ode = OdeOptions(**config["ode"])
    repeats = 1 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"float64; {METHOD.upper()} at lam={LAM}, {ode.method} rtol={ode.rtol:g} atol={ode.atol:g}; "
          f"best of {repeats}\n")
    print("| experiment | problem | dim | claim | solves | per model (s) | stacked (s) | speed-up | largest difference |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for name, experiment in config["experiments"].items():
        if "K3" not in experiment["claims"] or (args.quick and experiment["problem"] == "digits_mlp"):
            continue
        problem, hs, times, t_max = series(experiment)
        members = k3_members(problem, hs, times, t_max)
        t, s, scale = k1_grids(problem, hs, times, t_max)
        for claim, variants, solves in [
            ("K3", {"per model": lambda: k3_per_model(problem, members, ode),
                    "stacked": lambda: k3_stacked(problem, members, ode)}, f"{len(members)} -> 1"),
            ("K1", {"per model": lambda: k1_two_solves(problem, t, s, scale, ode),
                    "stacked": lambda: k1_one_solve(problem, t, s, scale, ode)}, "2 -> 1"),
        ]:
            seconds, answers = best_of(variants, repeats)
            diff = largest_difference(answers["per model"], answers["stacked"])
            print(f"| {name} | {experiment['problem']} | {problem.dim} | {claim} | {solves} | "
                  f"{seconds['per model']:.2f} | {seconds['stacked']:.2f} | "
                  f"{seconds['per model'] / seconds['stacked']:.1f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
