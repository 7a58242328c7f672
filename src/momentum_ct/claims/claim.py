"""What a claim is: a statement, how each measured quantity is judged, and everything downstream needs.

A ``Claim`` carries its predict function (or none), its measure function and scope, the dtypes it
accepts, and its figures with their captions. The workflow reads all of it from the registry
(``claims.registry``) and names no claim; a tolerance is written once, in its ``Quantity``, and
captions and figures read it from there.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import ConfigError, unknown_name

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

# Per series: predict and measure see one (problem, method, lam, seed) series at a time.
# Per experiment: measure sees every series of an experiment at once (to compare methods).
SCOPES = ("series", "experiment")
# A figure drawn from the claim's measure tables, or one per experiment from its trajectories.
FIGURE_SOURCES = ("measures", "trajectories")
# What a claim may need of an experiment (``Claim.requires``), checked before any job (``sweep.validate_config``).
REQUIREMENTS = {
    "several_h": "at least three learning rates h for every lam (an order is a slope over h)",
    "momentum": "a method with momentum (hb, nag, ...) and some lam > 0",
    "network": "a network problem (one with held-out test data, e.g. digits_mlp)",
    "test_accuracy": "a classifier's test accuracy (e.g. digits_mlp)",
    "rescaled_gd": "gd_rescaled among the methods (the reference the momentum methods are compared with)",
    "graph_prior": "a graph semi-supervised problem with a Gaussian prior (graph_ssl) trained by eki only",
    "sgd_and_ensemble": "gd (the SGD reference) and at least one ensemble method (eki) among the methods",
    "fixed_step_ensemble": "only ensemble methods (eki) at a fixed step (adaptive 0) without perturbed "
                           "observations (perturb 0), on the full training set (batch_size null)",
    "late_time_prediction": "a problem that states its Hessian and per-sample gradient covariance at w* (lms, "
                            "digits_late)",
    "annealed": "an annealed on-line method (annealed_sgd or search_then_converge)",
    "momentum_pair": "annealed_sgd with lam = 0 and some lam > 0 (momentum is compared with plain SGD at "
                     "h / (1 - lam))",
    "matrix_momentum": "a matrix momentum method (matrix_momentum, matrix_momentum_exact, ...)",
}


@dataclass(frozen=True)
class Quantity:
    """How one measured quantity is judged against its prediction.

    ``comparison``: ``inside`` (the prediction lies in the measured bracket ``[ci_low, ci_high]``, e.g. a
    boundary between two sampled values; ``tolerance`` unused), ``close`` (|measured - predicted| <= band),
    ``below`` (measured <= predicted + band)
    or ``above`` (measured >= predicted - band). ``band`` is ``tolerance``, times |predicted| when
    ``relative``. ``regime_limit``: rows whose asymptotic-regime number exceeds it are inconclusive.
    ``min_points``: rows measured from fewer points (an order from fewer h) are inconclusive.
    ``regime_text``: what the regime number is (the reason of an inconclusive verdict names it).
    """

    name: str
    description: str
    tolerance: float
    comparison: str = "close"
    relative: bool = False
    regime_limit: float | None = None
    min_points: int = 1
    regime_text: str = "h L/(1-lam)^2"  # what the regime number is, for the inconclusive verdict's reason

    def band(self, predicted: float) -> float:
        return self.tolerance * abs(predicted) if self.relative else self.tolerance

    @property
    def tolerance_text(self) -> str:
        """The tolerance as a caption writes it: ``2%`` when relative, else ``0.1``."""
        return f"{100 * self.tolerance:g}%" if self.relative else f"{self.tolerance:g}"

    def verdict(self, predicted: float, measured: float, ci_low: float = math.nan, ci_high: float = math.nan,
                regime: float = math.nan, n_points: int | None = None) -> str:
        return self.judge(predicted, measured, ci_low, ci_high, regime, n_points)[0]

    def judge(self, predicted: float, measured: float, ci_low: float = math.nan, ci_high: float = math.nan,
              regime: float = math.nan, n_points: int | None = None) -> tuple[str, str]:
        """``(verdict, reason)``; the reason says why a row is inconclusive (empty otherwise).

        Never overstated: a value that was not measured, a value measured outside the asymptotic regime,
        or one fitted on fewer than ``min_points`` points is inconclusive, whatever its size.
        """
        if not math.isfinite(measured):
            return INCONCLUSIVE, "not measured (no finite value)"
        if not math.isfinite(predicted):
            return INCONCLUSIVE, "no finite prediction here"
        # NaN: no regime stated for the row; infinite: the regime cannot be established (outside it)
        if self.regime_limit is not None and not math.isnan(regime) and regime > self.regime_limit:
            return INCONCLUSIVE, (f"outside the asymptotic regime: {self.regime_text} = {regime:.3g} > "
                                  f"{self.regime_limit:g}")
        if n_points is not None and n_points < self.min_points:
            return INCONCLUSIVE, f"from {n_points} point(s); needs at least {self.min_points}"
        if self.comparison == "inside":
            return (SUPPORTED, "") if ci_low <= predicted <= ci_high else (NOT_SUPPORTED, "")
        band = self.band(predicted)
        lo, hi = {"close": (predicted - band, predicted + band), "below": (-math.inf, predicted + band),
                  "above": (predicted - band, math.inf)}[self.comparison]
        if lo <= measured <= hi:
            return SUPPORTED, ""
        if math.isfinite(ci_low) and math.isfinite(ci_high) and ci_low <= hi and ci_high >= lo:
            return INCONCLUSIVE, "the value misses the band, its interval reaches it"
        return NOT_SUPPORTED, ""


@dataclass(frozen=True)
class Figure:
    """One figure of a claim.

    Args:
        draw: ``draw(inputs, output, claim)`` or ``"module:function"`` (imported when drawn, so listing
            the registry never imports the plotting stack). ``inputs`` holds ``fits`` and ``points`` (the
            claim's measure tables) for ``source="measures"``, ``trajectories`` (one experiment's files)
            and ``experiment`` for ``source="trajectories"``.
        caption: the report's caption; ``{name.tolerance_text}`` and other fields of the claim's quantities
            (``str.format`` syntax) are filled in from the registry, so no tolerance is typed twice.
        source: ``measures`` (one figure per claim) or ``trajectories`` (one per experiment carrying the claim).
    """

    draw: Callable[..., None] | str
    caption: str
    source: str = "measures"

    def function(self) -> Callable[..., None]:
        if callable(self.draw):
            return self.draw
        module, _, name = self.draw.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Claim:
    """A claim and everything the pipeline needs to judge it.

    Args:
        id: short identifier (``K1``); letters and digits, starting with a capital letter.
        statement, source, prediction, measurement: the texts of the claim table.
        quantities: name -> ``Quantity`` (how each measured number is judged).
        measure: per series ``measure(traj, pred, info, meta, **options) -> (rows, points)``; per experiment
            ``measure(traj, specs, **options) -> (rows, points)``; ``options`` are the config's ``measure`` keys.
        predict: per series ``predict(traj, meta, ode) -> (columns, info)``, or ``None`` when the claim
            needs no continuous-time prediction.
        predict_batch: optional ``predict_batch([(traj, meta), ...], ode) -> [(columns, info), ...]``, the same for
            every series of a training job at once, where series share work (K1's gradient flow is the same for
            every method and lam of a seed); the prediction stage uses it when given.
        scope: ``series`` or ``experiment``.
        dtypes: the training dtypes whose trajectories can serve the claim (orders of convergence need float64).
        requires: what an experiment must offer for the claim to be measured on it (``REQUIREMENTS``).
        figures: figure name -> ``Figure``.
        prediction_columns: the columns its prediction files must hold (an older file without them is refused
            with a message to rebuild it, not read into a KeyError).
        path_vectors: whether the measure reads the recorded vectors (``x``, ``m``) along whole runs; where no claim
            of an experiment does, its runs keep them only at a few records each (``train.series``), which is
            what a network's trajectories would otherwise mostly consist of.
        path_velocity: whether the claim reads the recorded velocities (``m``, the vectors after ``x``) beyond an
            experiment's dense head (``dense_steps``); where no claim of an experiment does, its runs keep them only
            there (K3 compares velocities with the slow manifold in the dense head only).
        measure_vectors: whether the measure reads recorded vectors itself, beyond what its prediction stores (the
            per-step distances ``err``). Where no claim of an experiment does, a network's path vectors (above
            ``VECTOR_MAX_DIM`` dimensions) are set apart for the prediction jobs only (``SeriesSpec.vectors_apart``);
            the default keeps them, so a plug-in claim whose measure reads them works unchanged.
    """

    id: str
    statement: str
    source: str
    prediction: str
    measurement: str
    quantities: dict[str, Quantity] = field(default_factory=dict)
    measure: Callable[..., Any] | None = None
    predict: Callable[..., Any] | None = None
    predict_batch: Callable[..., Any] | None = None
    scope: str = "series"
    dtypes: tuple[str, ...] = ("float64",)
    requires: tuple[str, ...] = ()
    figures: dict[str, Figure] = field(default_factory=dict)
    path_vectors: bool = True
    path_velocity: bool = False
    measure_vectors: bool = True
    prediction_columns: tuple[str, ...] = ("kind", "t")

    def __post_init__(self):
        unknown = sorted(set(self.requires) - set(REQUIREMENTS))
        if unknown:
            raise ConfigError(f"claim {self.id}: unknown requirement(s) {', '.join(unknown)}; "
                              f"valid requirements: {', '.join(REQUIREMENTS)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"claim {self.id}: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        for name, fig in self.figures.items():
            if fig.source not in FIGURE_SOURCES:
                raise ConfigError(f"claim {self.id}: figure {name} has source {fig.source!r}; "
                                  f"valid sources: {', '.join(FIGURE_SOURCES)}")

    def quantity(self, name: str) -> Quantity:
        if name not in self.quantities:
            raise unknown_name(f"quantity of claim {self.id}", name, self.quantities)
        return self.quantities[name]

    def figure(self, name: str) -> Figure:
        if name not in self.figures:
            raise unknown_name(f"figure of claim {self.id}", name, self.figures)
        return self.figures[name]

    def figure_names(self, source: str) -> list[str]:
        return [n for n, f in self.figures.items() if f.source == source]

    def figure_files(self, experiments: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """Every figure file, keyed by its path under the claim's figure folder without ``.png``: ``<figure>`` for
        one drawn from the measures, ``<experiment>/<figure>`` per experiment for one drawn from trajectories; the
        value is ``(figure, experiment)``, the experiment ``None`` for the former."""
        files: dict[str, tuple[str, str | None]] = {f: (f, None) for f in self.figure_names("measures")}
        for experiment in experiments:
            files.update({f"{experiment}/{f}": (f, experiment) for f in self.figure_names("trajectories")})
        return files

    def caption(self, name: str) -> str:
        """The figure's caption with the quantities' fields (tolerances) filled in."""
        return self.figure(name).caption.format(**self.quantities)


def quantities(*items: Quantity) -> dict[str, Quantity]:
    """``{q.name: q}`` in the order given."""
    return {q.name: q for q in items}
