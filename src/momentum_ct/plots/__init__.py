"""Seaborn figures, one function per figure: ``FIGURES[name](inputs, output)``."""
from . import k1, k2, k3, k4

FIGURES = {
    "k1_error_vs_h": k1.error_vs_h,
    "k1_rescale_factor": k1.rescale_factor,
    "k2_error_vs_h": k2.error_vs_h,
    "k2_error_ratio": k2.error_ratio,
    "k2_error_in_time": k2.error_in_time,
    "k3_manifold_distance": k3.manifold_distance,
    "k3_contraction": k3.contraction,
    "k3_phase_portrait": k3.phase_portrait,
    "k3_modified_loss": k3.modified_loss,
    "k3_formula_table": k3.formula_table,
    "k4_curves": k4.curves,
    "k4_gap_vs_h": k4.gap_vs_h,
}

__all__ = ["FIGURES"]
