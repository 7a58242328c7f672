"""The claims registry: every claim the pipeline can judge, each one entry (``claim.Claim``).

A claim enters through one entry: the package's own below, a user's from a module named in the
config's ``plugins`` that calls ``register_claim``. Nothing else (the workflow, the judge, the
figures) names a claim.
"""
from __future__ import annotations

from ..errors import ConfigError, unknown_name
from . import e1, e2, e3, k1, k2, k3, k4, o1, o2, o3
from .claim import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, Figure, Quantity, quantities

BUILTIN: tuple[Claim, ...] = (
    Claim(
        id="K1",
        prediction_columns=("kind", "t", "err"),  # per-step distances (claims/common.py)
        measure_vectors=False,  # the prediction's distances, not the vectors
        statement="HB and NAG with (h, lam) follow the time-rescaled gradient flow dx/dt = -grad f / (1 - lam) "
                  "as h -> 0, like GD with learning rate h / (1 - lam).",
        source="Kovachki & Stuart, JMLR 22(17) 2021, first result (SCIENCE.md 1.2)",
        prediction="sup_{kh<=T} |x_k - x(kh)| = O(h) (order 1); time-rescaling factor c = 1/(1 - lam)",
        measurement="log-log slope of the sup error over the finest h halvings (95% CI); c fitted by least "
                    "squares against the plain gradient flow at the finest h, uncertainty from the next-finest h",
        quantities=quantities(
            Quantity("order", "order of convergence in h", 0.1, regime_limit=0.05, min_points=3),
            Quantity("rescale_factor", "fitted time-rescaling factor c", 0.02, relative=True, regime_limit=0.05),
        ),
        predict=k1.predict,
        predict_batch=k1.predict_batch,
        measure=k1.measure,
        requires=("several_h",),
        figures={
            "k1_error_vs_h": Figure(
                "momentum_ct.plots.k1:error_vs_h",
                "K1: largest distance between the iterates and the time-rescaled gradient flow "
                "dx/dt = -grad f/(1-lam), against the learning rate h, log-log, one panel per problem and lam; each "
                "panel lists the order fitted on the finest halvings (predicted: 1 within {order.tolerance_text}; dotted: slope 1)."),
            "k1_rescale_factor": Figure(
                "momentum_ct.plots.k1:rescale_factor",
                "K1: time-rescaling factor c fitted so that x_k matches the plain gradient flow at time c k h, against "
                "the predicted 1/(1-lam), as the relative deviation c (1 - lam) - 1 in percent; bars span the change "
                "from the next-finest h, the band the {rescale_factor.tolerance_text} tolerance."),
        },
    ),
    Claim(
        id="K2",
        prediction_columns=("kind", "t", "err"),  # per-step distances (claims/common.py)
        measure_vectors=False,  # the prediction's distances, not the vectors
        statement="For fixed small h, HB and NAG follow the second-order modified equation "
                  "alpha x'' + x' = -grad f / (1 - lam), x'(0) = 0, which carries the initial transient that the "
                  "first-order flow of K1 lacks, with alpha_HB = h (1 + lam)/(2 (1 - lam)) and "
                  "alpha_NAG = h (1 - lam + 2 lam^2)/(2 (1 - lam)).",
        source="Kovachki & Stuart, JMLR 22(17) 2021, second result; coefficients derived by Taylor expansion "
               "(SCIENCE.md 1.3)",
        prediction="sup error O(h) (order 1) over the horizon and over the transient, with a smaller constant than "
                   "K1's: error ratio K2/K1 below 1, falling as lam -> 1",
        measurement="log-log slope of the sup error over the finest h halvings (95% CI), over the horizon and over "
                    "the transient (steps k with lam^k >= 1e-3); ratio of K2's sup error to K1's on the same runs, "
                    "largest over the fitted h. NAG's unsubstituted form (Hessian term by Hessian-vector products) "
                    "is fitted too. Integrated by torchdiffeq's scipy_solver (ode.stiff_solver, LSODA by "
                    "default): the equation is stiff. "
                    "Rescaled GD gets no K2 rows: a one-step method, its velocity is not set by x_{-1} and it has "
                    "no transient to model",
        quantities=quantities(
            Quantity("order", "order of convergence in h over the horizon", 0.1, regime_limit=0.05, min_points=3),
            Quantity("order_transient", "order of convergence in h over the transient", 0.1,
                     regime_limit=0.05, min_points=3),
            Quantity("error_ratio", "K2's sup error over K1's, horizon", 0.0, comparison="below", regime_limit=0.05),
            Quantity("error_ratio_transient", "K2's sup error over K1's, transient", 0.0, comparison="below",
                     regime_limit=0.05),
            Quantity("order_hessian_form", "order of NAG's unsubstituted form, horizon", 0.1,
                     regime_limit=0.05, min_points=3),
            Quantity("order_transient_hessian_form", "order of NAG's unsubstituted form, transient", 0.1,
                     regime_limit=0.05, min_points=3),
            Quantity("error_ratio_hessian_form", "unsubstituted form's sup error over K1's, horizon", 0.0,
                     comparison="below", regime_limit=0.05),
            Quantity("error_ratio_transient_hessian_form", "unsubstituted form's sup error over K1's, transient",
                     0.0, comparison="below", regime_limit=0.05),
        ),
        predict=k2.predict,
        predict_batch=k2.predict_batch,
        measure=k2.measure,
        requires=("several_h", "momentum"),
        figures={
            "k2_error_vs_h": Figure(
                "momentum_ct.plots.k2:error_vs_h",
                "K2: largest distance over the horizon between the iterates and the second-order modified equation "
                "alpha x'' + x' = -grad f/(1-lam), x'(0) = 0 (and, for NAG, its unsubstituted form with the Hessian "
                "term), beside K1's flow, against h, log-log; the fitted K2 orders are written in each panel "
                "(predicted: 1 within {order.tolerance_text}, below K1's error)."),
            "k2_error_ratio": Figure(
                "momentum_ct.plots.k2:error_ratio",
                "K2: K2's sup error over K1's on the same runs at the finest h, over the horizon (filled) and over the "
                "transient (open; steps with lam^k >= 1e-3), against lam; dotted: the constant-gradient lag estimate "
                "(1-lam)|2a-1|/(2 lam) derived here (predicted: below 1, falling as lam grows)."),
            "k2_error_in_time": Figure(
                "momentum_ct.plots.k2:error_in_time",
                "K2: distance of the iterates from K1's flow and from K2's model along the finest run, against the "
                "step k (log-log): K1's error builds up in the transient (before the dotted line), where K2 follows "
                "the iterates."),
        },
    ),
    Claim(
        id="K3",
        prediction_columns=("kind", "t", "err"),  # per-step distances (claims/common.py)
        measure_vectors=False,  # the distances; the phase portrait's vectors are a plane's (never set apart)
        statement="In (x, m) variables the velocity m_k relaxes geometrically, by about lam per step, onto an "
                  "invariant manifold m = -grad f/(1 - lam) + O(h); on it the iterates follow the gradient flow of "
                  "the modified loss F_h = f + h [(1 + lam) - 2a(1 - lam)] / (4 (1 - lam)^2) |grad f|^2 to O(h^2).",
        source="Kovachki & Stuart, JMLR 22(17) 2021, third result; F_h and the manifold's O(h) term derived here "
               "(SCIENCE.md 1.4); competing formulas: Barrett & Dherin (ICLR 2021), Ghosh et al. (ICLR 2023)",
        prediction="contraction ratio lam (per step lam (1 + O(h))); order 2 for F_h after the transient, order 1 "
                   "for plain f, for the formulas that differ from F_h, and for F_h run through the transient",
        measurement="ratio fitted to |m_k - phi(x_k)| over the first steps while above its floor "
                    "(leading-order and first-order-corrected manifold), at the finest h; modified flows started "
                    "from the recorded iterate at t0 (lam^k < h^3) and compared up to the horizon, log-log slope "
                    "over the finest h halvings (95% CI); the runner-up formula's error over F_h's at the finest "
                    "fitted h. Rescaled GD has no fast variable: modified losses only",
        quantities=quantities(
            Quantity("contraction_ratio", "per-step contraction towards the leading-order manifold", 0.05,
                     relative=True, regime_limit=0.05),
            Quantity("contraction_ratio_corrected", "per-step contraction towards the corrected manifold", 0.05,
                     relative=True, regime_limit=0.05),
            Quantity("order", "order of F_h's flow after the transient", 0.2, regime_limit=0.05, min_points=3),
            Quantity("order_flow", "order of the gradient flow of f after the transient", 0.2,
                     regime_limit=0.05, min_points=3),
            Quantity("order_barrett_dherin", "order of f + (h/(1 - lam))/4 |grad f|^2 after the transient", 0.2,
                     regime_limit=0.05, min_points=3),
            Quantity("order_ghosh", "order of the heavy-ball form f + h(1 + lam)/(4(1 - lam)^2) |grad f|^2 after "
                     "the transient", 0.2, regime_limit=0.05, min_points=3),
            Quantity("order_from_start", "order of F_h's flow from x_0 at t = 0", 0.2, regime_limit=0.05, min_points=3),
            Quantity("runner_up_error_ratio", "error of the best formula that differs from F_h over F_h's (above "
                     "1: F_h fits best)", 0.0, comparison="above", regime_limit=0.05),
        ),
        predict=k3.predict,
        measure=k3.measure,
        requires=("several_h", "momentum"),
        figures={
            "k3_manifold_distance": Figure(
                "momentum_ct.plots.k3:manifold_distance",
                "K3: distance of the velocity m_k = (x_k - x_{{k-1}})/h from the invariant manifold, leading order "
                "-grad f/(1-lam) and first-order corrected, along the finest run; dotted: lam^k. It contracts by lam "
                "per step down to an O(h) (leading) or O(h^2) (corrected) floor."),
            "k3_contraction": Figure(
                "momentum_ct.plots.k3:contraction",
                "K3: per-step contraction ratio fitted to the distance from the manifold while above its floor, "
                "divided by lam, against h (predicted: lam (1 + O(h)); grey band: the "
                "{contraction_ratio.tolerance_text} tolerance)."),
            "k3_phase_portrait": Figure(
                "momentum_ct.plots.k3:phase_portrait",
                "K3: the 2-D toy problem, velocity against position for each coordinate over the dense first steps: "
                "from m_0 = 0 the iterates fall in a few steps onto the manifold m = phi(x) (grey: leading order, "
                "dashed: first-order corrected, both evaluated along the iterates) and then move along it."),
            "k3_modified_loss": Figure(
                "momentum_ct.plots.k3:modified_loss",
                "K3: largest distance after the transient between the iterates and the gradient flows of the "
                "competing modified losses started from the same iterate at t0 (lam^k < h^3), against h; the paper's "
                "F_h run from x_0 through the transient for comparison (predicted: order 2 within "
                "{order.tolerance_text} for F_h after the transient, 1 otherwise)."),
            "k3_formula_table": Figure(
                "momentum_ct.plots.k3:formula_table",
                "K3: which modified loss fits the iterates after the transient, per problem, method and lam: fitted "
                "order (text) and error over the best formula's at the finest fitted h (text and colour)."),
        },
    ),
    k4.CLAIM,
    e1.CLAIM,
    e2.CLAIM,
    e3.CLAIM,
    o1.CLAIM,
    o2.CLAIM,
    o3.CLAIM,
)

CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim, *, replace: bool = False) -> Claim:
    """Add a claim to the registry (a plug-in's entry point); a taken id is an error unless ``replace``."""
    if not isinstance(claim, Claim):
        raise ConfigError(f"register_claim expects a Claim, got {type(claim).__name__}")
    if not claim.id or not claim.id[0].isupper() or not claim.id.isalnum():
        raise ConfigError(f"claim id {claim.id!r} must be letters and digits starting with a capital letter")
    if claim.id in CLAIMS and not replace and CLAIMS[claim.id] is not claim:
        raise ConfigError(f"claim {claim.id} is already registered")
    if claim.measure is None:
        raise ConfigError(f"claim {claim.id} has no measure function")
    CLAIMS[claim.id] = claim
    return claim


for _claim in BUILTIN:
    register_claim(_claim)


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise unknown_name("claim", claim_id, CLAIMS)
    return CLAIMS[claim_id]


__all__ = ["CLAIMS", "INCONCLUSIVE", "NOT_SUPPORTED", "SUPPORTED", "Claim", "Figure", "Quantity", "get_claim",
           "quantities", "register_claim"]
