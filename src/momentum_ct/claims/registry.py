"""Claims are data: a statement, its source, what is predicted and how each quantity is judged.

Adding a claim means adding one entry here and, if needed, one measure module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import unknown_name

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass(frozen=True)
class Quantity:
    """How one measured quantity is judged against its prediction.

    ``comparison``: ``close`` (|measured - predicted| <= band), ``below`` (measured <= predicted + band)
    or ``above`` (measured >= predicted - band). ``band`` is ``tolerance``, times |predicted| when
    ``relative``. ``regime_limit``: rows whose asymptotic-regime number exceeds it are inconclusive.
    """

    name: str
    description: str
    tolerance: float
    comparison: str = "close"
    relative: bool = False
    regime_limit: float | None = None

    def band(self, predicted: float) -> float:
        return self.tolerance * abs(predicted) if self.relative else self.tolerance

    def verdict(self, predicted: float, measured: float, ci_low: float = math.nan, ci_high: float = math.nan,
                regime: float = math.nan) -> str:
        if not math.isfinite(measured):
            return INCONCLUSIVE
        if self.regime_limit is not None and math.isfinite(regime) and regime > self.regime_limit:
            return INCONCLUSIVE
        band = self.band(predicted)
        lo, hi = {"close": (predicted - band, predicted + band), "below": (-math.inf, predicted + band),
                  "above": (predicted - band, math.inf)}[self.comparison]
        if lo <= measured <= hi:
            return SUPPORTED
        if math.isfinite(ci_low) and math.isfinite(ci_high) and ci_low <= hi and ci_high >= lo:
            return INCONCLUSIVE  # the point misses, but the interval still reaches the band
        return NOT_SUPPORTED


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str
    prediction: str
    measurement: str
    quantities: dict[str, Quantity] = field(default_factory=dict)

    def quantity(self, name: str) -> Quantity:
        if name not in self.quantities:
            raise unknown_name(f"quantity of claim {self.id}", name, self.quantities)
        return self.quantities[name]


def _q(*quantities: Quantity) -> dict[str, Quantity]:
    return {q.name: q for q in quantities}


CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            id="K1",
            statement="HB and NAG with (h, lam) follow the time-rescaled gradient flow dx/dt = -grad f / (1 - lam) "
                      "as h -> 0, like GD with learning rate h / (1 - lam).",
            source="Kovachki & Stuart, JMLR 22(17) 2021, first result (SCIENCE.md 1.2)",
            prediction="sup_{kh<=T} |x_k - x(kh)| = O(h) (order 1); time-rescaling factor c = 1/(1 - lam)",
            measurement="log-log slope of the sup error over the finest h halvings (95% CI); c fitted by least "
                        "squares against the plain gradient flow at the finest h, uncertainty from the next-finest h",
            quantities=_q(
                Quantity("order", "order of convergence in h", 0.1, regime_limit=0.05),
                Quantity("rescale_factor", "fitted time-rescaling factor c", 0.02, relative=True),
            ),
        ),
        Claim(
            id="K2",
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
            quantities=_q(
                Quantity("order", "order of convergence in h over the horizon", 0.1, regime_limit=0.05),
                Quantity("order_transient", "order of convergence in h over the transient", 0.1, regime_limit=0.05),
                Quantity("error_ratio", "K2's sup error over K1's, horizon", 0.0, comparison="below"),
                Quantity("error_ratio_transient", "K2's sup error over K1's, transient", 0.0, comparison="below"),
                Quantity("order_hessian_form", "order of NAG's unsubstituted form, horizon", 0.1, regime_limit=0.05),
                Quantity("order_transient_hessian_form", "order of NAG's unsubstituted form, transient", 0.1,
                         regime_limit=0.05),
                Quantity("error_ratio_hessian_form", "unsubstituted form's sup error over K1's, horizon", 0.0,
                         comparison="below"),
                Quantity("error_ratio_transient_hessian_form", "unsubstituted form's sup error over K1's, transient",
                         0.0, comparison="below"),
            ),
        ),
        Claim(
            id="K3",
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
            quantities=_q(
                Quantity("contraction_ratio", "per-step contraction towards the leading-order manifold", 0.05,
                         relative=True),
                Quantity("contraction_ratio_corrected", "per-step contraction towards the corrected manifold", 0.05,
                         relative=True),
                Quantity("order", "order of F_h's flow after the transient", 0.2, regime_limit=0.05),
                Quantity("order_flow", "order of the gradient flow of f after the transient", 0.2, regime_limit=0.05),
                Quantity("order_barrett_dherin", "order of f + (h/(1 - lam))/4 |grad f|^2 after the transient", 0.2,
                         regime_limit=0.05),
                Quantity("order_ghosh", "order of the heavy-ball form f + h(1 + lam)/(4(1 - lam)^2) |grad f|^2 after "
                         "the transient", 0.2, regime_limit=0.05),
                Quantity("order_from_start", "order of F_h's flow from x_0 at t = 0", 0.2, regime_limit=0.05),
                Quantity("runner_up_error_ratio", "error of the best formula that differs from F_h over F_h's (above "
                         "1: F_h fits best)", 0.0, comparison="above"),
            ),
        ),
        Claim(
            id="K4",
            statement="On network training HB and NAG with (h, lam) and GD with h / (1 - lam) give loss and accuracy "
                      "curves that coincide against t = k h / (1 - lam) for small h and separate as h grows.",
            source="Kovachki & Stuart, JMLR 22(17) 2021, numerical experiments (SCIENCE.md 1.5)",
            prediction="largest gap between the momentum curve and the rescaled-GD curve -> 0 as h -> 0, growing with h",
            measurement="largest absolute gap in training loss over a common rescaled-time grid; its log-log slope in h",
            quantities=_q(
                Quantity("max_gap_loss", "largest training-loss gap at the smallest h", 0.02, comparison="below"),
                Quantity("max_gap_accuracy", "largest test-accuracy gap at the smallest h", 0.02, comparison="below"),
                Quantity("gap_slope", "log-log slope of the loss gap in h (positive: the gap grows with h)", 0.0,
                         comparison="above"),
            ),
        ),
    )
}


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise unknown_name("claim", claim_id, CLAIMS)
    return CLAIMS[claim_id]
