"""Seaborn figures, one function per figure: ``FIGURES[name](inputs, output)``."""
from . import k1, k4

FIGURES = {
    "k1_error_vs_h": k1.error_vs_h,
    "k1_rescale_factor": k1.rescale_factor,
    "k4_curves": k4.curves,
    "k4_gap_vs_h": k4.gap_vs_h,
}

__all__ = ["FIGURES"]
