"""The method protocol: a user's own method registered from this module and trained by the engines, the
checks of a method's own hyperparameters, labels, run removal and the capabilities an engine provides.

The toy method is gradient descent with the search-then-converge schedule ``mu_k = h / (1 + k / tau)``
(Darken & Moody), a per-step schedule with a hyperparameter of its own. On a quadratic each Hessian
eigenmode is multiplied by ``1 - mu_k lambda_i`` per step, so its iterates have a closed form.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from momentum_ct.errors import ConfigError
from momentum_ct.optim import (
    FORWARD, HVP, METHODS, Hyperparameter, Method, Oracle, check_hyperparameters, get_method, register_method,
    resolve_method, select_runs, unregister_method,
)
from momentum_ct.sweep import expand_series, validate_config
from momentum_ct.train.shard import write_shard
from momentum_ct.train.stacked import RunRequest, run_many
from momentum_ct.train.functional_runner import run_functional
from momentum_ct.train.recorder import divergence_threshold

from problems_exact import eigen, small_quadratic

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TOL = 1e-12
TOY = "search_then_converge_gd"


class SearchThenConvergeGD(Method):
    """``x_{k+1} = x_k - mu_k grad f(x_k)``, ``mu_k = h / (1 + k / tau)``; records ``x`` and ``m = (x_k - x_{k-1}) / h``."""

    name = TOY
    description = "gradient descent with the search-then-converge schedule h / (1 + k / tau)"
    hyperparameters = (Hyperparameter("tau", "steps of the search phase", lambda v: v > 0.0, "be positive"),)

    def columns(self, h, lam, **hyperparameters):
        check_hyperparameters(h, lam)
        return {"h": h, "tau": self.check(hyperparameters)["tau"]}

    def init(self, x0, columns):
        return {"x": x0, "x_prev": x0.clone(), "h": columns["h"], "tau": columns["tau"]}

    def step(self, state, k, oracle):
        x = state["x"]
        mu = state["h"] / (1.0 + k / state["tau"])
        return {**state, "x": x - mu * oracle.grad(x), "x_prev": x}

    def iterate(self, state):
        return state["x"]

    def record(self, state):
        return {"x": state["x"], "m": (state["x"] - state["x_prev"]) / state["h"]}


class NeedsHessian(SearchThenConvergeGD):
    name = "needs_hessian_for_tests"
    needs = frozenset({"grad", HVP})


class NeedsForward(SearchThenConvergeGD):
    name = "needs_forward_for_tests"
    needs = frozenset({"grad", FORWARD})


@pytest.fixture
def toy():
    method = register_method(SearchThenConvergeGD())
    yield method
    unregister_method(TOY)
    unregister_method(NeedsHessian.name)
    unregister_method(NeedsForward.name)


def closed_form(problem, steps, *, h, tau):
    """``x_k`` of the toy on a quadratic at each ``k`` of ``steps``: each eigenmode times ``prod_j (1 - mu_j lambda_i)``."""
    eig, vec = eigen(problem)
    x_star, x0 = problem.minimiser.numpy(), problem.x0.numpy()
    e0 = vec.T @ (x0 - x_star)
    mu = h / (1.0 + np.arange(max(steps) + 1) / tau)
    factors = np.cumprod(np.vstack([np.ones_like(eig), 1.0 - np.outer(mu, eig)]), axis=0)  # row k: prod_{j<k}
    return np.array([x_star + vec @ (factors[k] * e0) for k in steps])


def rel_err(actual, expected) -> float:
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.abs(actual - expected).max() / max(1.0, np.abs(expected).max()))


def test_registered_toy_method_trains_in_the_stacked_engine(toy):
    problem = small_quadratic()
    h, n_steps = 0.2, 150
    record_at = np.array([0, 1, 2, 5, 17, 60, 149, 150])
    taus = (5.0, 50.0)
    toy_runs = [RunRequest(problem, {"name": TOY, "tau": tau}, h, 0.0, n_steps, record_at) for tau in taus]
    hb = RunRequest(problem, "hb", 0.1, 0.5, n_steps, record_at)
    got = run_many([toy_runs[0], hb, toy_runs[1]], device="cpu")  # two taus stacked; HB in a cohort of its own
    for tau, rec in zip(taus, (got[0], got[2])):
        cols = rec.columns()
        assert list(cols) == ["step", "t", "loss", "sq_dist", "x", "m"] and list(cols["step"]) == list(record_at)
        exact = closed_form(problem, record_at, h=h, tau=tau)
        assert rel_err(np.stack(cols["x"]), exact) <= TOL, f"tau={tau}: x against the closed form"
        before = closed_form(problem, np.maximum(record_at - 1, 0), h=h, tau=tau)
        assert rel_err(np.stack(cols["m"]), (exact - before) / h) <= 1e-10, f"tau={tau}: m against the closed form"
        assert cols["t"][-1] == pytest.approx(n_steps * h)
    assert rel_err(got[0].columns()["x"][-1], got[2].columns()["x"][-1]) > 1e-3, "tau changes the run"
    alone = run_many([hb], device="cpu")[0].columns()
    assert np.array_equal(np.stack(alone["x"]), np.stack(got[1].columns()["x"])), "HB beside the toy is HB alone"
    single = run_functional(problem, method=TOY, hyperparameters={"tau": 5.0}, h=h, lam=0.0, n_steps=n_steps,
                            record_at=record_at).columns()
    assert rel_err(np.stack(single["x"]), np.stack(got[0].columns()["x"])) <= TOL, "functional engine agrees"


def test_diverging_toy_run_leaves_the_stack_where_the_closed_form_outgrows_its_start(toy):
    problem = small_quadratic()  # largest eigenvalue 2: mu = 1.05 multiplies that mode by -1.1 per step
    n_steps = 400
    stable = RunRequest(problem, {"name": TOY, "tau": 1e9}, 0.2, 0.0, n_steps, np.arange(0, n_steps + 1, 50))
    bad = RunRequest(problem, {"name": TOY, "tau": 1e9}, 1.05, 0.0, n_steps, np.arange(0, n_steps + 1, 50))
    got_stable, got_bad = run_many([stable, bad], device="cpu")
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(closed_form(problem, range(n_steps + 1), h=1.05, tau=1e9), axis=1)
    expected = int(np.flatnonzero(~(norms <= divergence_threshold(problem.x0)))[0])
    assert 50 < expected < n_steps and got_bad.diverged_at == expected
    assert got_bad.rows[-1]["step"] == expected and got_bad.rows[-1]["loss"] == np.inf
    assert got_stable.diverged_at is None and len(got_stable.rows) == len(stable.record_at)
    alone = run_many([stable], device="cpu")[0]
    assert np.array_equal(np.stack(alone.columns()["x"]), np.stack(got_stable.columns()["x"]))


def test_toy_method_through_the_config_and_the_shard_file(toy, tmp_path):
    config = dict(experiments=dict(e=dict(
        problem="quadratic", problem_options=dict(dim=3), methods=[{"name": TOY, "tau": 20.0}, "hb"], lam=[0.5],
        h=[0.1, 0.05, 0.025], horizon=1.0, n_records=5, engine="stacked", claims=["K1"])))
    specs = expand_series(config)
    assert [s.method for s in specs] == [f"{TOY}(tau=20.0)", "hb"]
    write_shard(specs, tmp_path / "t.parquet", tmp_path / "m.json", log=lambda line: None)
    table = pq.read_table(tmp_path / "t.parquet").to_pandas()
    assert set(table["method"]) == {f"{TOY}(tau=20.0)", "hb"}
    meta = json.loads((tmp_path / "m.json").read_text())["series"]
    assert meta[0]["runs"][0]["columns"] == {"h": 0.1, "tau": 20.0} and "step_size" not in meta[0]["runs"][0]
    assert meta[1]["runs"][0]["step_size"] == 0.1 and meta[1]["runs"][0]["lookahead"] == 0.0
    with pytest.raises(ConfigError, match=r"experiments\.e\.methods: method 'search_then_converge_gd': "
                                          r"hyperparameter tau must be positive, got -1\.0; valid hyperparameters: tau"):
        validate_config(dict(experiments=dict(e=dict(config["experiments"]["e"],
                                                     methods=[{"name": TOY, "tau": -1}]))))


@pytest.mark.parametrize("entry,message", [
    ({"name": TOY}, r"method 'search_then_converge_gd' needs hyperparameter\(s\) tau; valid hyperparameters: tau"),
    ({"name": TOY, "tua": 3.0}, r"method 'search_then_converge_gd' has no hyperparameter\(s\) tua; "
                                r"valid hyperparameters: tau"),
    ({"name": TOY, "tau": 0.0}, r"hyperparameter tau must be positive, got 0\.0; valid hyperparameters: tau"),
    ({"name": TOY, "tau": "5"}, r"hyperparameter tau must be a number, got '5'; valid hyperparameters: tau"),
    ({"name": TOY, "tau": 5.0, "lam": 0.5}, r"has no hyperparameter\(s\) lam; valid hyperparameters: tau "
                                            r"\(h and lam are the experiment's own keys\)"),
    (f"{TOY}(tau=five)", r"'tau=five' is not of the form name=number"),
    ({"name": "hb", "a": 0.3}, r"method 'hb' has no hyperparameter\(s\) a; valid hyperparameters: none"),
    ({"name": "heavy_ball_family", "a": 1.0}, r"hyperparameter a must lie in \[0, 1\), got 1\.0; "
                                              r"valid hyperparameters: a"),
    ({"a": 0.3}, r"has no 'name'"),
])
def test_hyperparameter_errors_name_the_key_and_the_valid_ones(toy, entry, message):
    with pytest.raises(ConfigError, match=message):
        resolve_method(entry)
    if isinstance(entry, dict) and "name" in entry:  # the engines check at the request already
        with pytest.raises(ConfigError, match=message):
            RunRequest(small_quadratic(), entry, 0.1, 0.5, 10, np.array([0]))


def test_registry_lists_plug_ins_and_refuses_clashes(toy):
    with pytest.raises(ConfigError, match=rf"unknown method 'adam'; valid methods: .*, nag, search_then_converge, {TOY}$"):
        get_method("adam")
    assert get_method(f"{TOY}(tau=3.0)") is toy and METHODS[TOY] is toy
    with pytest.raises(ConfigError, match=f"method '{TOY}' is already registered"):
        register_method(SearchThenConvergeGD())
    assert register_method(toy) is toy  # registering the same object again is harmless

    class Badly(SearchThenConvergeGD):
        name = "not-an-identifier"

    with pytest.raises(ConfigError, match="must be an identifier"):
        register_method(Badly())


def test_labels_round_trip():
    for value in (0.3, 1e-05, 0.0, 0.1 + 0.2):
        spec = resolve_method({"name": "heavy_ball_family", "a": value})
        again = resolve_method(spec.label)
        assert again == spec and again.hyperparameters["a"] == value, spec.label
    assert resolve_method("hb").label == "hb"
    with pytest.raises(ConfigError, match=r"hyperparameter\(s\) a given twice"):
        resolve_method("heavy_ball_family(a=0.3)", {"a": 0.4})


def test_engines_refuse_a_method_whose_needs_they_do_not_provide(toy):
    # the stacked engine serves gradients, Hessian-vector products, one-sample draws and forward evaluations (of
    # problems with a forward map); the functional engine gradients only
    register_method(NeedsHessian())
    register_method(NeedsForward())
    problem = small_quadratic()
    message = r"method 'needs_{what}_for_tests' needs {need} of the problem, which engine '{engine}' does not"
    with pytest.raises(ConfigError, match=r"method 'needs_forward_for_tests' needs the model outputs of the problem, "
                                          r"and problem 'quadratic' has no forward map"):
        run_many([RunRequest(problem, {"name": NeedsForward.name, "tau": 1.0}, 0.1, 0.0, 5, np.array([0]))],
                 device="cpu")
    with pytest.raises(ConfigError, match=message.format(what="hessian", need="hvp", engine="functional")):
        run_functional(problem, method=NeedsHessian.name, hyperparameters={"tau": 1.0}, h=0.1, lam=0.0, n_steps=5,
                       record_at=[0])
    config = dict(experiments=dict(e=dict(problem="quadratic", methods=[{"name": NeedsHessian.name, "tau": 1.0}],
                                          lam=[0.0], h=[0.1], horizon=1.0, engine="functional")))
    with pytest.raises(ConfigError, match=r"experiments\.e\.methods: " +
                       message.format(what="hessian", need="hvp", engine="functional")):
        validate_config(config)
    with pytest.raises(NotImplementedError, match="provides no 'hvp'"):
        Oracle().hvp(torch.zeros(1, 2), torch.zeros(1, 2))


def test_select_runs_keeps_the_given_rows_of_every_leaf():
    state = {"x": torch.arange(12.0).reshape(4, 3), "c": torch.tensor([[1.0], [2.0], [3.0], [4.0]]),
             "flag": np.array([True, False, True, False])}
    kept = select_runs(state, np.array([3, 0]))
    assert torch.equal(kept["x"], torch.tensor([[9.0, 10.0, 11.0], [0.0, 1.0, 2.0]]))
    assert torch.equal(kept["c"], torch.tensor([[4.0], [1.0]]))
    assert kept["flag"].tolist() == [False, True]
    assert state["x"].shape == (4, 3), "the state itself is untouched"


def test_divergence_is_decided_relative_to_the_start():
    """A run is diverged once its norm grows past a fixed factor of its start's, long before float64 overflows:
    a norm of 1e92 is never recorded as a converged run."""
    from momentum_ct.train.recorder import DIVERGENCE_FACTOR, has_diverged

    x0 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    threshold = divergence_threshold(x0)
    assert threshold == pytest.approx(5.0 * DIVERGENCE_FACTOR)
    assert divergence_threshold(torch.zeros(3, dtype=torch.float64)) == DIVERGENCE_FACTOR  # start at the origin
    assert not has_diverged(x0 * 0.99 * DIVERGENCE_FACTOR, threshold)
    assert has_diverged(x0 * 1.01 * DIVERGENCE_FACTOR, threshold)
    assert has_diverged(torch.tensor([4.6e92, 0.0], dtype=torch.float64), threshold)
    assert has_diverged(torch.tensor([float("nan"), 0.0], dtype=torch.float64), threshold)
