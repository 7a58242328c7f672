"""Runs of the heavy-ball family on a small data-free problem in compiled loops, one run after another.

The lockstep engine (``train.stacked``) pays Python and dispatch overhead per iteration: 40-80 us for a
few flops per run on a 2-D problem, so a batch's time is its longest run times that overhead. Where the
problem states its gradient at one point in plain arithmetic (``Problem.point_grad``), numba compiles it
together with the heavy-ball step ``x_{k+1} = x_k + lam (x_k - x_{k-1}) - step_size grad f(x_k + a (x_k -
x_{k-1}))`` into one loop per run, which costs about what its arithmetic costs. The loop performs the
engine's floating-point operations in the engine's order (no fused multiply-add, no reassociation), so
trajectories equal the lockstep engine's. The rest is the engine's own: records are copied at the same
steps, their values come from ``Method.record`` and their metrics from the stacked evaluator, a run that
diverges (not finite, or grown past its threshold) is recorded at the step where it diverged and stops.
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from typing import Callable

import numpy as np
import torch

from ..optim.heavy_ball import HeavyBallFamily
from .recorder import metric_arrays

# Copied iterates (x and x_prev) are evaluated once this many numbers wait (the engine's ``PENDING_ELEMENTS``).
RECORD_ELEMENTS = 2**23
# The heavy-ball family's per-run columns, in the loop's argument order.
COLUMNS = ("step_size", "lam", "a")


def eligible(method, problem, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether a cohort can run compiled: the heavy-ball family, a problem with ``point_grad`` and no data, on the
    CPU in float64 (the loop's arithmetic), where numba is installed."""
    return (isinstance(method, HeavyBallFamily) and problem.point_grad is not None and not problem.train_data
            and device.type == "cpu" and dtype == torch.float64 and importlib.util.find_spec("numba") is not None)


@functools.lru_cache(maxsize=None)
def _compiled(point_grad: Callable) -> Callable:
    """The compiled run loop for one problem's point gradient (numba compiles it on the first call)."""
    import numba  # imported here: only runs that use it pay for loading the compiler

    grad, norm = numba.njit(point_grad), numba.njit(_norm)

    @numba.njit
    def run(x, xp, step_size, lam, a, n_steps, record_steps, threshold, xs, xps):
        """Advance ``x`` (and ``xp``, the iterate before it) in place, copying both into the rows of ``xs``, ``xps``
        at ``record_steps`` (sorted, within [0, n_steps]); returns the rows copied and the step at which the run
        diverged (-1: it did not), where ``x`` and ``xp`` then stop."""
        dim = x.shape[0]
        g, point, new = np.empty(dim), np.empty(dim), np.empty(dim)
        j = 0
        for k in range(n_steps + 1):
            if j < record_steps.shape[0] and record_steps[j] == k:
                if k == 0 and not norm(x) <= threshold:  # a start that has diverged already (as the engine)
                    return 0, 0
                for i in range(dim):
                    xs[j, i] = x[i]
                    xps[j, i] = xp[i]
                j += 1
            if k == n_steps:
                break
            if a != 0.0:
                for i in range(dim):
                    point[i] = x[i] + a * (x[i] - xp[i])
                grad(point, g)
            else:
                grad(x, g)
            for i in range(dim):
                new[i] = x[i] + lam * (x[i] - xp[i]) - step_size * g[i]
            for i in range(dim):
                xp[i] = x[i]
                x[i] = new[i]
            if not norm(x) <= threshold:
                return j, k + 1
        return j, -1

    return run


def _norm(x):
    """``|x|`` as the engine's divergence test computes it (the sum of squares in index order)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return np.sqrt(s)


def run_compiled(cohort) -> None:
    """Advance every run of a ``train.stacked`` cohort (its state, schedules and recorders) with the compiled
    loop, recording as runs finish: values through the method's ``record``, metrics through the cohort's
    evaluator, in stacks of at most ``RECORD_ELEMENTS`` numbers. A point gradient that numba cannot compile
    leaves the cohort to the lockstep engine, with a warning."""
    import numba

    run = _compiled(cohort.problem.point_grad)
    state = cohort.state
    columns = [state[name][:, 0].numpy() for name in COLUMNS]
    x0, xp0 = state["x"].numpy(), state["x_prev"].numpy()
    thresholds = cohort.thresholds.numpy()
    longest, rows, waiting = 0, [], 0  # rows: (run, steps, xs, xps, diverged_at, x, xp) not yet recorded
    for i, request in enumerate(cohort.requests):
        steps = np.unique(np.asarray(request.record_at, dtype=np.int64))
        steps = steps[(steps >= 0) & (steps <= request.n_steps)]
        x, xp = x0[i].copy(), xp0[i].copy()
        xs, xps = np.empty((len(steps), len(x))), np.empty((len(steps), len(x)))
        args = (x, xp, *(c[i] for c in columns), int(request.n_steps), steps, float(thresholds[i]), xs, xps)
        if i == 0:  # numba compiles on the first call, before it runs anything
            try:
                n, at = run(*args)
            except numba.core.errors.NumbaError as err:
                warnings.warn(f"{cohort.problem.name}: point_grad could not be compiled, so its runs go through "
                              f"the lockstep engine ({str(err).splitlines()[0]})", stacklevel=2)
                cohort.run()
                return
        else:
            n, at = run(*args)
        rows.append((i, steps[:n], xs[:n], xps[:n], at, x, xp))
        waiting += 2 * xs[:n].size
        done = int(request.n_steps) if at < 0 else at
        longest = max(longest, done)
        cohort._report(steps=done, runs=1, diverged=int(at >= 0))
        if waiting >= RECORD_ELEMENTS:
            _record(cohort, rows)
            rows, waiting = [], 0
    _record(cohort, rows)
    cohort._report(iterations=longest)  # what lockstep would have made: its longest run's steps


def _record(cohort, rows) -> None:
    """Values and metrics of the copied iterates of ``rows`` in one stack, then each run's rows in step order (a
    diverged run's last row without metrics, as ``TrajectoryRecorder.mark_diverged``)."""
    if not rows:
        return
    method, dtype = cohort.method, cohort.dtype

    def values(run_ids, xs, xps):
        cols = {n: cohort.state[n][torch.as_tensor(run_ids)] for n in COLUMNS}
        state = {**method.init(torch.as_tensor(xs, dtype=dtype), cols), "x_prev": torch.as_tensor(xps, dtype=dtype)}
        return method.record(state)

    run_ids = np.concatenate([np.full(len(steps), i) for i, steps, *_ in rows])
    xs = np.concatenate([r[2] for r in rows])
    xps = np.concatenate([r[3] for r in rows])
    recorded = values(run_ids, xs, xps) if len(xs) else {}
    metrics = metric_arrays(cohort.evaluator.metrics(recorded["x"])) if len(xs) else {}
    arrays = {n: v.numpy() for n, v in recorded.items()}
    start = 0
    for i, steps, _, _, at, x, xp in rows:
        recorder = cohort.recorders[i]
        end = start + len(steps)
        if end > start:
            recorder.extend(np.asarray(steps, dtype=np.int64), {n: v[start:end] for n, v in metrics.items()},
                            {n: a[start:end] for n, a in arrays.items()})
        start = end
        if at >= 0:
            last = values(np.array([i]), x[None], xp[None])
            recorder.append(at, None, {n: v[0].numpy().copy() for n, v in last.items()})
