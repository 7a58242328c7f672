"""Stacked sweep engine: many runs of a method advanced together in one process.

A run is one problem instance trained with one method and its hyperparameters for ``n_steps`` steps.
Runs that share a problem instance and whose methods stack together (``Method.stack_key``: every
member of the heavy-ball family) form a cohort: the same problem and options, and the same seed
unless the seed sets nothing but the start point (``Problem.seed_sets_start_only``: toy2d, the
digits MLP; the quadratic's Hessian depends on its seed, so each of its seeds is a cohort of its
own). A cohort stacks its runs into one method state (``optim.protocol``: tensors of shape
``(runs, ...)``, per-run coefficients as ``runs x 1`` columns; for the heavy-ball family
``step_size, lam, a``) and advances them in lockstep in the step index ``k``: per ``k``, one
``Method.step`` for all active runs, whose gradient requests the oracle answers with one evaluation
for the whole stack (the problem's stacked network loss differentiated by autograd, else
``torch.func.vmap`` of the problem's gradient); an ensemble method's forward requests (``FORWARD``: EKI) are
answered by the problem's forward map on the same step's data, for all members of all runs at once. Runs of
different ``h`` have different lengths and
recording steps: each keeps its own schedule (``schedule.record_steps``), the runs that record at
``k`` have their records (``Method.record``) copied aside, and a run leaves the stack
(``Method.select``) after its last step. Copied iterates are evaluated (loss, gradient norm,
test metrics) in large stacks, not one row at a time.

Lockstep in ``k`` rather than groups of equal ``h`` run one after another: every step of every
run is computed once either way, but lockstep needs as many iterations as the longest run,
where groups need the sum of the groups' lengths, and for small problems the cost of an
iteration is the Python and dispatch overhead, not the arithmetic (``benchmarks/sweep.py``
measures both). Aligning on a common time grid instead (the finest ``h`` as the clock, coarser
runs masked between their steps) needs ``h`` ratios that are integers, which a sweep over ``lam``
does not give, and wastes the masked work.

A run that diverges (non-finite, or grown past ``recorder.divergence_threshold`` of its start) is
recorded at the step where it diverged, exactly as ``TrajectoryRecorder.mark_diverged`` records it,
and leaves the stack at once, so no non-finite number ever meets another run. Mini-batch runs draw the same seeded index
sequence as the single-run engines (``Problem.minibatch_indices``), one stream per seed.

On-line methods (``needs`` has ``ONE_SAMPLE``: annealed SGD, matrix momentum) draw instead, per run and step, one
training index (``batch_size`` of them where the run has one) uniformly with replacement from the run's seed's own
stream (``OnlineSamples``): the draws of a seed do not depend on which other runs share its stack, and runs of one
seed with different methods see the same samples (common random numbers, which shrink the variance of a
comparison between methods). Seeds are then the Monte Carlo's independent runs: an expectation such as
``E|w - w*|^2`` is a mean over the rows of one stack. The oracle also serves Hessian-vector products of the
step's loss (``HVP``, forward-over-reverse through ``torch.func`` or a closed form; never a Hessian) and, for an
exact-curvature reference, of the full training loss.

Device and dtype: one code path; ``device="auto"`` is CUDA where present, else the CPU. Float64
is the default (the orders of convergence need it); float32 is allowed for curves (K4), and the
dtype is written to the metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..optim import FORWARD, GRAD, HVP, ONE_SAMPLE, Method, Oracle, check_needs, resolve_method
from ..problems import Problem
from .compiled import eligible as compiled_eligible, run_compiled
from .progress import Progress
from .recorder import TrajectoryRecorder, metric_arrays

DTYPES = {"float64": torch.float64, "float32": torch.float32}

# CPU: runs are evaluated in chunks whose widest activation stays about this size (elements), so the
# elementwise passes of a network run from cache; larger chunks are memory-bound (benchmarks/sweep.py).
CPU_CHUNK_ELEMENTS = 2**19
# Copied iterates are evaluated once this many elements (x and x_prev) are waiting.
PENDING_ELEMENTS = 2**23


# What the stacked engine's oracle serves (FORWARD for problems with a forward map: ``check_forward``).
PROVIDES = frozenset({GRAD, HVP, ONE_SAMPLE, FORWARD})


def check_forward(method: Method, problem: Problem) -> None:
    """Refuse a method that needs model outputs (``FORWARD``) on a problem without a forward map.

    Raises:
        ConfigError: naming the method and the problem.
    """
    if FORWARD in method.needs and problem.forward_map is None:
        raise ConfigError(f"method {method.name!r} needs the model outputs of the problem, and problem "
                          f"{problem.name!r} has no forward map (problems with one: digits_mlp, regression, graph_ssl)")


# On-line draws are made for this many steps at a time (one generator call per seed per block, not per step).
SAMPLE_BLOCK = 512


@dataclass(frozen=True)
class RunRequest:
    """One run for ``run_many``; the fields mirror the single-run engines' keyword arguments.

    ``problem`` is the run's own instance (its start point; for losses that depend on the seed, its loss).
    ``method`` is a name, label, ``Method`` or ``MethodSpec``, ``hyperparameters`` its own values; ``h`` and
    ``lam`` are the nominal learning rate and momentum. They are checked and resolved at construction:
    ``method`` becomes the registered ``Method``, ``hyperparameters`` its complete values, and ``columns``
    the per-run coefficients the method iterates (``Method.columns``).
    """

    problem: Problem
    method: Any
    h: float
    lam: float
    n_steps: int
    record_at: np.ndarray
    batch_size: int | None = None
    seed: int = 0
    hyperparameters: Mapping[str, float] = field(default_factory=dict)
    columns: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        spec = resolve_method(self.method, self.hyperparameters)
        object.__setattr__(self, "method", spec.method)
        object.__setattr__(self, "hyperparameters", dict(spec.hyperparameters))
        object.__setattr__(self, "columns", spec.columns(self.h, self.lam))


# ``auto`` sends a problem to a GPU only when one step's arithmetic per run (parameters x training samples) is
# at least this much: below it a lockstep iteration is a dozen kernel launches for a few flops per run, and one
# CPU core is many times faster than a GPU (a 2-D toy problem ran 16x slower on an H100 than on one laptop core).
AUTO_CUDA_MIN_WORK = 10**5


def step_work(problem: Problem) -> int:
    """Parameters times training samples: the size of one step's arithmetic for one run."""
    return problem.dim * max(problem.n_train, 1)


def resolve_device(device: str | torch.device = "auto", problem: Problem | None = None) -> torch.device:
    """``auto``: CUDA where available and the problem is large enough to gain from it (``AUTO_CUDA_MIN_WORK``;
    without a problem, any), else the CPU. Asking for an absent CUDA device is an error."""
    if isinstance(device, str) and device == "auto":
        worth_it = problem is None or step_work(problem) >= AUTO_CUDA_MIN_WORK
        return torch.device("cuda" if torch.cuda.is_available() and worth_it else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch finds no CUDA device; use 'auto' or 'cpu'")
    return device


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def cohort_key(request: RunRequest) -> tuple:
    """Runs with equal keys share one problem instance (and one stacked state)."""
    p = request.problem
    options = {k: v for k, v in p.options.items() if k != "seed"}
    seed = None if p.seed_sets_start_only else request.seed
    return (p.name, repr(sorted(options.items())), seed, request.batch_size,
            request.method.stack_key(request.columns))


def lockstep_iterations(requests: list[RunRequest]) -> int:
    """Iterations ``run_many`` makes: the longest run of each cohort, summed over cohorts (run one after another)."""
    longest: dict[tuple, int] = {}
    for r in requests:
        key = cohort_key(r)
        longest[key] = max(longest.get(key, 0), int(r.n_steps))
    return sum(longest.values())


def run_stacked(problem: Problem, *, method: Any, h: float, lam: float, n_steps: int, record_at,
                batch_size: int | None = None, seed: int = 0,
                hyperparameters: Mapping[str, float] | None = None) -> TrajectoryRecorder:
    """The single-run engine contract (as ``run_functional``), through the stacked engine on the CPU."""
    request = RunRequest(problem, method, h, lam, n_steps, np.asarray(record_at), batch_size, seed,
                         dict(hyperparameters or {}))
    return run_many([request], device="cpu", dtype=problem.x0.dtype)[0]


def run_many(requests: list[RunRequest], *, device: str | torch.device = "auto",
             dtype: str | torch.dtype = torch.float64, progress: Progress | None = None,
             chunk_elements: int | None = None, compiled: bool = True) -> list[TrajectoryRecorder]:
    """Advance every run and return one recorder per request, in order, with the rows the single-run
    engines would record (same steps, same columns; values equal to round-off).

    Args:
        requests: the runs.
        device: ``auto``, ``cpu``, ``cuda`` or a ``torch.device``.
        dtype: ``float64`` (default) or ``float32``, name or ``torch.dtype``.
        progress: optional ``Progress``, updated as runs advance and finish (not closed here).
        chunk_elements: size of the run chunks a network is evaluated in (see ``CPU_CHUNK_ELEMENTS``);
            ``None``: that value on the CPU, no chunking on CUDA.
        compiled: run the cohorts that can (``train.compiled``: the heavy-ball family on a small problem with a
            point gradient) in compiled loops, one run after another, instead of in lockstep; the same rows.
    """
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    if chunk_elements is None:
        chunk_elements = CPU_CHUNK_ELEMENTS if device.type == "cpu" else 0
    for method in {id(r.method): r.method for r in requests}.values():
        check_needs(method, PROVIDES, "stacked")
    for r in requests:
        check_forward(r.method, r.problem)
    recorders = [TrajectoryRecorder(r.problem, r.h) for r in requests]
    cohorts: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        cohorts.setdefault(cohort_key(r), []).append(i)
    with torch.no_grad():
        for ids in cohorts.values():
            if progress is not None:
                progress.start_stack(max(requests[i].n_steps for i in ids))
            cohort = _Cohort([requests[i] for i in ids], [recorders[i] for i in ids], device, dtype, chunk_elements,
                             progress)
            if compiled and compiled_eligible(cohort.method, cohort.problem, device, dtype):
                run_compiled(cohort)
            else:
                cohort.run()
    return recorders


class _Evaluator:
    """Stacked loss, gradient and metrics of one problem instance, chunked over runs.

    The gradient of a stack comes from, in order of preference: the problem's closed forms when they take
    a stack (``Problem.vectorised``), its stacked network loss through autograd (``Problem.stacked_loss``),
    else ``vmap`` of its gradient (closed form or ``torch.func.grad`` of the loss).
    """

    def __init__(self, problem: Problem, chunk_runs: int):
        self.problem, self.chunk_runs = problem, chunk_runs
        self._hvps: dict[bool, Callable] = {}
        self.stacked = problem.stacked_loss
        if self.stacked is None and problem.vectorised and problem.grad is not None:
            # closed forms that take a stack, with shared or per-run data: no vmap
            self._vmapped = {per_run: (problem.loss, problem.grad) for per_run in (False, True)}
        elif self.stacked is None:
            grad_fn = problem.grad if problem.grad is not None else torch.func.grad(problem.loss)
            self._vmapped = {per_run: (torch.func.vmap(problem.loss, in_dims=(0, 0 if per_run else None)),
                                       torch.func.vmap(grad_fn, in_dims=(0, 0 if per_run else None)))
                             for per_run in (False, True)}
        if problem.accuracy is not None:
            self._accuracy = torch.func.vmap(problem.accuracy, in_dims=(0, None))

    def _chunks(self, xs: Tensor, data, per_run: bool):
        if self.chunk_runs <= 0 or xs.shape[0] <= self.chunk_runs:
            return [(xs, data)]
        return [(xs[start:start + self.chunk_runs],
                 tuple(t[start:start + self.chunk_runs] for t in data) if per_run else data)
                for start in range(0, xs.shape[0], self.chunk_runs)]

    def _over_chunks(self, fn: Callable, xs: Tensor, data, per_run: bool) -> Tensor:
        parts = [fn(x, d) for x, d in self._chunks(xs, data, per_run)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _value_and_grad(self, xs: Tensor, data, per_run: bool) -> tuple[Tensor, Tensor]:
        if self.stacked is None:
            loss_fn, grad_fn = self._vmapped[per_run]
            return loss_fn(xs, data), grad_fn(xs, data)
        with torch.enable_grad():
            xs = xs.detach().requires_grad_(True)
            losses = self.stacked(xs, data, per_run)
            (grad,) = torch.autograd.grad(losses.sum(), xs)
        return losses.detach(), grad

    def grad(self, xs: Tensor, data, per_run: bool = False) -> Tensor:
        if self.stacked is None:
            return self._over_chunks(self._vmapped[per_run][1], xs, data, per_run)
        return self._over_chunks(lambda x, d: self._value_and_grad(x, d, per_run)[1], xs, data, per_run)

    def forward(self, points: Tensor, data, per_run: bool = False) -> tuple[Tensor, Tensor]:
        """The forward map at ``points`` (runs x n x dim): outputs (runs x n x m) and observations (runs x m)."""
        runs, n = points.shape[:2]
        flat = points.reshape(runs * n, points.shape[2])
        if per_run:  # each run's data serves its n points
            data = tuple(t.repeat_interleave(n, dim=0) for t in data)
        # points cost what runs cost in the loss: the same chunks keep activations in cache
        parts = [self.problem.forward_map(x, d, per_run) for x, d in self._chunks(flat, data, per_run)]
        outputs = torch.cat([o for o, _ in parts]) if len(parts) > 1 else parts[0][0]
        y = torch.cat([v for _, v in parts]).view(runs, n, -1)[:, 0] if per_run else parts[0][1].expand(runs, -1)
        return outputs.view(runs, n, -1), y

    def hvp(self, xs: Tensor, vs: Tensor, data, per_run: bool = False) -> Tensor:
        """Per run, the Hessian of the loss on ``data`` at ``xs[i]`` times ``vs[i]``: a closed form where the problem
        has one, else forward-over-reverse (``jvp`` of the gradient, vmapped), or for a stacked network loss
        reverse-over-reverse autograd (each run's loss depends on its own row only). O(dim) memory per run."""
        if self.stacked is None:
            if per_run not in self._hvps:
                p = self.problem
                self._hvps[per_run] = (p.hessian_vector if p.vectorised and p.hessian_vector is not None else
                                       torch.func.vmap(self._hvp_one, in_dims=(0, 0, 0 if per_run else None)))
            fn = self._hvps[per_run]
        else:
            fn = lambda x, v, d: self._stacked_hvp(x, v, d, per_run)
        # points and vectors travel as one stack, so they are cut into the same chunks of runs as the gradient
        pairs = torch.stack([xs, vs], dim=1)
        return self._over_chunks(lambda p, d: fn(p[:, 0], p[:, 1], d), pairs, data, per_run)

    def _hvp_one(self, x: Tensor, v: Tensor, data) -> Tensor:
        p = self.problem
        if p.hessian_vector is not None:
            return p.hessian_vector(x, v, data)
        grad_fn = p.grad if p.grad is not None else torch.func.grad(p.loss)
        return torch.func.jvp(lambda y: grad_fn(y, data), (x,), (v,))[1]

    def _stacked_hvp(self, xs: Tensor, vs: Tensor, data, per_run: bool) -> Tensor:
        with torch.enable_grad():
            xs = xs.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.stacked(xs, data, per_run).sum(), xs, create_graph=True)
            (hv,) = torch.autograd.grad((grad * vs).sum(), xs)
        return hv.detach()

    def metrics(self, xs: Tensor) -> dict[str, Tensor]:
        """Per-run ``loss``, [``test_loss``, ``test_accuracy``,] and on the full data ``grad_norm`` or, for a problem
        with a known minimiser, ``sq_dist`` instead, in that order (``TrajectoryRecorder``)."""
        p = self.problem
        loss_fn = self._vmapped[False][0] if self.stacked is None else self.stacked
        if p.minimiser is None:
            parts = [self._value_and_grad(x, d, False) for x, d in self._chunks(xs, p.train_data, False)]
            out = {"loss": torch.cat([v for v, _ in parts])}
            last = {"grad_norm": torch.linalg.vector_norm(torch.cat([g for _, g in parts]), dim=1)}
        else:  # the loss alone: no gradient is recorded
            out = {"loss": self._over_chunks(loss_fn, xs, p.train_data, False)}
            last = {"sq_dist": ((xs - p.minimiser) ** 2).sum(1)}
        if p.test_data:
            out["test_loss"] = self._over_chunks(loss_fn, xs, p.test_data, False)
            if p.accuracy is not None:
                out["test_accuracy"] = self._over_chunks(self._accuracy, xs, p.test_data, False)
        return out | last


class _StackOracle(Oracle):
    """The gradient, Hessian-vector products or forward map of a cohort's problem on the step's data, for the whole
    stack at once."""

    provides = PROVIDES

    def __init__(self, evaluator: _Evaluator, data, per_run: bool):
        self.evaluator, self.data, self.per_run = evaluator, data, per_run
        self.blocks = evaluator.problem.blocks

    def grad(self, points: Tensor) -> Tensor:
        return self.evaluator.grad(points, self.data, self.per_run)

    def forward(self, points: Tensor) -> tuple[Tensor, Tensor]:
        return self.evaluator.forward(points, self.data, self.per_run)

    def hvp(self, points: Tensor, vectors: Tensor, *, full: bool = False) -> Tensor:
        problem = self.evaluator.problem
        if not full:
            return self.evaluator.hvp(points, vectors, self.data, self.per_run)
        if problem.hessian is not None:  # a quadratic's constant Hessian (symmetric): one product for the stack
            return vectors @ problem.hessian
        return self.evaluator.hvp(points, vectors, problem.train_data, False)


class OnlineSamples:
    """Training indices for on-line methods: per seed an endless stream of ``per_step`` indices per step, drawn
    uniformly with replacement by the seed's own generator, ``SAMPLE_BLOCK`` steps per call.

    A seed's stream depends on the seed only (not on the other runs of the stack): every seed still in use draws
    its next block when ``k`` enters it, and a seed that leaves never returns (runs only leave a stack).
    """

    def __init__(self, n_train: int, per_step: int, seeds: np.ndarray, block: int = SAMPLE_BLOCK):
        if n_train < 1:
            raise ValueError("an on-line method needs training data to draw samples from")
        self.n_train, self.per_step, self.block = n_train, per_step, block
        self.generators = {int(s): torch.Generator().manual_seed(int(s)) for s in np.unique(seeds)}
        self.block_index, self.seeds, self.table = -1, np.array([], dtype=np.int64), None
        self.rows_of, self.rows = None, None  # the table rows of the last ``seeds`` array asked for

    def indices(self, k: int, seeds: np.ndarray) -> Tensor:
        """``(len(seeds), per_step)`` indices of step ``k`` for runs of the given seeds (steps in increasing order)."""
        if k // self.block != self.block_index:
            self.block_index = k // self.block
            self.seeds = np.unique(seeds)
            self.table = torch.stack([torch.randint(self.n_train, (self.block, self.per_step),
                                                    generator=self.generators[int(s)]) for s in self.seeds])
            self.rows_of = None
        # the same array (the same active runs) as the step before: the same rows, without searching again
        if seeds is not self.rows_of:
            self.rows_of, self.rows = seeds, torch.as_tensor(np.searchsorted(self.seeds, seeds))
        return self.table[self.rows, k % self.block]


class _Cohort:
    """The runs of one problem instance, stacked in one method state and advanced in lockstep in the step index."""

    def __init__(self, requests: list[RunRequest], recorders: list[TrajectoryRecorder], device: torch.device,
                 dtype: torch.dtype, chunk_elements: int, progress: Progress | None):
        self.requests, self.recorders, self.progress = requests, recorders, progress
        self.device, self.dtype = device, dtype
        self.problem = requests[0].problem.to(device, dtype)
        self.batch_size = requests[0].batch_size
        samples = self.problem.n_train if self.batch_size is None else min(self.batch_size, self.problem.n_train)
        width = getattr(self.problem.stacked_loss, "width", None)
        chunk_runs = 0
        if chunk_elements and width:
            chunk_runs = max(1, chunk_elements // max(1, samples * width))
        self.evaluator = _Evaluator(self.problem, chunk_runs)

        self.method: Method = requests[0].method  # every run has the same stack key (cohort_key)
        names = list(requests[0].columns)
        for r in requests:
            if list(r.columns) != names:
                raise ValueError(f"methods {self.method.name!r} and {r.method.name!r} share a stack key but not "
                                 f"their columns ({names} != {list(r.columns)})")
        columns = {name: torch.tensor([r.columns[name] for r in requests], dtype=dtype, device=device).unsqueeze(1)
                   for name in names}
        self.state = self.method.init(torch.stack([r.problem.x0 for r in requests]).to(device, dtype), columns)
        self.n_steps = np.array([r.n_steps for r in requests], dtype=np.int64)
        self.seeds = np.array([r.seed for r in requests], dtype=np.int64)
        self.active = np.arange(len(requests))  # run ids in stack order
        self.active_seeds = self.seeds  # the active runs' seeds, replaced with ``active`` (``_remove``)
        # per active run, the norm past which it has diverged (in float64: the comparison is exact either way)
        self.thresholds = torch.tensor([r.threshold for r in recorders], dtype=torch.float64, device=device)
        self.records = _by_step([np.asarray(r.record_at, dtype=np.int64) for r in requests])
        self.finishes = _by_step([np.array([n]) for n in self.n_steps])
        self.pending: list[tuple[int, np.ndarray, dict[str, Tensor]]] = []
        self.pending_elements = 0
        self.streams = {}
        self.online = (OnlineSamples(self.problem.n_train, self.batch_size or 1, self.seeds)
                       if ONE_SAMPLE in self.method.needs else None)
        if self.batch_size is not None and self.online is None:
            for s in sorted(set(self.seeds.tolist())):
                self.streams[s] = self.problem.minibatch_indices(self.batch_size, torch.Generator().manual_seed(s))

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> None:
        for k in range(int(self.n_steps.max()) + 1):
            if k in self.records:
                self._snapshot(k, self.records[k])
            if k in self.finishes:
                done = np.isin(self.active, self.finishes[k])
                self._remove(done)
                self._report(runs=int(done.sum()))
            if self.active.size == 0:
                break
            self._step(k)
        self._flush()

    def _step(self, k: int) -> None:
        data, per_run = self._data(k)
        self.state = self.method.step(self.state, k, _StackOracle(self.evaluator, data, per_run))
        self._report(steps=self.active.size, iterations=1)
        bad = _diverged(self.method.iterate(self.state), self.thresholds)
        if bool(bad.any()):
            bad_np = bad.cpu().numpy()
            where = np.flatnonzero(bad_np)
            rows = self.method.record(self.method.select(self.state, where))
            for j, i in enumerate(self.active[where]):
                self._diverged_row(int(i), k + 1, {name: v[j] for name, v in rows.items()})
            self._remove(bad_np)
            self._report(runs=len(where), diverged=len(where))

    def _data(self, k: int):
        """The data of step ``k``: shared by all active runs, or per run (mini-batches of several seeds, on-line draws)."""
        train = self.problem.train_data
        if self.online is not None:
            idx = self.online.indices(k, self.active_seeds).to(self.device)
            return tuple(t[idx] for t in train), True
        if not self.streams:
            return train, False
        seeds = sorted(set(self.seeds[self.active].tolist()))
        idx = {s: next(self.streams[s]) for s in seeds}
        if all(v is None for v in idx.values()):
            return train, False
        if len(seeds) == 1:
            i = idx[seeds[0]].to(self.device)
            return tuple(t[i] for t in train), False
        slot = {s: j for j, s in enumerate(seeds)}
        table = torch.stack([idx[s] for s in seeds]).to(self.device)
        rows = torch.as_tensor([slot[s] for s in self.seeds[self.active].tolist()], device=self.device)
        per_run_idx = table[rows]
        return tuple(t[per_run_idx] for t in train), True

    # -- bookkeeping --------------------------------------------------------------------------------------
    def _remove(self, mask: np.ndarray) -> None:
        if not mask.any():
            return
        keep = np.flatnonzero(~mask)
        self.active = self.active[keep]
        self.active_seeds = self.seeds[self.active]
        self.state = self.method.select(self.state, keep)
        self.thresholds = self.thresholds[torch.as_tensor(keep, device=self.device)]

    def _report(self, **counts) -> None:
        if self.progress is not None:
            self.progress.update(**counts)

    # -- recording ----------------------------------------------------------------------------------------
    def _snapshot(self, k: int, ids: np.ndarray) -> None:
        where = np.flatnonzero(np.isin(self.active, ids))
        if where.size == 0:
            return
        chosen = self.method.select(self.state, where)
        values = self.method.record(chosen)
        bad = _diverged(self.method.iterate(chosen), self.thresholds[torch.as_tensor(where, device=self.device)])
        if bool(bad.any()):  # only possible at k = 0 (later divergence is caught after the step)
            bad_np = bad.cpu().numpy()
            for j in np.flatnonzero(bad_np):
                self._diverged_row(int(self.active[where[j]]), k, {name: v[j] for name, v in values.items()})
            remove = np.zeros(self.active.size, dtype=bool)
            remove[where[bad_np]] = True
            good = ~bad_np
            where, values = where[good], {name: v[~bad] for name, v in values.items()}
            run_ids = self.active[where]
            self._remove(remove)
            self._report(runs=int(bad_np.sum()), diverged=int(bad_np.sum()))
        else:
            run_ids = self.active[where]
        if run_ids.size == 0:
            return
        self.pending.append((k, run_ids, values))
        self.pending_elements += sum(v.numel() for v in values.values())
        if self.pending_elements >= PENDING_ELEMENTS:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        steps = np.concatenate([np.full(len(ids), k) for k, ids, _ in self.pending])
        run_ids = np.concatenate([ids for _, ids, _ in self.pending])
        names = list(self.pending[0][2])
        values = {name: torch.cat([v[name] for _, _, v in self.pending]) for name in names}
        self.pending, self.pending_elements = [], 0
        metrics = metric_arrays(self.evaluator.metrics(values["x"]))
        arrays = {name: v.to(torch.float64).cpu().numpy() for name, v in values.items()}
        # each run's rows as one block: a stable sort by run keeps the step order (pending rows are in step order
        # and flushed in time order, so every recorder stays in step order)
        order = np.argsort(run_ids, kind="stable")
        run_ids, steps = run_ids[order], steps[order]
        metrics = {name: a[order] for name, a in metrics.items()}
        arrays = {name: a[order] for name, a in arrays.items()}
        bounds = [0, *(np.flatnonzero(np.diff(run_ids)) + 1).tolist(), len(run_ids)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            self.recorders[int(run_ids[lo])].extend(steps[lo:hi], {name: a[lo:hi] for name, a in metrics.items()},
                                                    {name: a[lo:hi] for name, a in arrays.items()})

    def _diverged_row(self, i: int, k: int, values: dict[str, Tensor]) -> None:
        self._flush()  # earlier rows of this run first
        self.recorders[i].append(k, None, {name: v.cpu().to(torch.float64).numpy().copy()
                                           for name, v in values.items()})


def _diverged(x: Tensor, thresholds: Tensor) -> Tensor:
    """Per row: non-finite or norm above the run's threshold (``recorder.has_diverged``, vectorised)."""
    return ~(torch.linalg.vector_norm(x, dim=1).to(torch.float64) <= thresholds)


def _by_step(schedules: list[np.ndarray]) -> dict[int, np.ndarray]:
    """``{k: run ids recorded (or finishing) at k}`` from one array of steps per run."""
    steps = np.concatenate(schedules) if schedules else np.array([], dtype=np.int64)
    ids = np.concatenate([np.full(len(s), i) for i, s in enumerate(schedules)]) if schedules else steps
    order = np.lexsort((ids, steps))
    steps, ids = steps[order], ids[order]
    bounds = np.flatnonzero(np.diff(steps)) + 1
    return {int(g[0]): i for g, i in zip(np.split(steps, bounds), np.split(ids, bounds)) if len(g)}
