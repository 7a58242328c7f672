"""Claims: the registry of what is predicted, how it is measured and judged, and the judge itself."""
from .registry import (CLAIMS, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, Figure, Quantity, get_claim,
                       register_claim)

__all__ = ["CLAIMS", "Claim", "Figure", "INCONCLUSIVE", "NOT_SUPPORTED", "Quantity", "SUPPORTED", "get_claim",
           "register_claim"]
