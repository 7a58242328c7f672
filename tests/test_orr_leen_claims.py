"""Claims O1-O3 measured on small Monte Carlo sweeps trained by the stacked engine (as the pipeline's train and
measure stages do, without files), and the pieces they are built from."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from momentum_ct.claims import measures
from momentum_ct.claims.annealing import squared_errors
from momentum_ct.claims.judge import judge
from momentum_ct.claims.o2 import parabola_vertex
from momentum_ct.io import SchemaError
from momentum_ct.optim.batch_cg import batch_cg
from momentum_ct.problems import make_problem
from momentum_ct.sweep import expand_series
from momentum_ct.train.shard import run_shard

pytestmark = pytest.mark.usefixtures("single_torch_thread")

LMS = {"eigenvalues": [2.0, 1.0, 0.5], "noise_variance": 1.0, "start_distance": 0.1}  # a small start: short transients


def measured(claim_id: str, **experiment) -> pd.DataFrame:
    """The judged rows of a claim on one experiment (``experiment``: its config keys)."""
    config = dict(experiments=dict(e=dict(claims=[claim_id], problem="lms", problem_options=LMS, n_records=20,
                                          dense_steps=5, engine="stacked", device="cpu") | experiment))
    columns, meta = run_shard(expand_series(config), log=lambda _: None)
    rows, points = measures.measure(claim_id, [dict(traj=pd.DataFrame(columns), meta=meta)], {"confidence": 0.95})
    assert not points.empty
    return judge(rows)


def test_o1_momentum_matches_plain_sgd_at_the_effective_rate():
    rows = measured("O1", methods=[{"name": "annealed_sgd", "t0": 40}], lam=[0.0, 0.5], h=[2.0, 1.0],
                    seeds={"count": 150}, samples=2000)
    ratio = rows[rows["quantity"] == "late_ratio"].iloc[0]  # beta = 0.5, mu0 = 1 against mu0 = 2
    assert ratio["h_min"] == 1.0 and ratio["ci_low"] <= 1.0 <= ratio["ci_high"] and ratio["verdict"] == "supported"
    late = rows[rows["quantity"] == "late_value"].set_index(["lam", "h_min"])
    assert late.loc[(0.0, 1.0), "verdict"] == "inconclusive"  # mu_eff = mu_crit = 1: no finite late value
    assert late.loc[(0.0, 2.0), "predicted"] == pytest.approx(4 * 2 / 7 + 4 * 1 / 3 + 4 * 0.5 / 1)
    assert abs(late.loc[(0.0, 2.0), "measured"] / late.loc[(0.0, 2.0), "predicted"] - 1) < 0.15


def test_o2_exponent_below_mu_crit_and_the_best_rate_in_one_dimension():
    rows = measured("O2", problem_options={"eigenvalues": [0.5], "start_distance": 0.3},
                    methods=[{"name": "annealed_sgd", "t0": 1}], lam=[0.0], h=[0.3, 1.6, 2.0, 2.5],
                    seeds={"count": 400}, samples=2000)
    exponent = rows[(rows["quantity"] == "decay_exponent") & (rows["h_min"] == 0.3)].iloc[0]
    assert exponent["predicted"] == pytest.approx(0.3) and exponent["verdict"] == "supported", exponent
    best = rows[rows["quantity"] == "best_rate"].iloc[0]
    assert best["predicted"] == pytest.approx(2.0, rel=1e-6) and abs(best["measured"] / 2.0 - 1) < 0.15, best


def test_o3_exact_hessian_reaches_the_optimum_and_large_mu0_diverges_on_record():
    rows = measured("O3", methods=["matrix_momentum_exact", "matrix_momentum"], lam=[0.0], h=[0.2, 0.4, 1.6],
                    seeds={"count": 150}, samples=2000)
    exact = rows[(rows["quantity"] == "late_value_exact_hessian")].set_index("h_min")
    assert exact.loc[0.2, "predicted"] == pytest.approx(1 / 2 + 1 + 2)
    assert abs(exact.loc[0.2, "measured"] / exact.loc[0.2, "predicted"] - 1) < 0.1
    assert math.isinf(exact.loc[1.6, "measured"]) and exact.loc[1.6, "verdict"] == "inconclusive"  # diverged
    # the one-sample estimate: stable at 0.2, unstable at 0.4, around its mean-square bound (about 0.29 here)
    boundary = rows[rows["quantity"] == "instability_mu0"].iloc[0]
    assert 0.2 < boundary["predicted"] < 0.4 < 2 / max(LMS["eigenvalues"])
    assert (boundary["ci_low"], boundary["ci_high"]) == (0.2, 0.4) and boundary["verdict"] == "supported"
    one_sample = rows[(rows["quantity"] == "late_value_one_sample")].set_index("h_min")
    assert one_sample.loc[0.2, "verdict"] == "inconclusive"  # above mu_ms/5: outside the stated range
    assert "outside the asymptotic regime: max(5 mu0/mu_ms" in one_sample.loc[0.2, "note"]


def test_a_diverged_run_is_infinite_from_its_divergence_on():
    problem = make_problem("lms", eigenvalues=[1.0])
    rows = [dict(method="m", lam=0.0, h=1.0, seed=s, step=k, loss=1.0, sq_dist=1.0) for s in (0, 1) for k in (0, 5, 10)]
    rows[4] = rows[4] | dict(loss=math.inf, sq_dist=math.inf)  # seed 1 diverged at step 5 and recorded nothing later
    del rows[5]
    sq = squared_errors(pd.DataFrame(rows), problem).set_index(["seed", "step"])["sq"]
    assert sq[(0, 10)] == pytest.approx(1.0) and math.isinf(sq[(1, 5)]) and math.isinf(sq[(1, 10)])
    with pytest.raises(SchemaError, match="lack the column sq_dist"):
        squared_errors(pd.DataFrame(rows).drop(columns="sq_dist"), problem)


def test_recorded_squared_distance_is_that_of_the_recorded_iterate():
    """``sq_dist`` (recorded by the training job, stacked and per-run engines alike) is ``|x - w*|^2`` of the row's
    ``x`` wherever the row keeps ``x``, diverged rows included (infinite)."""
    from momentum_ct.train.functional_runner import run_functional
    from momentum_ct.train.stacked import RunRequest, run_many

    problem = make_problem("lms", eigenvalues=[2.0, 1.0, 0.5])
    at = np.arange(0, 41, 5)
    runs = [run_many([RunRequest(problem, "gd", 0.3, 0.5, 40, at)], device="cpu")[0],
            run_functional(problem, method="gd", h=0.3, lam=0.5, n_steps=40, record_at=at)]
    for rec in runs:
        cols = rec.columns()
        x = np.stack(cols["x"])
        assert len(x) == len(at)
        np.testing.assert_allclose(cols["sq_dist"], ((x - problem.minimiser.numpy()) ** 2).sum(1), rtol=1e-13)
    diverged = run_many([RunRequest(problem, "gd", 50.0, 0.0, 40, at)], device="cpu")[0].columns()
    assert len(diverged["sq_dist"]) < len(at) and math.isinf(diverged["sq_dist"][-1])


def test_parabola_vertex():
    rates = np.array([0.5, 1.0, 2.0, 4.0])
    values = np.exp((np.log(rates) - np.log(1.5)) ** 2)
    vertex, n = parabola_vertex(rates, values)
    assert vertex == pytest.approx(1.5) and n == 3
    assert parabola_vertex(rates, np.exp(-np.log(rates)))[1] == 0  # least value at an end: not bracketed


def test_batch_cg_reads_whole_data_sets_and_finds_the_minimiser_of_a_quadratic():
    problem = make_problem("lms", **LMS)
    samples, errors = batch_cg(problem, 50 * problem.n_train)
    assert np.all(samples % problem.n_train == 0) and errors[0] == pytest.approx(0.01)
    # three eigenvalues: exact CG would end in three iterations; with scipy's inexact (Wolfe) line search it takes a
    # few more, down to where the line search loses precision
    assert errors[-1] < 1e-10 * errors[0] and len(errors) <= 20
