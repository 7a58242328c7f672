"""Claims registry, the measurements behind each claim, and the judge."""
from .registry import CLAIMS, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, Quantity, get_claim

__all__ = ["CLAIMS", "Claim", "INCONCLUSIVE", "NOT_SUPPORTED", "Quantity", "SUPPORTED", "get_claim"]
