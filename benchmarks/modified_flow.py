"""Cost of the continuous-time right-hand sides of claims K2 and K3 relative to one gradient.

    python benchmarks/modified_flow.py              # about a minute on a 2-core laptop
    python benchmarks/modified_flow.py --quick      # smoke test

For each problem of the default configuration (quadratic, toy2d, digits MLP; float64, one thread)
it times, at the start point and best of ``--repeats`` interleaved blocks after a warm-up:

- ``grad``: one full-batch gradient, ``Problem.full_grad`` (``torch.func.grad`` where there is no closed form;
  the unit);
- ``autograd grad``: the same gradient as the right-hand sides take it (``ct.modified.gradient``: plain
  reverse-mode autograd outside torch.func's transforms), shown where there is no closed form;
- ``modified``: one right-hand side of K3's modified flow, ``-scale (g + 2 c H g)`` (``ct.modified``):
  the gradient and a Hessian-vector product, closed form where the problem has one, else the
  gradient's pullback (reverse over reverse, in plain autograd);
- ``modified (vjp)``: the same pullback through ``torch.func.vjp`` (the previous route), where there is no
  closed form;
- ``modified (jvp)``: the same with ``H g`` by forward-over-reverse ``jvp`` of the gradient (which needs
  ``g`` first, so computes the gradient twice), the alternative not taken; shown where ``H g`` comes
  from autodiff (no closed form);
- ``K2`` and ``K2 Hessian form``: one right-hand side of the second-order system of K2 (NAG), the
  substituted form (one gradient) and the unsubstituted one (gradient and ``H v``).

It prints one markdown table: microseconds per call and the ratio to ``grad``.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from momentum_ct.ct.modified import coefficient, gradient, modified_flow
from momentum_ct.ct.second_order import second_order, second_order_hessian
from momentum_ct.optim import coefficients
from momentum_ct.problems import make_problem

PROBLEMS = {
    "quadratic": dict(dim=10, condition=10.0, lipschitz=1.0),
    "toy2d": {},
    "digits_mlp": dict(hidden=[32]),
}
H, LAM = 1e-3, 0.9


def best_times(fns: dict, calls: int, repeats: int) -> dict[str, float]:
    """Seconds per call of each function: the best of ``repeats`` blocks of ``calls`` calls, after a warm-up.

    The blocks of the functions alternate (round robin), so a change of load on the machine hits all of
    them alike and the ratios stay fair.
    """
    for fn in fns.values():
        for _ in range(max(1, calls // 10)):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[k] = min(best[k], (time.perf_counter() - start) / calls)
    return best


def modified_jvp(problem, c: float, scale: float):
    def rhs(t, x):
        g = problem.full_grad(x)
        return -scale * (g + 2.0 * c * torch.func.jvp(problem.full_grad, (x,), (g,))[1])

    return rhs


def modified_vjp(problem, c: float, scale: float):
    def rhs(t, x):
        g, pullback = torch.func.vjp(problem.full_grad, x)
        return -scale * (g + 2.0 * c * pullback(g)[0])

    return rhs


def measure(name: str, calls: int, repeats: int) -> dict:
    problem = make_problem(name, seed=0, **PROBLEMS[name])
    step_size, lam, a = coefficients("nag", H, LAM)
    c = coefficient("kovachki_stuart", step_size, lam, a, H)
    x, v = problem.x0.clone(), torch.zeros_like(problem.x0)
    rhs = {
        "grad": lambda: problem.full_grad(x),
        "modified": (lambda f=modified_flow(problem, c, 1.0 / (1.0 - lam)): f(0.0, x)),
        "K2": (lambda f=second_order(problem, H, lam, a): f(0.0, (x, v))),
        "K2 Hessian form": (lambda f=second_order_hessian(problem, H, lam, a): f(0.0, (x, v))),
    }
    if not problem.closed_form_hvp:  # where H g comes from autodiff, the routes not taken
        rhs["modified (jvp)"] = lambda f=modified_jvp(problem, c, 1.0 / (1.0 - lam)): f(0.0, x)
        rhs["modified (vjp)"] = lambda f=modified_vjp(problem, c, 1.0 / (1.0 - lam)): f(0.0, x)
    if problem.grad is None:
        rhs["autograd grad"] = lambda: gradient(problem, x)
    n = calls // 20 if name == "digits_mlp" else calls
    seconds = best_times(rhs, n, repeats)
    return dict(problem=name, dim=problem.dim, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls, for a smoke test")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calls = 200 if args.quick else 2000
    rows = [measure(name, calls, 2 if args.quick else args.repeats) for name in PROBLEMS]
    columns = ["autograd grad", "modified", "modified (vjp)", "modified (jvp)", "K2", "K2 Hessian form"]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"float64; NAG at h={H}, lam={LAM}\n")
    print("| problem | dim | grad (us) | " + " | ".join(f"{c} (us, x grad)" for c in columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    for r in rows:
        s = r["seconds"]
        cells = [f"{1e6 * s[c]:.1f} ({s[c] / s['grad']:.2f}x)" if c in s else "(closed form)" for c in columns]
        print(f"| {r['problem']} | {r['dim']} | {1e6 * s['grad']:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
