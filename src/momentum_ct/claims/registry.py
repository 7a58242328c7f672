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
