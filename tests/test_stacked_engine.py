"""The stacked sweep engine against the single-run engines: same rows, same files, same divergence."""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from momentum_ct.errors import ConfigError
from momentum_ct.problems import make_problem
from momentum_ct.sweep import expand_series
from momentum_ct.train.shard import write_shard
from momentum_ct.train.stacked import RunRequest, lockstep_iterations, run_many
from momentum_ct.train.functional_runner import run_functional
from momentum_ct.train.progress import Progress
from momentum_ct.train.schedule import n_steps_for, record_steps
from momentum_ct.train.series import SeriesSpec

TOL = 1e-12

# (problem, options, method, lam, seed, h, horizon, batch_size): a handful of runs over three problems, the
# three methods and a family member with its own look-ahead, two seeds, several h (so different lengths and
# recording steps) and one diverging run.
RUNS = [
    ("quadratic", dict(dim=5), "hb", 0.5, 0, 0.05, 2.0, None),
    ("quadratic", dict(dim=5), "nag", 0.9, 0, 0.01, 0.6, None),
    ("quadratic", dict(dim=5), "gd_rescaled", 0.5, 1, 0.1, 2.0, None),
    ("toy2d", {}, "hb", 0.5, 0, 0.02, 1.0, None),
    ("toy2d", {}, "nag", 0.9, 1, 0.004, 0.4, None),
    ("toy2d", {}, "gd_rescaled", 0.9, 0, 0.01, 0.5, None),
    ("toy2d", {}, "heavy_ball_family(a=0.3)", 0.9, 0, 0.01, 0.5, None),
    ("toy2d", {}, "hb", 0.5, 2, 2.0, 200.0, None),  # diverges after a few steps
    ("digits_mlp", dict(hidden=[8], n_train=120), "hb", 0.5, 0, 0.1, 2.0, None),
    ("digits_mlp", dict(hidden=[8], n_train=120), "nag", 0.9, 1, 0.02, 0.4, None),
    ("digits_mlp", dict(hidden=[8], n_train=120), "gd_rescaled", 0.9, 0, 0.05, 0.5, None),
]


def _request(problem, options, method, lam, seed, h, horizon, batch_size, n_records=10, dense=4):
    n_steps = n_steps_for(horizon, h)
    return RunRequest(make_problem(problem, seed=seed, **options), method, h, lam, n_steps,
                      record_steps(n_steps, n_records, dense), batch_size, seed)


def _single(engine, r: RunRequest):
    return engine(r.problem, method=r.method, hyperparameters=r.hyperparameters, h=r.h, lam=r.lam,
                  n_steps=r.n_steps, record_at=r.record_at, batch_size=r.batch_size, seed=r.seed)


def assert_same_rows(ref, got, what: str, tol: float = TOL) -> None:
    """Same columns in the same order, same steps, same divergence, values equal to ``tol`` (relative above 1)."""
    assert ref.diverged_at == got.diverged_at, f"{what}: diverged at {got.diverged_at}, expected {ref.diverged_at}"
    a, b = ref.columns(), got.columns()
    assert list(a) == list(b), f"{what}: columns {list(b)} != {list(a)}"
    assert list(a["step"]) == list(b["step"]), f"{what}: recorded steps differ"
    for key in a:
        x = np.stack(a[key]) if key in ("x", "m") else np.asarray(a[key], dtype=float)
        y = np.stack(b[key]) if key in ("x", "m") else np.asarray(b[key], dtype=float)
        finite = np.isfinite(x)
        assert np.array_equal(finite, np.isfinite(y)), f"{what}: {key} finite in one engine only"
        if key in ("x", "m") and ref.diverged_at is not None:
            finite[-1] = False  # the diverged iterate itself: overflowed values carry no digits to compare
        err = np.abs(x[finite] - y[finite]) / np.maximum(1.0, np.abs(x[finite]))
        assert err.size == 0 or err.max() <= tol, f"{what}: {key} differs by {err.max():.3g} > {tol}"


@pytest.fixture
def restore_torch_determinism():
    """Lightning's ``deterministic=True`` switches torch's global flag on; put it back afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.usefixtures("restore_torch_determinism", "single_torch_thread")
def test_stacked_matches_lightning_reference():
    from momentum_ct.train.lightning_system import run_lightning

    requests = [_request(*r) for r in RUNS]
    got = run_many(requests, device="cpu")  # all at once: three problems, several cohorts, mixed lengths
    for spec, r, g in zip(RUNS, requests, got):
        assert_same_rows(_single(run_lightning, r), g, f"{spec[0]} {spec[2]} lam={spec[3]} seed={spec[4]} h={spec[5]}")
    diverged = [g.diverged_at for g in got]
    bad = next(i for i, r in enumerate(RUNS) if r[5] == 2.0)
    assert diverged[bad] is not None and all(d is None for i, d in enumerate(diverged) if i != bad)


@pytest.mark.usefixtures("single_torch_thread")
@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)], ids=["one_seed", "three_seeds"])
def test_minibatch_runs_draw_the_single_run_minibatch_sequence(seeds):
    """One seed: every run shares each step's mini-batch; several seeds: per-run mini-batches (one stream per seed)."""
    options = dict(hidden=[8], n_train=150)
    runs = [("digits_mlp", options, m, 0.9, s, h, 0.5, 32) for s in seeds for m in ("hb", "nag") for h in (0.02, 0.01)]
    requests = [_request(*r) for r in runs]
    for r, g in zip(requests, run_many(requests, device="cpu")):
        assert_same_rows(_single(run_functional, r), g, f"seed={r.seed} {r.method.name} h={r.h}")


@pytest.mark.usefixtures("single_torch_thread")
def test_problems_whose_loss_depends_on_the_seed_get_one_instance_per_seed():
    """Regression: the seed draws the data, so each seed is its own cohort (vmap path, per-seed mini-batch streams)."""
    runs = [("regression", dict(n_samples=64, dim=4), m, 0.5, s, 0.05, 1.0, bs)
            for s in (0, 1) for m in ("hb", "nag") for bs in (None, 16)]
    requests = [_request(*r) for r in runs]
    for r, g in zip(requests, run_many(requests, device="cpu")):
        assert_same_rows(_single(run_functional, r), g,
                         f"regression seed={r.seed} {r.method.name} batch_size={r.batch_size}")


@pytest.mark.usefixtures("single_torch_thread")
def test_diverging_run_is_recorded_where_it_diverged_and_poisons_nothing():
    ok = [_request("quadratic", dict(dim=5), "hb", 0.5, 0, 0.05, 2.0, None),
          _request("quadratic", dict(dim=5), "nag", 0.9, 0, 0.01, 0.5, None)]
    bad = _request("quadratic", dict(dim=5), "hb", 0.5, 0, 8.0, 8000.0, None)  # h L = 8 > 2 (1 + lam): unstable
    alone = run_many(ok, device="cpu")
    mixed = run_many([ok[0], bad, ok[1]], device="cpu")
    ref_bad = _single(run_functional, bad)
    assert ref_bad.diverged_at is not None and ref_bad.diverged_at < bad.n_steps
    assert_same_rows(ref_bad, mixed[1], "diverging run")
    last = mixed[1].rows[-1]
    assert last["step"] == ref_bad.diverged_at and last["loss"] == np.inf and last["sq_dist"] == np.inf
    for a, b in zip(alone, (mixed[0], mixed[2])):
        assert_same_rows(a, b, "stable run beside a diverging one")
        assert all(np.isfinite(r["loss"]) for r in b.rows)


@pytest.mark.usefixtures("single_torch_thread")
def test_shard_file_schema_equals_single_run_engine_and_rerun_is_byte_identical(tmp_path):
    config = dict(experiments=dict(e=dict(
        problem="toy2d", methods=["hb", "nag", "gd_rescaled"], lam=[0.5, 0.9], seeds=[0, 1],
        h=dict(start=0.05, halvings=2, scale_with_momentum=True), horizon=1.0, n_records=20, dense_steps=5,
        engine="stacked", claims=["K1"])))
    specs = expand_series(config)
    paths = {}
    for name, engine in (("a", "stacked"), ("b", "stacked"), ("ref", "functional")):
        chosen = [SeriesSpec.from_dict(s.as_dict() | dict(engine=engine)) for s in specs]
        paths[name] = (tmp_path / f"{name}.parquet", tmp_path / f"{name}.json")
        write_shard(chosen, *paths[name], log=lambda line: None)
    for i in (0, 1):
        assert paths["a"][i].read_bytes() == paths["b"][i].read_bytes(), "stacked rerun differs"
    ref, got = pq.read_table(paths["ref"][0]), pq.read_table(paths["a"][0])
    assert ref.schema == got.schema
    for column in ref.column_names:
        x, y = ref.column(column).to_pylist(), got.column(column).to_pylist()
        if isinstance(x[0], list):  # vectors: the same records keep them (m in the dense head only), equal values
            assert [len(v) for v in x] == [len(v) for v in y], column
            np.testing.assert_allclose(np.concatenate(y), np.concatenate(x), rtol=TOL, atol=TOL)
        elif isinstance(x[0], float):
            np.testing.assert_allclose(np.asarray(y, dtype=float), np.asarray(x, dtype=float), rtol=TOL, atol=TOL)
        else:
            assert x == y, column
    meta_ref, meta = (json.loads(paths[n][1].read_text()) for n in ("ref", "a"))
    for s_ref, s in zip(meta_ref["series"], meta["series"]):
        assert s["runs"] == s_ref["runs"] and s["dtype"] == "float64" and s["device"] == "cpu"
        assert s["spec"] | dict(engine="functional") == s_ref["spec"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_display_counts_runs_and_steps():
    lines, terminal = [], _Terminal()
    requests = [_request("toy2d", {}, m, 0.5, 0, h, 1.0, None) for m in ("hb", "nag") for h in (0.05, 0.02)]
    meter = Progress(len(requests), sum(r.n_steps for r in requests), log=lines.append, stream=terminal,
                     label="smoke", log_every=0.0, live_every=0.0)
    run_many(requests, device="cpu", progress=meter)
    meter.close()
    total = sum(r.n_steps for r in requests)
    assert lines[-1].startswith(f"smoke: 4/4 runs done, {total}/{total} steps (100%)") and "steps/s" in lines[-1]
    assert terminal.getvalue().count("\r") > 1 and terminal.getvalue().endswith("\n")
    quiet = Progress(1, 1, log=None, stream=io.StringIO())  # not a terminal: no live line
    quiet.update(steps=1, runs=1)
    quiet.close()


@pytest.mark.usefixtures("single_torch_thread")
def test_float32_runs_and_says_so():
    runs = [_request("digits_mlp", dict(hidden=[8], n_train=100), "hb", 0.5, 0, 0.1, 1.0, None),
            _request("quadratic", dict(dim=5), "nag", 0.5, 1, 0.05, 1.0, None)]
    got = run_many(runs, device="cpu", dtype="float32")
    for ref, g in zip(run_many(runs, device="cpu"), got):
        assert g.rows[-1]["x"].dtype == np.float64  # written as float64 whatever the dtype of the run
        assert_same_rows(ref, g, "float32 against float64", tol=1e-4)
    spec = SeriesSpec("e", "toy2d", "hb", 0.5, 0, (0.01,), 0.1, engine="stacked", dtype="float32")
    from momentum_ct.train.series import run_series_stacked

    ((_, meta),) = run_series_stacked([spec], log=lambda line: None)
    assert meta["dtype"] == "float32"


def test_config_refuses_float32_for_orders_and_cuda_for_single_run_engines():
    base = dict(problem="toy2d", methods=["hb"], lam=[0.5], h=[0.04, 0.02, 0.01], horizon=1.0, claims=["K1"])
    with pytest.raises(ConfigError, match="float64"):
        expand_series(dict(experiments=dict(e=base | dict(dtype="float32", engine="stacked"))))
    with pytest.raises(ConfigError, match="only the stacked engine runs on cuda"):
        expand_series(dict(experiments=dict(e=base | dict(engine="lightning", device="cuda"))))
    network = base | dict(problem="digits_mlp", problem_options=dict(hidden=[8], n_train=100),
                          methods=["hb", "gd_rescaled"], claims=["K4"], dtype="float32", engine="stacked")
    specs = expand_series(dict(experiments=dict(e=network)))
    assert {(s.dtype, s.device) for s in specs} == {("float32", "auto")}


def test_progress_estimate_follows_the_longest_remaining_run():
    """In lockstep the time left is set by the longest run: with one long run and many short ones, most steps
    are done early while most iterations are still ahead, and the estimate must say so."""
    now = [0.0]
    meter = Progress(11, 10 * 100 + 1000, total_iterations=1000, log=None, stream=io.StringIO(), clock=lambda: now[0])
    for _ in range(100):  # 100 iterations of 11 runs, 1 s each
        now[0] += 1.0
        meter.update(steps=11, iterations=1)
    meter.update(runs=10)
    assert meter.steps / meter.total_steps > 0.5  # more than half of the steps are done ...
    assert "at most 15m00s left (longest remaining run)" in meter.line()  # ... but 900 of 1000 iterations are not
    requests = [_request("toy2d", {}, "hb", 0.5, 0, h, 1.0, None) for h in (0.05, 0.01)]
    assert lockstep_iterations(requests) == max(r.n_steps for r in requests)


def test_progress_estimate_times_each_stack_at_its_own_cost():
    """Stacks run one after another and may differ twentyfold in their cost per iteration (an ensemble of 2000
    members after one of 500): the estimate times the stack under way at its own rate and counts the rest."""
    now = [0.0]
    meter = Progress(2, 200, total_iterations=200, log=None, stream=io.StringIO(), clock=lambda: now[0])
    for cost in (1.0, 20.0):
        meter.start_stack(100)
        for _ in range(50 if cost > 1 else 100):
            now[0] += cost
            meter.update(steps=1, iterations=1)
        if cost == 1.0:
            meter.update(runs=1)
    # 50 iterations of the second stack left at 20 s each; the mean over all so far (1100 s / 150) says 6 min
    assert "at most 16m40s left (longest remaining run)" in meter.line() and "later stacks" not in meter.line()
    meter = Progress(2, 200, total_iterations=200, log=None, stream=io.StringIO(), clock=lambda: now[0])
    meter.start_stack(100)
    now[0] += 10.0
    meter.update(steps=10, iterations=10)
    assert "this stack at most 1m30s left (longest remaining run), then 100 iterations of later stacks" in meter.line()


def test_auto_device_keeps_small_problems_on_the_cpu(monkeypatch):
    """With a GPU present, ``auto`` sends a network to it but keeps a 2-D toy on the CPU, where lockstep
    iterations of a few flops per run are many times faster than kernel launches."""
    from momentum_ct.problems import make_problem
    from momentum_ct.train.stacked import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", make_problem("toy2d")).type == "cpu"
    assert resolve_device("auto", make_problem("quadratic", dim=10)).type == "cpu"
    assert resolve_device("auto", make_problem("digits_mlp", hidden=[32])).type == "cuda"
    assert resolve_device("cpu", make_problem("digits_mlp", hidden=[32])).type == "cpu"


def test_experiments_whose_claims_read_no_path_keep_vectors_at_five_records_and_measure_the_same():
    """K4 reads losses, accuracies and the iterates at five records of its reference run (its curvature): its
    runs keep their vectors there only, and every K4 row and point equals the one measured from full vectors."""
    import dataclasses

    import pandas as pd

    from momentum_ct.claims import measures
    from momentum_ct.train.shard import run_shard
    from momentum_ct.train.series import SPARSE_VECTOR_RECORDS

    experiment = dict(problem="digits_mlp", problem_options=dict(hidden=[4], n_train=100), claims=["K4"],
                      methods=["hb", "gd_rescaled"], lam=[0.5], h=[0.02, 0.04, 0.08], horizon=1.0, n_records=20,
                      engine="stacked", device="cpu")
    specs = expand_series(dict(experiments=dict(e=experiment)))
    assert {s.vector_records for s in specs} == {SPARSE_VECTOR_RECORDS}
    with_k1 = expand_series(dict(experiments=dict(e=experiment | dict(claims=["K4", "K1"], h={"start": 0.04,
                                                                                             "halvings": 2}))))
    assert {s.vector_records for s in with_k1} == {None}  # K1 reads the whole path
    # and no claim reads velocities beyond the dense head (here none): m is kept there only
    assert {s.velocity_steps for s in with_k1} == {0} and {s.velocity_steps for s in specs} == {None}
    results = {}
    for name, batch in (("sparse", specs), ("full", [dataclasses.replace(s, vector_records=None) for s in specs])):
        columns, meta = run_shard(batch, log=lambda _: None)
        traj = pd.DataFrame(columns)
        results[name] = measures.measure("K4", [dict(traj=traj, meta=meta)], {"confidence": 0.95})
        kept = traj.assign(kept=traj["x"].map(len) > 0).groupby(["method", "h"])
        if name == "sparse":
            assert meta["series"][0]["x_kind"] == "sparse"
            assert (kept["kept"].sum() == SPARSE_VECTOR_RECORDS).all()
            assert kept.apply(lambda g: bool(g["kept"].iloc[0] and g["kept"].iloc[-1])).all()
            assert (traj["m"].map(len) > 0).sum() == (traj["x"].map(len) > 0).sum()
        else:
            assert kept["kept"].all().all()
    for sparse, full in zip(results["sparse"], results["full"]):
        assert not sparse.empty
        pd.testing.assert_frame_equal(sparse, full, check_exact=True)


@pytest.mark.usefixtures("single_torch_thread")
def test_network_vectors_set_apart_give_the_same_predictions_and_measures(tmp_path):
    """Above ``VECTOR_MAX_DIM`` dimensions, with claims whose measures read only their predictions' distances, the
    path vectors go to the vectors file and the trajectory keeps empty ones; the prediction stage, given that file,
    writes the same predictions as from a trajectory that kept them, and the measure is the same. A claim whose
    measure reads vectors (E3), a plane (toy2d) and K4's sparse records keep them in the trajectory."""
    import dataclasses

    import pandas as pd

    from momentum_ct import stages
    from momentum_ct.io import read_json, read_table, read_trajectory
    from momentum_ct.sweep import vectors_apart

    wide = dict(problem="quadratic", problem_options=dict(dim=20), claims=["K1", "K2"], methods=["hb"], lam=[0.5],
                h=dict(start=0.1, halvings=2, scale_with_momentum=True), horizon=1.0, n_records=10, dense_steps=3,
                engine="stacked")
    assert vectors_apart(wide)
    assert not vectors_apart(wide | dict(problem_options=dict(dim=16)))  # a prediction keeps such vectors itself
    assert not vectors_apart(wide | dict(problem="toy2d", problem_options={}))
    assert not vectors_apart(dict(problem="digits_mlp", claims=["K4"]))  # sparse: five records, kept
    assert not vectors_apart(dict(problem="digits_mlp", claims=["E3", "K1"]))  # E3's measure reads them
    specs = expand_series(dict(experiments=dict(e=wide)))
    assert all(s.vectors_apart for s in specs)
    files = {}
    for name, chosen in (("apart", specs), ("kept", [dataclasses.replace(s, vectors_apart=False) for s in specs])):
        paths = [tmp_path / f"{name}_{f}" for f in ("t.parquet", "m.json", "v.parquet")]
        write_shard(chosen, *paths[:2], log=lambda _: None, vectors=paths[2])
        files[name] = paths
    traj_apart, traj_kept = (read_trajectory(files[n][0]) for n in ("apart", "kept"))
    assert (traj_apart["x"].map(len) == 0).all() and (traj_kept["x"].map(len) == 20).all()
    assert read_table(files["kept"][2]).empty
    assert read_json(files["apart"][1])["series"][0]["x_kind"] == "apart"
    for claim in ("K1", "K2"):
        out = {}
        for name, vectors in (("apart", files["apart"][2]), ("kept", None)):
            pred, info = tmp_path / f"{claim}_{name}.parquet", tmp_path / f"{claim}_{name}.json"
            stages.predict(claim, files[name][0], files[name][1], pred, info, {}, vectors)
            out[name] = (pred.read_bytes(), info.read_bytes())
            fits, points = tmp_path / f"{claim}_{name}_fits.csv", tmp_path / f"{claim}_{name}_points.csv"
            stages.measure(claim, [files[name][0]], [files[name][1]], [pred], [info], fits, points, {})
            out[name] += (fits.read_bytes(), points.read_bytes())
        assert out["apart"] == out["kept"], claim
    # a vectors file that does not belong to the trajectory is refused by name
    stray = tmp_path / "stray.parquet"
    pd.DataFrame({"x": [np.zeros(20)] * 3}).to_parquet(stray)
    with pytest.raises(Exception, match="stray.parquet has 3 rows"):
        stages.predict("K1", files["apart"][0], files["apart"][1], tmp_path / "p.parquet", tmp_path / "p.json", {},
                       stray)


@pytest.mark.usefixtures("single_torch_thread")
def test_compiled_loops_record_what_lockstep_records_bit_for_bit():
    """Heavy-ball runs on toy2d (``Problem.point_grad``) in compiled loops (``train.compiled``) against the lockstep
    engine: the same rows, values equal bit for bit, the same divergence (after some steps, and at a start that is
    not finite), record steps given out of order, repeated and past the run's end, and the same progress counts."""
    from momentum_ct.train import compiled

    requests = [_request(*run) for run in RUNS if run[0] == "toy2d"]
    odd = make_problem("toy2d", seed=3)
    requests.append(RunRequest(odd, "nag", 0.01, 0.9, 60, np.array([59, 3, 3, 0, 200, 60, 17]), None, 3))
    requests.append(RunRequest(odd, "hb", 0.01, 0.9, 40, np.array([5, 10]), None, 3))  # no record at 0
    nan_start = make_problem("toy2d", seed=4, start=(float("nan"), 1.0))
    requests += [RunRequest(nan_start, "hb", 0.01, 0.5, 20, np.array([0, 10, 20]), None, 4),
                 RunRequest(nan_start, "nag", 0.01, 0.5, 20, np.array([10, 20]), None, 4)]
    assert all(compiled.eligible(r.method, r.problem, torch.device("cpu"), torch.float64) for r in requests)
    meters = {}
    results = {}
    for name, flag in (("compiled", True), ("lockstep", False)):
        meters[name] = Progress(len(requests), sum(r.n_steps for r in requests), log=None, stream=io.StringIO(),
                                total_iterations=lockstep_iterations(requests))
        results[name] = run_many(requests, device="cpu", progress=meters[name], compiled=flag)
    diverged = [r.diverged_at for r in results["lockstep"]]
    assert diverged[-2:] == [0, 1] and sum(d is not None for d in diverged) == 3
    for i, (a, b) in enumerate(zip(results["lockstep"], results["compiled"])):
        assert a.diverged_at == b.diverged_at, i
        ca, cb = a.columns(), b.columns()
        assert list(ca) == list(cb) and list(ca["step"]) == list(cb["step"]), i
        for key in ca:
            x = np.stack(ca[key]) if key in ("x", "m") else np.asarray(ca[key], dtype=float)
            y = np.stack(cb[key]) if key in ("x", "m") else np.asarray(cb[key], dtype=float)
            np.testing.assert_array_equal(x, y, err_msg=f"run {i}: {key}")
    for field in ("runs", "steps", "diverged", "iterations"):
        assert getattr(meters["compiled"], field) == getattr(meters["lockstep"], field), field


def test_point_gradient_is_the_gradient_bit_for_bit():
    """toy2d's compiled point gradient performs ``grad``'s operations in ``grad``'s order."""
    import numba

    problem = make_problem("toy2d")
    points = np.random.default_rng(0).normal(scale=3.0, size=(200, 2))
    expected = problem.grad(torch.as_tensor(points), ()).numpy()
    point_grad = numba.njit(problem.point_grad)
    out = np.empty(2)
    for x, g in zip(points, expected):
        point_grad(x, out)
        np.testing.assert_array_equal(out, g)


@pytest.mark.usefixtures("single_torch_thread")
def test_compiled_loops_record_in_bounded_stacks_and_leave_what_numba_cannot_compile_to_lockstep(monkeypatch):
    """Records evaluated in several small stacks give the same rows; a point gradient numba cannot compile leaves the
    cohort to the lockstep engine with a warning, and the rows are the lockstep engine's."""
    import dataclasses
    import warnings

    from momentum_ct.train import compiled

    requests = [_request(*run) for run in RUNS if run[0] == "toy2d"]
    reference = run_many(requests, device="cpu", compiled=False)
    monkeypatch.setattr(compiled, "RECORD_ELEMENTS", 10)
    for ref, got in zip(reference, run_many(requests, device="cpu")):
        np.testing.assert_array_equal(ref.columns()["step"], got.columns()["step"])
        np.testing.assert_array_equal(np.stack(ref.columns()["x"]), np.stack(got.columns()["x"]))
        np.testing.assert_array_equal(ref.columns()["loss"], got.columns()["loss"])

    def not_numba(x, out):
        out[:] = np.asarray(torch.zeros(2))  # torch inside: numba cannot type it

    odd = [dataclasses.replace(r, problem=dataclasses.replace(r.problem, point_grad=not_numba)) for r in requests[:2]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run_many(odd, device="cpu")
    assert any("point_grad could not be compiled" in str(w.message) for w in caught)
    for ref, run in zip(reference[:2], got):
        assert_same_rows(ref, run, "lockstep fallback", tol=0.0)


def test_recorder_blocks_give_the_rows_one_by_one_would():
    """Rows added as blocks (the stacked engine) and one at a time give the same table, dtypes included: the first
    row's metrics are the columns, a metric a later row lacks is NaN, a diverged row's loss is infinite."""
    from momentum_ct.io import concat_columns
    from momentum_ct.train.recorder import TrajectoryRecorder

    problem = make_problem("quadratic", dim=3)
    gen = np.random.default_rng(0)
    steps, xs = np.array([0, 2, 5, 9]), gen.normal(size=(4, 3))
    metrics = {"loss": gen.normal(size=4), "test_loss": gen.normal(size=4), "sq_dist": gen.normal(size=4)}
    one, blocks = TrajectoryRecorder(problem, 0.3), TrajectoryRecorder(problem, 0.3)
    for j, k in enumerate(steps.tolist()):
        one.append(k, {n: float(v[j]) for n, v in metrics.items()}, {"x": xs[j]})
    one.append(11, None, {"x": xs[0] * 1e9})
    blocks.extend(steps[:1], {n: v[:1] for n, v in metrics.items()}, {"x": xs[:1]})
    blocks.extend(steps[1:], {n: v[1:] for n, v in metrics.items() if n != "test_loss"}, {"x": xs[1:]})
    blocks.append(11, None, {"x": xs[0] * 1e9})
    a, b = one.columns(), blocks.columns()
    assert list(a) == list(b) == ["step", "t", "loss", "test_loss", "sq_dist", "x"]
    for name in ("step", "t", "loss", "sq_dist"):
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
    assert np.array_equal(b["test_loss"], [metrics["test_loss"][0], np.nan, np.nan, np.nan, np.nan], equal_nan=True)
    assert np.array_equal(np.stack(a["x"]), np.stack(b["x"])) and blocks.diverged_at == one.diverged_at == 11
    assert b["t"][2] == 5 * 0.3 and one.rows[-1]["loss"] == np.inf
    # the table of several parts: arrays stay arrays with the dtype a list of their values would get
    parts = [a, {"step": np.array([1, 2]), "name": ["u", "v"]}]
    joined = concat_columns(parts)
    listed = {k: np.asarray([v for p in parts for v in (list(p[k]) if k in p else [np.nan] * len(p["step"]))])
              for k in ("step", "loss")}
    for k, v in listed.items():
        assert joined[k].dtype == v.dtype and np.array_equal(joined[k], v, equal_nan=True), k
    assert joined["name"] == [np.nan] * 5 + ["u", "v"]
