"""Continuous-time side: ODE integration, fits, claim K1 end to end in the package, claims registry, judge."""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from momentum_ct.claims import CLAIMS, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, get_claim, k1
from momentum_ct.claims.common import MEASURE_COLUMNS
from momentum_ct.claims.judge import CLAIMS_COLUMNS, judge
from momentum_ct.claims.registry import Quantity
from momentum_ct.ct.fit import loglog_slope, max_curvature, rescaling_factor
from momentum_ct.ct.flows import gradient_flow
from momentum_ct.ct.integrate import OdeOptions, integrate
from momentum_ct.errors import ConfigError
from momentum_ct.problems import make_problem
from momentum_ct.stages import judge as judge_stage
from momentum_ct.sweep import h_grid
from momentum_ct.train.series import SeriesSpec, run_series

from problems_exact import eigen, quadratic_flow, small_quadratic

pytestmark = pytest.mark.usefixtures("single_torch_thread")

CONTRACT_COLUMNS = ["claim_id", "problem", "method", "lam", "quantity", "predicted", "measured", "ci_low", "ci_high",
                    "verdict"]


# --- integration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 2.0, 10.0])
def test_rescaled_gradient_flow_matches_closed_form(scale):
    problem = small_quadratic()
    times = np.linspace(0.0, 3.0, 31)
    got = integrate(gradient_flow(problem, scale), problem.x0, times, OdeOptions()).numpy()
    exact = quadratic_flow(problem, times, scale)
    assert np.max(np.abs(got - exact)) < 1e-9
    assert np.linalg.norm(exact[-1] - exact[0]) > 0.5  # the flow moved far


def test_integrate_returns_requested_times_in_any_order_with_repeats():
    problem = small_quadratic()
    times = np.array([2.0, 0.5, 0.0, 2.0, 1.25, 0.5])
    got = integrate(gradient_flow(problem, 1.0), problem.x0, times).numpy()
    assert got.shape == (len(times), problem.dim)
    np.testing.assert_allclose(got, quadratic_flow(problem, times), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got[0], got[3])


def test_ode_options_travel_as_a_dict():
    options = OdeOptions(method="rk4", rtol=1e-6, atol=1e-8)
    recorded = options.as_dict()
    assert {k: recorded[k] for k in ("method", "rtol", "atol")} == dict(method="rk4", rtol=1e-6, atol=1e-8)
    assert OdeOptions(**recorded) == options  # the recorded tolerances rebuild the solver settings


# --- fits ------------------------------------------------------------------------------------------


def test_loglog_slope_recovers_a_known_slope_with_a_ci_containing_it():
    rng = np.random.default_rng(0)
    h = 0.1 * 2.0 ** -np.arange(6)
    err = 3.0 * h**1.5 * np.exp(0.05 * rng.standard_normal(len(h)))
    fit = loglog_slope(h, err)
    assert fit.n_points == 6
    assert fit.ci_low < 1.5 < fit.ci_high
    assert abs(fit.slope - 1.5) < 0.1
    assert fit.ci_high - fit.ci_low < 0.5


def test_loglog_slope_exact_data_and_confidence_level():
    h = 2.0 ** -np.arange(5)
    fit = loglog_slope(h, 0.7 * h**2)
    assert fit.slope == pytest.approx(2.0, abs=1e-12)
    noisy = 0.7 * h**2 * np.array([1.0, 1.1, 0.95, 1.05, 0.9])
    wide, narrow = loglog_slope(h, noisy, 0.99), loglog_slope(h, noisy, 0.5)
    assert wide.slope == narrow.slope
    assert wide.ci_low < narrow.ci_low < narrow.slope < narrow.ci_high < wide.ci_high


def test_loglog_slope_with_too_few_points_gives_nan_bounds():
    two = loglog_slope([0.1, 0.05], [0.2, 0.1])
    assert two.slope == pytest.approx(1.0) and two.n_points == 2
    assert math.isnan(two.ci_low) and math.isnan(two.ci_high)
    one = loglog_slope([0.1], [0.2])
    assert one.n_points == 1 and math.isnan(one.slope) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    # non-finite and non-positive errors are dropped before counting
    dropped = loglog_slope([0.4, 0.2, 0.1, 0.05], [np.inf, 0.0, 0.2, 0.1])
    assert dropped.n_points == 2 and math.isnan(dropped.ci_low)


@pytest.mark.parametrize("c", [1.0, 2.0, 7.5])
def test_rescaling_factor_recovers_c_on_the_quadratic(c):
    problem = small_quadratic()
    flow_times = np.linspace(0.0, 2.0 * c * 2.0, 2001)
    flow_xs = quadratic_flow(problem, flow_times)
    times = np.linspace(0.0, 2.0, 41)
    xs = quadratic_flow(problem, c * times)  # x_k = y(c t_k) exactly
    assert rescaling_factor(times, xs, flow_times, flow_xs, (0.5 * c, 2.0 * c)) == pytest.approx(c, rel=1e-6)


def test_max_curvature_is_the_top_eigenvalue_of_the_quadratic():
    problem = make_problem("quadratic", seed=3, dim=8, condition=10.0, lipschitz=2.5)
    eig, _ = eigen(problem)
    pts = [problem.x0.numpy(), problem.minimiser.numpy()]
    assert max_curvature(problem, pts) == pytest.approx(eig.max(), rel=1e-6)
    assert eig.max() == pytest.approx(2.5)


def test_max_curvature_on_toy2d_matches_dense_hessian():
    problem = make_problem("toy2d")
    x = torch.tensor([0.2, 1.0], dtype=torch.float64)
    dense = torch.autograd.functional.hessian(problem.full_loss, x)
    top = float(torch.linalg.eigvalsh(dense).abs().max())
    assert max_curvature(problem, [x.numpy()], iterations=200) == pytest.approx(top, rel=1e-6)


def test_max_curvature_of_several_points_is_the_largest_of_each_alone():
    """The points iterate together (one vmapped product per iteration): the result is the largest of the
    points' own estimates, the first point's start vector drawn first; a point with NaN coordinates is ignored."""
    problem = make_problem("toy2d")
    points = [np.array([0.2, 1.0]), np.array([1.5, -0.3]), np.array([0.0, 0.5])]
    gen = torch.Generator().manual_seed(0)
    starts = [torch.randn(2, generator=gen, dtype=torch.float64) for _ in points]
    alone = []
    for x, v in zip(points, starts):
        x, v = torch.as_tensor(x), v / torch.linalg.vector_norm(v)
        for _ in range(50):
            hv = problem.hvp(x, v)
            est = float(torch.linalg.vector_norm(hv))
            v = hv / est
        alone.append(est)
    assert max_curvature(problem, points) == pytest.approx(max(alone), rel=1e-14)
    assert max_curvature(problem, points + [np.array([np.nan, 0.0])]) == pytest.approx(max(alone), rel=1e-14)
    assert max_curvature(problem, []) == 0.0


# --- K1 in the package: series -> predict -> measure -------------------------------------------------

# Small sweeps in the asymptotic regime (h L / (1 - lam)^2 <= 0.03 on the finest three halvings).
K1_SETUPS = {
    "quadratic": dict(options=dict(dim=4, condition=5.0, lipschitz=1.0), start=0.05, halvings=4, horizon=4.0),
    "toy2d": dict(options={}, start=0.02, halvings=4, horizon=2.0),
}


@functools.lru_cache(maxsize=None)
def k1_rows(problem: str, method: str, lam: float) -> dict[str, dict]:
    setup = K1_SETUPS[problem]
    spec = SeriesSpec(experiment=f"k1_{problem}", problem=problem, method=method, lam=lam, seed=0,
                      h=h_grid(dict(start=setup["start"], halvings=setup["halvings"], scale_with_momentum=True), lam),
                      t_max=setup["horizon"] * (1.0 - lam), n_records=50, dense_steps=20,
                      problem_options=setup["options"])
    columns, meta = run_series(spec, log=lambda line: None)
    traj = pd.DataFrame(columns)
    pred_columns, info = k1.predict(traj, meta)
    rows, points = k1.measure(traj, pd.DataFrame(pred_columns), info, meta, fit_points=3)
    assert set(points["h"]) == set(spec.h)
    return {r["quantity"]: r for r in rows}


@pytest.mark.parametrize("lam", [0.5, 0.9])
@pytest.mark.parametrize("method", ["hb", "nag"])
@pytest.mark.parametrize("problem", sorted(K1_SETUPS))
def test_k1_order_is_one_and_rescaling_factor_is_one_over_one_minus_lam(problem, method, lam):
    rows = k1_rows(problem, method, lam)
    order, factor = rows["order"], rows["rescale_factor"]
    assert order["predicted"] == 1.0 and order["n_points"] == 3
    assert order["regime"] < 0.05, f"sweep not in the asymptotic regime: {order['regime']}"
    assert 0.9 <= order["measured"] <= 1.1, f"{problem} {method} lam={lam}: order {order['measured']:.3f}"
    assert order["ci_low"] <= order["measured"] <= order["ci_high"]
    assert factor["predicted"] == pytest.approx(1.0 / (1.0 - lam))
    assert factor["measured"] == pytest.approx(1.0 / (1.0 - lam), rel=0.02), f"{problem} {method} lam={lam}"
    claim = get_claim("K1")
    assert claim.quantity("order").verdict(order["predicted"], order["measured"], order["ci_low"], order["ci_high"],
                                           order["regime"]) == SUPPORTED
    assert claim.quantity("rescale_factor").verdict(factor["predicted"], factor["measured"]) == SUPPORTED


# --- claims registry and judge ------------------------------------------------------------------------

ORDER = get_claim("K1").quantity("order")
FACTOR = get_claim("K1").quantity("rescale_factor")
GAP_ORDER = get_claim("K4").quantity("gap_order_loss")
LAG = get_claim("K4").quantity("lag_ratio_accuracy")
BOUNDARY = get_claim("O3").quantity("instability_mu0")
nan, inf = math.nan, math.inf


@pytest.mark.parametrize("quantity,args,expected", [
    # K1 order: close to 1 within 0.1, inconclusive beyond the asymptotic regime
    (ORDER, (1.0, 1.04, 0.95, 1.12, 0.01), SUPPORTED),
    (ORDER, (1.0, 0.91, nan, nan, nan), SUPPORTED),
    (ORDER, (1.0, 0.7, 0.6, 0.8, 0.01), NOT_SUPPORTED),
    (ORDER, (1.0, 1.5, 1.3, 1.7, 0.01), NOT_SUPPORTED),
    (ORDER, (1.0, 0.85, 0.7, 0.95, 0.01), INCONCLUSIVE),  # the point misses, the interval reaches the band
    (ORDER, (1.0, 0.85, nan, nan, 0.01), NOT_SUPPORTED),  # no interval: the point decides
    (ORDER, (1.0, 1.0, 0.99, 1.01, 0.2), INCONCLUSIVE),  # regime 0.2 > limit 0.05
    (ORDER, (1.0, 0.5, 0.4, 0.6, 0.2), INCONCLUSIVE),  # outside the regime nothing is refuted either
    (ORDER, (1.0, 1.0, 0.99, 1.01, 0.05), SUPPORTED),  # at the limit: still asymptotic
    (ORDER, (1.0, nan, nan, nan, 0.01), INCONCLUSIVE),
    (ORDER, (1.0, inf, nan, nan, 0.01), INCONCLUSIVE),
    (ORDER, (1.0, 1.0, 0.99, 1.01, inf), INCONCLUSIVE),  # a regime that cannot be established
    (ORDER, (inf, 1.0, 0.99, 1.01, 0.01), INCONCLUSIVE),  # no finite prediction
    # K1 rescaling factor: relative band 2%
    (FACTOR, (10.0, 10.15, nan, nan, nan), SUPPORTED),
    (FACTOR, (10.0, 9.75, nan, nan, nan), NOT_SUPPORTED),
    (FACTOR, (10.0, 10.3, 10.1, 10.5, nan), INCONCLUSIVE),
    (FACTOR, (2.0, 2.05, nan, nan, nan), NOT_SUPPORTED),
    # K4 gap order: 1 within 0.2, inside the asymptotic regime
    (GAP_ORDER, (1.0, 0.96, 0.94, 0.99, 0.04), SUPPORTED),
    (GAP_ORDER, (1.0, 0.83, 0.67, 0.99, 1.35), INCONCLUSIVE),  # fitted where h L/(1-lam)^2 > 0.05
    (GAP_ORDER, (1.0, 0.5, 0.4, 0.6, 0.04), NOT_SUPPORTED),
    (GAP_ORDER, (1.0, inf, nan, nan, 0.04), INCONCLUSIVE),
    # O3's instability boundary: the prediction inside the bracket of sampled mu0 (factor 2 apart at most)
    (BOUNDARY, (0.289, 0.283, 0.2, 0.4, 1.0), SUPPORTED),
    (BOUNDARY, (0.45, 0.283, 0.2, 0.4, 1.0), NOT_SUPPORTED),  # predicts 0.4 stable; it was seen unstable
    (BOUNDARY, (0.289, 0.4, 0.2, 0.8, 2.0), INCONCLUSIVE),  # a factor-4 bracket
    # K4 gap over its lag prediction: 1 within 25%, a count's interval may reach the band
    (LAG, (1.0, 0.96, nan, nan, 0.02), SUPPORTED),
    (LAG, (1.0, 1.43, 0.69, 2.64, 0.02), INCONCLUSIVE),
    (LAG, (1.0, 1.43, 1.3, 1.6, 0.02), NOT_SUPPORTED),
])
def test_verdict_logic(quantity, args, expected):
    assert quantity.verdict(*args) == expected, (quantity.name, args)


def test_quantity_band():
    assert Quantity("q", "", 0.1).band(5.0) == 0.1
    assert Quantity("q", "", 0.1, relative=True).band(-5.0) == pytest.approx(0.5)


def test_registry_lookups_name_the_valid_choices():
    assert {"K1", "K4"} <= set(CLAIMS)
    with pytest.raises(ConfigError, match="unknown claim 'K9'; valid claims: " + ", ".join(sorted(CLAIMS))):
        get_claim("K9")
    with pytest.raises(ConfigError, match="order, rescale_factor"):
        get_claim("K1").quantity("slope")


def fit_row(**overrides):
    base = dict(claim_id="K1", experiment="e", problem="quadratic", method="hb", lam=0.5, seed=0, quantity="order",
                predicted=1.0, measured=1.0, ci_low=0.95, ci_high=1.05, h_min=0.001, h_max=0.004, regime=0.01,
                n_points=3, note="")
    return base | overrides


def hand_made_fits() -> pd.DataFrame:
    return pd.DataFrame([
        fit_row(),
        fit_row(method="nag", measured=0.6, ci_low=0.5, ci_high=0.7),
        fit_row(method="nag", lam=0.9, regime=0.5),
        fit_row(quantity="rescale_factor", predicted=2.0, measured=2.01, ci_low=nan, ci_high=nan, regime=nan),
        fit_row(claim_id="K4", problem="digits_mlp", experiment="k4", quantity="lag_ratio_loss", predicted=1.0,
                measured=0.5, ci_low=nan, ci_high=nan, regime=0.02, note="full batch"),
    ])


def test_judge_assigns_verdicts_and_contract_columns():
    claims = judge(hand_made_fits())
    assert list(claims.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert list(claims.columns) == CLAIMS_COLUMNS
    assert set(MEASURE_COLUMNS) <= set(claims.columns)
    verdict = {(r.claim_id, r.method, r.lam, r.quantity): r.verdict for r in claims.itertuples()}
    assert verdict == {
        ("K1", "hb", 0.5, "order"): SUPPORTED,
        ("K1", "nag", 0.5, "order"): NOT_SUPPORTED,
        ("K1", "nag", 0.9, "order"): INCONCLUSIVE,
        ("K1", "hb", 0.5, "rescale_factor"): SUPPORTED,
        ("K4", "hb", 0.5, "lag_ratio_loss"): NOT_SUPPORTED,
    }
    assert list(claims["claim_id"]) == sorted(claims["claim_id"])  # sorted by claim


def test_judge_rejects_a_table_without_measure_columns():
    with pytest.raises(ValueError, match="regime"):
        judge(hand_made_fits().drop(columns=["regime"]))


def test_judge_rejects_an_unknown_quantity():
    with pytest.raises(ConfigError, match="quantity of claim K1"):
        judge(pd.DataFrame([fit_row(quantity="curvature")]))


def test_judge_stage_writes_claims_csv_and_markdown(tmp_path):
    fits = hand_made_fits()
    paths = []
    for cid, part in fits.groupby("claim_id"):
        paths.append(tmp_path / f"{cid}.csv")
        part.to_csv(paths[-1], index=False)
    csv, md = tmp_path / "claims.csv", tmp_path / "claims.md"
    judge_stage([str(p) for p in paths], str(csv), str(md))
    table = pd.read_csv(csv)
    assert list(table.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert len(table) == len(fits)
    assert set(table["verdict"]) == {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE}
    text = md.read_text()
    assert text.startswith("# Claims and their evidence")
    for cid in ("K1", "K4"):
        assert f"## {cid}: {CLAIMS[cid].statement}" in text
    assert "| K1 |" in text and "| K4 |" in text  # summary rows
