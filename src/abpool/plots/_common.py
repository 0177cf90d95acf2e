"""What every figure shares: a pyplot-free canvas, the palette, densities, and the shrinkage panel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from abpool.errors import InvalidArgumentError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Colour-blind-safe palette (Okabe-Ito); scenarios and arms keep one colour across figures.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# Densities are drawn from a strided subset on a few hundred points: more only
# slows the kernel estimate and swells the SVG without changing the curve visibly.
MAX_KDE_DRAWS = 2_000
KDE_POINTS = 300


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas: no pyplot state, no window, whatever the user's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def literal(text: Any) -> str:
    """User text as matplotlib draws it literally: ``$`` would otherwise start mathtext; control characters show."""
    from abpool._format import display

    return display(text).replace("$", r"\$")


def scenarios(results: Any) -> dict[str, Any]:
    """Normalise one result or a ``{label: result}`` mapping to a non-empty dict of results."""
    from abpool.result import Result

    pairs = results.items() if isinstance(results, Mapping) else [("", results)]
    found = {str(label): res for label, res in pairs}
    if not found:
        raise InvalidArgumentError("results must be a result or a non-empty {label: result} mapping, got nothing")
    for label, res in found.items():
        if not isinstance(res, Result):
            name = f" {label!r}" if label else ""
            raise InvalidArgumentError(
                f"result{name} must be an abpool result (what analyze returns), got a {type(res).__name__}"
            )
    return found


def colour(index: int) -> str:
    """The palette's ``index``-th colour, cycling."""
    return PALETTE[index % len(PALETTE)]


def density(values: np.ndarray, grid: np.ndarray, *, bounded: bool = True) -> np.ndarray:
    """Kernel density on ``grid``; for rates (``bounded``) reflected at 0 and 1 so mass near a bound stays inside."""
    from scipy.stats import gaussian_kde

    step = max(1, values.size // MAX_KDE_DRAWS)
    sample = values[::step]
    if np.ptp(sample) == 0:
        return np.zeros_like(grid)
    kde = gaussian_kde(sample)
    if not bounded:
        return kde(grid)
    return kde(grid) + kde(-grid) + kde(2.0 - grid)


def percent_label(p: float) -> str:
    """A probability as printed inside a figure (the report's convention)."""
    from abpool._format import pct

    return pct(p)


def shrinkage_panel(
    ax: Axes,
    frame: pd.DataFrame,
    reference: float,
    *,
    max_trials: float | None = None,
    reference_label: str = "grand rate",
    observed_label: str = "observed rate",
) -> None:
    """Draw one shrinkage panel on ``ax`` from a table.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on.
    frame : pandas.DataFrame
        One row per group, columns ``label``, ``trials``, ``observed_rate``,
        ``estimate`` (pooled posterior median), ``ci_low`` and ``ci_high``.
    reference : float
        Drawn as a dashed vertical line (the grand rate, or the overall lift).
    max_trials : float, optional
        Trials that get the largest marker (default: this table's maximum), so
        several panels can share one size scale.
    reference_label, observed_label : str
        Legend names of the dashed line and of the hollow markers.
    """
    missing = [c for c in ("label", "trials", "observed_rate", "estimate", "ci_low", "ci_high") if c not in frame]
    if missing:
        raise InvalidArgumentError(f"shrinkage table lacks column(s) {', '.join(missing)}")
    from matplotlib.patches import FancyArrowPatch

    rows = len(frame)
    y = np.arange(rows)[::-1].astype(float)
    trials = frame["trials"].to_numpy(dtype=float)
    biggest = float(max_trials if max_trials is not None else trials.max())
    # Marker area grows with trials: large groups are the ones allowed to keep their own estimate.
    sizes = 25.0 + 275.0 * trials / biggest
    observed = frame["observed_rate"].to_numpy(dtype=float)
    estimate = frame["estimate"].to_numpy(dtype=float)
    ax.hlines(y, frame["ci_low"], frame["ci_high"], color="0.55", linewidth=2.2, alpha=0.6, label="credible interval")
    for k in range(rows):
        ax.add_patch(
            FancyArrowPatch(
                (observed[k], y[k]),
                (estimate[k], y[k]),
                arrowstyle="-|>",
                mutation_scale=12,
                color="#D55E00",
                linewidth=1.4,
                shrinkA=0,
                shrinkB=3,
                zorder=3,
            )
        )
    ax.scatter(
        observed, y, s=sizes, facecolors="white", edgecolors="#D55E00", linewidths=1.6, zorder=4, label=observed_label
    )
    ax.scatter(estimate, y, s=sizes, color="#0072B2", zorder=5, label="pooled estimate")
    ax.axvline(reference, color="0.25", linestyle="--", linewidth=1.2, label=f"{reference_label} {reference:.3g}")
    ax.set_yticks(y, [f"{literal(label)}  (n={int(n):,})" for label, n in zip(frame["label"], trials, strict=True)])
    ax.set_ylim(-0.7, rows - 0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", alpha=0.3)
