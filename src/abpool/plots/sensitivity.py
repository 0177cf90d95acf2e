"""The prior-sensitivity figure: each lift under each prior of the panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from abpool.plots._common import colour, literal, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Beyond this many rows the figure stops being readable; the tables and JSON keep everything.
MAX_ROWS = 25


def plot_sensitivity(found: dict[str, Any], *, limit: int = MAX_ROWS) -> Figure:
    """One row per treatment arm (per segment), a point with its interval per prior: the lift in pp.

    Zero is dashed and the threshold of caring (±) dotted, so a reader sees at
    once whether an interval's side of a decision changes with the prior. The
    no-pooling reference is drawn hollow and grey: shown, not counted.

    Parameters
    ----------
    found : dict
        A sensitivity check as saved (:meth:`abpool.sensitivity.Sensitivity.to_dict`).
    limit : int
        Rows drawn at most (the first ones).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, seed=1)
    >>> fig = plot_sensitivity(res.sensitivity().to_dict())
    >>> len(fig.axes[0].containers)  # one error-bar series per prior
    5
    """
    from abpool.metric import Metric

    metric = Metric.from_description(found.get("metric"))
    scale = metric.difference_scale
    panel = found["panel"]
    segmented = bool(found["segmented"])
    treated = [row for row in found["answers"] if not row["is_control"]]
    keys = list(dict.fromkeys((row["segment"], row["arm"]) for row in treated))[:limit]
    several_arms = len({arm for _, arm in keys}) > 1
    labels = [
        (f"{literal(segment)} · {literal(arm)}" if several_arms else literal(segment)) if segmented else literal(arm)
        for segment, arm in keys
    ]
    by_key = {(row["prior"], row["segment"], row["arm"]): row for row in treated}
    y = np.arange(len(keys))[::-1].astype(float)
    fig = new_figure(8.5, 1.6 + (0.1 + 0.15 * len(panel)) * len(keys))
    ax = fig.subplots()
    offsets = np.linspace(0.3, -0.3, len(panel)) if len(panel) > 1 else np.zeros(1)
    for index, (entry, offset) in enumerate(zip(panel, offsets, strict=True)):
        rows = [by_key[(entry["label"], segment, arm)] for segment, arm in keys]
        centre = scale * np.array([row["lift"] for row in rows], dtype=float)
        low = scale * np.array([row["lift_ci_low"] for row in rows], dtype=float)
        high = scale * np.array([row["lift_ci_high"] for row in rows], dtype=float)
        reference = not entry["counted"]
        tint = "0.55" if reference else colour(index)
        ax.errorbar(
            centre,
            y + offset,
            xerr=np.vstack([centre - low, high - centre]),
            fmt="o",
            color=tint,
            markerfacecolor="white" if reference else tint,
            capsize=2,
            markersize=4,
            label=literal(entry["label"] + (" (reference, not counted)" if reference else "")),
        )
    threshold = scale * float(found["threshold"])
    ax.axvline(0.0, color="0.25", linestyle="--", linewidth=1.0)
    for side in (-threshold, threshold):
        ax.axvline(side, color="0.45", linestyle=":", linewidth=1.0)
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.7, len(keys) - 0.3)
    unit = "percentage points" if metric.kind == "binary" else metric.label
    ax.set_xlabel(
        f"lift vs {literal(found['control'])}, {unit} (dotted: ±{metric.amount(float(found['threshold']))}, "
        "the threshold of caring)"
    )
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
