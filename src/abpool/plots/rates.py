"""Figures of the arms' rates and lifts, drawn from any result through the contract."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from abpool.plots._common import (
    KDE_POINTS,
    colour,
    density,
    literal,
    new_figure,
    percent_label,
    scenarios,
    shrinkage_panel,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from abpool.result import Result

# Heat-map cells carry their percentage only while they are large enough to read.
MAX_ANNOTATED_ARMS = 12
MAX_LABELLED_ARMS = 40


def _where(segment: Any) -> str:
    return "" if segment is None else f" in {literal(segment)}"


def plot_posterior(results: Any, arm: Any = None, *, segment: str | int | None = None) -> Figure:
    """Posterior density of arms' rates, with the grand rate as a dashed line.

    Parameters
    ----------
    results : Result or mapping of str to Result
        One fit, or several scenarios to overlay (the article's "A with 100
        trials" and "A with 10 trials").
    arm : str, int or sequence of them, optional
        Arm(s) to draw. Default: every arm for one result, the first arm when
        scenarios are overlaid.
    segment : str or int, optional
        For segmented results, the segment whose arms are drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a solid density line per (scenario, arm) and a dashed
        vertical line at each scenario's grand rate (all successes / all trials).

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=1)
    >>> fig = plot_posterior(res)
    >>> len(fig.axes[0].lines)  # two densities and the grand rate
    3
    """
    found = scenarios(results)
    first = next(iter(found.values()))
    if arm is None:
        chosen: list[Any] = list(first.arms) if len(found) == 1 else [0]
    elif isinstance(arm, str | int | np.integer):
        chosen = [arm]
    else:
        chosen = list(arm)
    fig = new_figure(7.0, 3.8)
    ax = fig.add_subplot()
    metric = first.metric
    rates = metric.kind == "binary"
    low, high = math.inf, -math.inf
    for res in found.values():
        draws = res.rate_draws(segment)[:, [res.arm_index(a) for a in chosen]]
        q_low, q_high = np.quantile(draws, [0.0005, 0.9995])
        grand = res.grand_value(segment)
        low, high = min(low, q_low, grand), max(high, q_high, grand)
    pad = 0.08 * max(high - low, 0.02 if rates else 1e-12)
    low, high = (max(0.0, low - pad), min(1.0, high + pad)) if rates else (low - pad, high + pad)
    grid = np.linspace(low, high, KDE_POINTS)
    index = 0
    users = "trials" if rates else "users"
    for s, (label, res) in enumerate(found.items()):
        sizes = res.estimates()
        sizes = sizes if segment is None else sizes[sizes["segment"] == res.segments[res.segment_index(segment)]]
        trials = sizes["trials"].to_numpy()
        for a in chosen:
            j = res.arm_index(a)
            curve = density(res.rate_draws(segment)[:, j], grid, bounded=rates)
            name = literal(res.arms[j])
            text = f"{name} ({int(trials[j]):,} {users})"
            # A scenario's label already names what changes ("A with 10 trials").
            line_label = (literal(label) if len(chosen) == 1 else f"{literal(label)}: {name}") if label else text
            ax.plot(grid, curve, color=colour(index), linewidth=2, label=line_label)
            ax.fill_between(grid, curve, color=colour(index), alpha=0.12, linewidth=0)
            index += 1
        grand = res.grand_value(segment)
        grand_label = f"grand {metric.noun}{f' ({literal(label)})' if label else ''} = {metric.value(grand)}"
        scenario_colour = colour(s * len(chosen)) if len(found) > 1 else "0.25"
        ax.axvline(grand, color=scenario_colour, linestyle="--", linewidth=1.4, label=grand_label)
    ax.set_xlim(low, high)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(metric.label)
    ax.set_ylabel("posterior density")
    names = ", ".join(literal(first.arms[first.arm_index(a)]) for a in chosen)
    ax.set_title(f"Posterior of the {metric.noun}: {names}{_where(segment)}", loc="left")
    ax.legend(frameon=False, fontsize="small")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_boxplots(results: Any, *, segment: str | int | None = None) -> Figure:
    """Boxplots of every arm's posterior rate, scenarios side by side.

    The box spans the interquartile range, the whiskers the credible interval
    at the (first) result's level; no outlier points.

    Parameters
    ----------
    results : Result or mapping of str to Result
        One fit, or several scenarios to compare.
    segment : str or int, optional
        For segmented results, the segment whose arms are drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with a box per (arm, scenario).

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, seed=1)
    >>> len(plot_boxplots(res).axes[0].patches)
    3
    """
    from matplotlib.patches import Patch

    found = scenarios(results)
    names: list[str] = list(dict.fromkeys(n for res in found.values() for n in res.arms))
    level = next(iter(found.values())).ci
    tail = 100.0 * (1.0 - level) / 2.0
    n_scen = len(found)
    width = 0.8 / n_scen
    fig = new_figure(max(5.0, 1.1 * len(names) * max(1, n_scen) ** 0.5 + 2.0), 3.8)
    ax = fig.add_subplot()
    handles = []
    for s, (label, res) in enumerate(found.items()):
        present = [n for n in names if n in res.arms]
        draws = res.rate_draws(segment)
        data = [draws[:, res.arm_index(n)] for n in present]
        positions = [names.index(n) + (s - (n_scen - 1) / 2) * width for n in present]
        parts = ax.boxplot(
            data,
            positions=positions,
            widths=width * 0.85,
            whis=(tail, 100.0 - tail),
            showfliers=False,
            patch_artist=True,
            manage_ticks=False,
            medianprops={"color": "black", "linewidth": 1.2, "label": "_median"},
        )
        for box in parts["boxes"]:
            box.set_facecolor(colour(s))
            box.set_alpha(0.75)
        handles.append(Patch(facecolor=colour(s), alpha=0.75, label=literal(label) or "posterior"))
    ax.set_xticks(range(len(names)), [literal(n) for n in names])
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("arm")
    noun = next(iter(found.values())).metric.noun
    ax.set_ylabel(next(iter(found.values())).metric.label)
    ax.set_title(f"Posterior {noun}s{_where(segment)} (box: 50%, whiskers: {level:.0%} interval)", loc="left")
    if n_scen > 1:
        ax.legend(handles=handles, frameon=False, fontsize="small")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def first_metric(found: dict[str, Any]) -> Any:
    """The metric of the first scenario (scenarios compared in one figure measure the same thing)."""
    return next(iter(found.values())).metric


def _rate_shrinkage(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": summary["arm"],
            "trials": summary["trials"],
            "observed_rate": summary["observed_rate"],
            "estimate": summary["rate"],
            "ci_low": summary["rate_ci_low"],
            "ci_high": summary["rate_ci_high"],
        }
    )


def _lift_shrinkage(summary: pd.DataFrame, arm: str) -> tuple[pd.DataFrame, float]:
    """Each segment's observed lift of ``arm`` and its pooled estimate, and the overall observed lift."""
    controls = summary[summary["is_control"]].set_index("segment")
    rows = summary[summary["arm"] == arm].set_index("segment")
    control = controls.loc[rows.index]
    # In percentage points, the unit of the tables.
    frame = pd.DataFrame(
        {
            "label": rows.index.to_numpy(),
            "trials": (rows["trials"] + control["trials"]).to_numpy(),
            "observed_rate": 100 * (rows["observed_rate"] - control["observed_rate"]).to_numpy(),
            "estimate": 100 * rows["lift"].to_numpy(),
            "ci_low": 100 * rows["lift_ci_low"].to_numpy(),
            "ci_high": 100 * rows["lift_ci_high"].to_numpy(),
        }
    ).dropna(subset=["observed_rate"])
    treated = rows["successes"].sum() / max(rows["trials"].sum(), 1)
    untreated = control["successes"].sum() / max(control["trials"].sum(), 1)
    return frame, float(100 * (treated - untreated))


def plot_shrinkage(results: Any) -> Figure:
    """Shrinkage: each observed estimate → its pooled estimate, marker size by trials.

    Without segments, one row per arm: its observed rate (hollow) and posterior
    median (filled), the grand rate dashed. With segments, one panel per
    treatment arm and one row per segment: the lift observed in the segment
    alone and its pooled estimate, the overall observed lift dashed. The grey
    bar is the credible interval; marker area grows with trials (one scale
    across panels), so small groups are visibly the ones pulled furthest.

    Parameters
    ----------
    results : Result or mapping of str to Result
        One panel per result (per treatment arm when segmented), stacked.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[3, 50, 55, 60], trials=[10, 100, 100, 100], seed=1)
    >>> ax = plot_shrinkage(res).axes[0]
    >>> len(ax.patches), [len(c.get_offsets()) for c in ax.collections[1:]]
    (4, [4, 4])
    """
    found = scenarios(results)
    panels: list[tuple[str, pd.DataFrame, float, str, str]] = []
    for label, res in found.items():
        summary = res.estimates()
        if res.segmented:
            for arm in res.treatments:
                frame, overall = _lift_shrinkage(summary, arm)
                title = f"{literal(label)}: {literal(arm)}" if label else f"lift of {literal(arm)}"
                panels.append((title, frame, overall, "overall lift", "observed lift"))
        else:
            noun = res.metric.noun
            panels.append(
                (literal(label), _rate_shrinkage(summary), res.grand_value(), f"grand {noun}", f"observed {noun}")
            )
    biggest = max(float(frame["trials"].max()) for _, frame, _, _, _ in panels)
    rows = sum(len(frame) for _, frame, _, _, _ in panels)
    fig = new_figure(7.5, 1.0 + 0.42 * rows + 0.5 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, frame, reference, reference_label, observed_label) in zip(axes, panels, strict=True):
        shrinkage_panel(
            ax,
            frame,
            reference,
            max_trials=biggest,
            reference_label=reference_label,
            observed_label=observed_label,
        )
        if title:
            ax.set_title(title, loc="left", fontsize="medium")
    handles, labels = axes[0].get_legend_handles_labels()
    # Below the panels, where it can hide no marker; the reference value differs per panel, so say it generically.
    labels = [text.rsplit(" ", 1)[0] if text.startswith(("grand ", "overall lift")) else text for text in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False, fontsize="small", markerscale=0.6)
    lifts = any(res.segmented for res in found.values())
    axes[-1].set_xlabel("lift, percentage points (treatment − control)" if lifts else first_metric(found).label)
    return fig


def plot_prob_greater(result: Result, *, segment: str | int | None = None) -> Figure:
    """Heat map of ``P(row beats column)`` for every pair of arms (of ``segment``).

    Cells carry their percentage while there are at most 12 arms; the
    diagonal (an arm against itself) is left blank.

    Returns
    -------
    matplotlib.figure.Figure
        One image and a colour bar.

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, seed=1)
    >>> len(plot_prob_greater(res).axes[0].texts)  # 3 × 3 minus the diagonal
    6
    """
    (result,) = scenarios(result).values()
    matrix = result.prob_greater_matrix(segment)
    names = [literal(name) for name in matrix.index]
    n = len(names)
    values = np.ma.masked_array(matrix.to_numpy(), mask=np.eye(n, dtype=bool))
    side = min(9.0, 2.5 + 0.55 * n)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu", vmin=0.0, vmax=1.0, interpolation="nearest")
    if n <= MAX_ANNOTATED_ARMS:
        for i in range(n):
            for j in range(n):
                if i != j:
                    p = values[i, j]
                    ax.text(
                        j,
                        i,
                        percent_label(p),
                        ha="center",
                        va="center",
                        fontsize="small",
                        color="white" if abs(p - 0.5) > 0.3 else "black",
                    )
    if n <= MAX_LABELLED_ARMS:
        ax.set_xticks(range(n), names, rotation=0 if n <= MAX_ANNOTATED_ARMS else 90)
        ax.set_yticks(range(n), names)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(f"P(row beats column){_where(segment)}", loc="left")
    fig.colorbar(image, ax=ax, shrink=0.8, label="probability")
    return fig


def plot_forest(result: Result, *, rows: Sequence[int] | None = None) -> Figure:
    """Forest plot: each treatment's rate beside its control's, and its lift with ``P(beats control)``.

    One row per treatment arm (per segment and treatment arm when segmented).
    Left: the control's rate (hollow) and the treatment's (filled) with credible
    intervals — for segments the article's ``a_inv`` and ``fin``. Right: the
    lift in percentage points with its interval, zero dashed, and
    ``P(beats control)`` beside it.

    Parameters
    ----------
    result : Result
    rows : sequence of int, optional
        Positions (in the summary's treatment rows) to draw; default all.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: two error-bar series on the left, one on the right.

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, seed=1)
    >>> [len(ax.containers) for ax in plot_forest(res).axes]
    [2, 1]
    """
    (result,) = scenarios(result).values()
    summary = result.estimates()
    metric = result.metric
    key = "segment" if result.segmented else None
    controls = summary[summary["is_control"]]
    control_of = controls.set_index(key) if key else None
    frame = summary[~summary["is_control"]].reset_index(drop=True)
    if rows is not None:
        frame = frame.iloc[list(rows)].reset_index(drop=True)
    # Each treatment row against its own segment's control (the one control without segments).
    matched = control_of.loc[frame[key]] if key else pd.concat([controls] * len(frame), ignore_index=True)
    several_arms = len(result.treatments) > 1
    if key:
        labels = [
            f"{literal(s)} · {literal(a)}" if several_arms else literal(s)
            for s, a in zip(frame["segment"], frame["arm"], strict=True)
        ]
    else:
        labels = [literal(a) for a in frame["arm"]]
    y = np.arange(len(frame))[::-1].astype(float)
    fig = new_figure(9.0, 1.4 + 0.55 * len(frame))
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.1, 1.0]})

    def errors(table: pd.DataFrame, prefix: str) -> np.ndarray:
        centre = table[prefix].to_numpy(dtype=float)
        low = table[f"{prefix}_ci_low"].to_numpy(dtype=float)
        high = table[f"{prefix}_ci_high"].to_numpy(dtype=float)
        return np.vstack([centre - low, high - centre])

    left.errorbar(
        matched["rate"],
        y + 0.15,
        xerr=errors(matched, "rate"),
        fmt="o",
        color="0.35",
        markerfacecolor="white",
        capsize=3,
        label=f"control ({literal(result.control)})",
    )
    left.errorbar(
        frame["rate"], y - 0.15, xerr=errors(frame, "rate"), fmt="o", color="#0072B2", capsize=3, label="treatment"
    )
    left.set_yticks(y, labels)
    left.set_xlabel(metric.label)
    left.set_title(f"{metric.noun.capitalize()}s" + (" by segment" if key else ""), loc="left", fontsize="medium")
    left.legend(frameon=False, fontsize="small")
    # Lifts in the unit of the tables: percentage points for rates.
    scale = metric.difference_scale
    right.errorbar(scale * frame["lift"], y, xerr=scale * errors(frame, "lift"), fmt="D", color="#D55E00", capsize=3)
    right.axvline(0.0, color="0.25", linestyle="--", linewidth=1.0)
    for k, p in enumerate(frame["prob_beats_control"].to_numpy(dtype=float)):
        right.annotate(
            f"P(beats control) {percent_label(p)}",
            (1.0, y[k]),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
    right.set_xlabel("lift, percentage points" if metric.kind == "binary" else f"lift ({metric.label})")
    right.set_title("Lift", loc="left", fontsize="medium")
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", alpha=0.3)
    left.set_ylim(-0.7, len(frame) - 0.3)
    return fig
