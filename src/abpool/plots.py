"""Figures that show what the posterior says: each function returns a matplotlib ``Figure``.

Figures are built with the object-oriented API on an Agg canvas, so nothing
here touches pyplot's global state, opens a window or depends on the user's
backend; save them with ``fig.savefig(...)`` or let a notebook display them.
matplotlib (and ArviZ) are imported inside the functions so that
``import abpool`` stays light.

Functions accept one result, or several as a mapping ``{label: result}`` (the
article's scenarios, say) where overlaying them tells the story:

* :func:`plot_posterior` — density of a variant's rate, grand rate dashed;
* :func:`plot_boxplots` — every variant's posterior rate, scenarios side by side;
* :func:`plot_shrinkage` — observed rate → pooled estimate, marker size by trials;
* :func:`plot_prob_greater` — heat map of ``P(row beats column)``;
* :func:`plot_segments_forest` — per-segment control/treatment rates and lift;
* :func:`plot_segments_shrinkage` — each segment's observed lift → its pooled estimate;
* :func:`plot_convergence` and :func:`convergence_table` — rank plots, R-hat and ESS of MCMC fits.

Examples
--------
>>> import abpool
>>> from abpool import datasets, plots
>>> fits = {label: abpool.analyze_variants(frame, seed=1)
...         for label, frame in datasets.article_variants_scenarios().items()}
>>> fig = plots.plot_posterior(fits, "A")
>>> [line.get_linestyle() for line in fig.axes[0].lines]
['-', '--', '-', '--']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from abpool.errors import InvalidArgumentError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from abpool.results import VariantsResult

# Colour-blind-safe palette (Okabe-Ito); scenarios and arms keep one colour across figures.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# Densities are drawn from a strided subset on a few hundred points: more only
# slows the kernel estimate and swells the SVG without changing the curve visibly.
MAX_KDE_DRAWS = 2_000
KDE_POINTS = 300
# Heat-map cells carry their percentage only while they are large enough to read.
MAX_ANNOTATED_VARIANTS = 12
FOREST_COLUMNS = (
    "segment",
    "arm",
    "control_rate",
    "control_rate_ci_low",
    "control_rate_ci_high",
    "treatment_rate",
    "treatment_rate_ci_low",
    "treatment_rate_ci_high",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "prob_better",
)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _scenarios(results: Any) -> dict[str, Any]:
    """Normalise one result or a ``{label: result}`` mapping to a non-empty dict."""
    pairs = results.items() if isinstance(results, Mapping) else [("", results)]
    scenarios = {str(label): res for label, res in pairs}
    if not scenarios:
        raise InvalidArgumentError("no results to plot: pass a result or a non-empty {label: result} mapping")
    for label, res in scenarios.items():
        if not (hasattr(res, "draws") and hasattr(res, "names")):
            name = f" {label!r}" if label else ""
            raise InvalidArgumentError(
                f"result{name} is a {type(res).__name__}, not a variants result; pass what analyze_variants returns"
            )
    return scenarios


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kernel density on ``grid``, reflected at 0 and 1 so rates near a bound are not smeared past it."""
    from scipy.stats import gaussian_kde

    step = max(1, values.size // MAX_KDE_DRAWS)
    sample = values[::step]
    if np.ptp(sample) == 0:
        return np.zeros_like(grid)
    kde = gaussian_kde(sample)
    return kde(grid) + kde(-grid) + kde(2.0 - grid)


def plot_posterior(results: Any, variant: str | int | Sequence[str | int] | None = None) -> Figure:
    """Posterior density of a variant's rate, with the grand rate as a dashed line.

    Parameters
    ----------
    results : VariantsResult or mapping of str to VariantsResult
        One fit, or several scenarios to overlay (the article's "A with 100
        trials" and "A with 10 trials").
    variant : str, int or sequence of them, optional
        Variant(s) to draw. Default: every variant for one result, the first
        variant when scenarios are overlaid.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: a solid density line per (scenario, variant) and a dashed
        vertical line at each scenario's grand rate (all successes / all trials).

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=1)
    >>> fig = plot_posterior(res)
    >>> len(fig.axes[0].lines)  # two densities and the grand rate
    3
    """
    scenarios = _scenarios(results)
    if variant is None:
        first = next(iter(scenarios.values()))
        chosen: list[str | int] = list(first.names) if len(scenarios) == 1 else [0]
    elif isinstance(variant, str | int | np.integer):
        chosen = [variant]
    else:
        chosen = list(variant)
    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    low, high = 1.0, 0.0
    for res in scenarios.values():
        q_low, q_high = np.quantile(res.draws[:, [res._index(v) for v in chosen]], [0.0005, 0.9995])
        low, high = min(low, q_low, res.grand_rate), max(high, q_high, res.grand_rate)
    pad = 0.08 * max(high - low, 0.02)
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    grid = np.linspace(low, high, KDE_POINTS)
    colour = 0
    for s, (label, res) in enumerate(scenarios.items()):
        for v in chosen:
            j = res._index(v)
            values = res.draws[:, j]
            density = _density(values, grid)
            name = res.names[j]
            text = f"{name} ({res.trials[j]:,} trials)"
            # A scenario's label already names what changes ("A with 10 trials").
            line_label = (label if len(chosen) == 1 else f"{label}: {name}") if label else text
            ax.plot(grid, density, color=_colour(colour), linewidth=2, label=line_label)
            ax.fill_between(grid, density, color=_colour(colour), alpha=0.12, linewidth=0)
            colour += 1
        grand_label = f"grand rate{f' ({label})' if label else ''} = {res.grand_rate:.3f}"
        scenario_colour = _colour(s * len(chosen)) if len(scenarios) > 1 else "0.25"
        ax.axvline(res.grand_rate, color=scenario_colour, linestyle="--", linewidth=1.4, label=grand_label)
    ax.set_xlim(low, high)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("rate")
    ax.set_ylabel("posterior density")
    first = next(iter(scenarios.values()))
    ax.set_title(f"Posterior of the rate: {', '.join(first.names[first._index(v)] for v in chosen)}", loc="left")
    ax.legend(frameon=False, fontsize="small")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_boxplots(results: Any) -> Figure:
    """Boxplots of every variant's posterior rate, scenarios side by side.

    The box spans the interquartile range, the whiskers the credible interval
    of the (first) result's level, e.g. 2.5%–97.5%; no outlier points.

    Parameters
    ----------
    results : VariantsResult or mapping of str to VariantsResult
        One fit, or several scenarios to compare.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with a box per (variant, scenario).

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55], trials=[100] * 3, seed=1)
    >>> len(plot_boxplots(res).axes[0].patches)
    3
    """
    from matplotlib.patches import Patch

    scenarios = _scenarios(results)
    names: list[str] = list(dict.fromkeys(n for res in scenarios.values() for n in res.names))
    level = next(iter(scenarios.values())).ci
    tail = 100.0 * (1.0 - level) / 2.0
    n_scen = len(scenarios)
    width = 0.8 / n_scen
    fig = _figure(max(5.0, 1.1 * len(names) * max(1, n_scen) ** 0.5 + 2.0), 3.8)
    ax = fig.add_subplot()
    handles = []
    for s, (label, res) in enumerate(scenarios.items()):
        present = [n for n in names if n in res.names]
        data = [res.draws[:, res.names.index(n)] for n in present]
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
            box.set_facecolor(_colour(s))
            box.set_alpha(0.75)
        handles.append(Patch(facecolor=_colour(s), alpha=0.75, label=label or "posterior"))
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("variant")
    ax.set_ylabel("rate")
    ax.set_title(f"Posterior rates (box: 50%, whiskers: {level:.0%} interval)", loc="left")
    if n_scen > 1:
        ax.legend(handles=handles, frameon=False, fontsize="small")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def shrinkage_panel(
    ax: Axes,
    frame: pd.DataFrame,
    grand_rate: float,
    *,
    max_trials: float | None = None,
    reference_label: str = "grand rate",
    observed_label: str = "observed rate",
) -> None:
    """Draw one shrinkage panel on ``ax`` from a table (shared by variants and segments).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes to draw on.
    frame : pandas.DataFrame
        One row per group, columns ``label``, ``trials``, ``observed_rate``,
        ``estimate`` (pooled posterior mean), ``ci_low`` and ``ci_high``.
    grand_rate : float
        Drawn as a dashed vertical line.
    max_trials : float, optional
        Trials that get the largest marker (default: this table's maximum), so
        several panels can share one size scale.
    reference_label : str
        Legend name of the dashed line.
    observed_label : str
        Legend name of the hollow markers.
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
    ax.axvline(grand_rate, color="0.25", linestyle="--", linewidth=1.2, label=f"{reference_label} {grand_rate:.3f}")
    ax.set_yticks(y, [f"{label}  (n={int(n):,})" for label, n in zip(frame["label"], trials, strict=True)])
    ax.set_ylim(-0.7, rows - 0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", alpha=0.3)


def plot_shrinkage(results: Any) -> Figure:
    """Shrinkage: each variant's observed rate → its pooled estimate.

    Hollow markers are observed rates, filled ones posterior means, arrows the
    move toward the grand rate (dashed); the grey bar is the credible interval.
    Marker area grows with trials (one scale across panels), so small variants
    are visibly the ones pulled furthest.

    Parameters
    ----------
    results : VariantsResult or mapping of str to VariantsResult
        One panel per result, stacked and sharing the rate axis.

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
    scenarios = _scenarios(results)
    biggest = max(float(res.trials.max()) for res in scenarios.values())
    rows = sum(len(res.names) for res in scenarios.values())
    fig = _figure(7.0, 1.0 + 0.42 * rows + 0.5 * len(scenarios))
    axes = fig.subplots(len(scenarios), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, res) in zip(axes, scenarios.items(), strict=True):
        summary = res.summary()
        frame = pd.DataFrame(
            {
                "label": summary["variant"],
                "trials": summary["trials"],
                "observed_rate": summary["observed_rate"],
                "estimate": summary["mean"],
                "ci_low": summary["ci_low"],
                "ci_high": summary["ci_high"],
            }
        )
        shrinkage_panel(ax, frame, res.grand_rate, max_trials=biggest)
        if label:
            ax.set_title(label, loc="left", fontsize="medium")
    handles, labels = axes[0].get_legend_handles_labels()
    # Below the panels, where it can hide no marker; "grand rate 0.487" differs per panel, so say it generically.
    labels = ["grand rate" if text.startswith("grand rate") else text for text in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False, fontsize="small", markerscale=0.6)
    axes[-1].set_xlabel("rate")
    return fig


def plot_prob_greater(result: VariantsResult) -> Figure:
    """Heat map of ``P(row beats column)`` for every pair of variants.

    Cells carry their percentage while there are at most 12 variants; the
    diagonal (a variant against itself) is left blank.

    Parameters
    ----------
    result : VariantsResult

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
    (result,) = _scenarios(result).values()
    matrix = result.prob_greater_matrix()
    names = list(matrix.index)
    n = len(names)
    values = np.ma.masked_array(matrix.to_numpy(), mask=np.eye(n, dtype=bool))
    side = min(9.0, 2.5 + 0.55 * n)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu", vmin=0.0, vmax=1.0, interpolation="nearest")
    if n <= MAX_ANNOTATED_VARIANTS:
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                p = values[i, j]
                text = ">99.9%" if p > 0.999 else "<0.1%" if p < 0.001 else f"{p:.1%}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if abs(p - 0.5) > 0.3 else "black",
                )
    if n <= 40:
        ax.set_xticks(range(n), names, rotation=0 if n <= 12 else 90)
        ax.set_yticks(range(n), names)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title("P(row beats column)", loc="left")
    fig.colorbar(image, ax=ax, shrink=0.8, label="probability")
    return fig


def plot_segments_forest(summary: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Forest plot of per-segment control and treatment rates, and of the lift.

    Left: control (hollow) and treatment (filled) rates with credible intervals
    — the article's ``a_inv`` and ``fin``. Right: the lift with its interval,
    zero dashed, and ``P(treatment better)`` written beside each row.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per (segment, treatment arm) with columns ``segment``, ``arm``,
        ``control_rate``, ``control_rate_ci_low``, ``control_rate_ci_high``,
        ``treatment_rate``, ``treatment_rate_ci_low``, ``treatment_rate_ci_high``,
        ``lift``, ``lift_ci_low``, ``lift_ci_high`` and ``prob_better``.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: two error-bar series on the left, one on the right.

    Examples
    --------
    >>> import pandas as pd
    >>> row = dict(segment="Canada", arm="1", control_rate=0.3, control_rate_ci_low=0.22,
    ...            control_rate_ci_high=0.39, treatment_rate=0.5, treatment_rate_ci_low=0.4,
    ...            treatment_rate_ci_high=0.6, lift=0.2, lift_ci_low=0.07, lift_ci_high=0.33,
    ...            prob_better=0.998)
    >>> fig = plot_segments_forest(pd.DataFrame([row]))
    >>> [len(ax.containers) for ax in fig.axes]
    [2, 1]
    """
    if not isinstance(summary, pd.DataFrame):
        raise InvalidArgumentError(f"plot_segments_forest needs a DataFrame, got {type(summary).__name__}")
    missing = [c for c in FOREST_COLUMNS if c not in summary.columns]
    if missing:
        raise InvalidArgumentError(
            f"segments summary lacks column(s) {', '.join(missing)}; pass SegmentsResult.summary()"
        )
    if summary.empty:
        raise InvalidArgumentError("segments summary has no rows to plot")
    frame = summary.reset_index(drop=True)
    several_arms = frame["arm"].nunique() > 1
    labels = [f"{s} · {a}" if several_arms else str(s) for s, a in zip(frame["segment"], frame["arm"], strict=True)]
    y = np.arange(len(frame))[::-1].astype(float)
    fig = _figure(9.0, 1.4 + 0.55 * len(frame))
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.1, 1.0]})

    def _err(prefix: str) -> np.ndarray:
        centre = frame[prefix].to_numpy(dtype=float)
        return np.vstack([centre - frame[f"{prefix}_ci_low"], frame[f"{prefix}_ci_high"] - centre])

    left.errorbar(
        frame["control_rate"],
        y + 0.15,
        xerr=_err("control_rate"),
        fmt="o",
        color="0.35",
        markerfacecolor="white",
        capsize=3,
        label="control",
    )
    left.errorbar(
        frame["treatment_rate"],
        y - 0.15,
        xerr=_err("treatment_rate"),
        fmt="o",
        color="#0072B2",
        capsize=3,
        label="treatment",
    )
    left.set_yticks(y, labels)
    left.set_xlabel("rate")
    left.set_title("Rates by segment", loc="left", fontsize="medium")
    left.legend(frameon=False, fontsize="small")
    right.errorbar(frame["lift"], y, xerr=_err("lift"), fmt="D", color="#D55E00", capsize=3)
    right.axvline(0.0, color="0.25", linestyle="--", linewidth=1.0)
    for k, p in enumerate(frame["prob_better"].to_numpy(dtype=float)):
        text = ">99.9%" if p > 0.999 else "<0.1%" if p < 0.001 else f"{p:.1%}"
        right.annotate(
            f"P(better) {text}",
            (1.0, y[k]),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
    right.set_xlabel("lift (treatment − control)")
    right.set_title("Lift", loc="left", fontsize="medium")
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", alpha=0.3)
    left.set_ylim(-0.7, len(frame) - 0.3)
    if title:
        fig.suptitle(title, x=0.02, ha="left")
    return fig


def _segments_convergence_data(result: Any, max_rates: int) -> Any:
    import arviz as az

    posterior = result.idata.posterior
    # The population parameters first (their funnel is where trouble shows), then a few segments' effects.
    dataset = posterior[["mu_a", "sigma_a", "mu_b", "sigma_b"]].assign(
        b=posterior["b"].isel(segment=slice(0, max_rates))
    )
    return az.convert_to_inference_data(dataset)


def _convergence_data(result: VariantsResult, max_rates: int) -> Any:
    if hasattr(result, "layout"):
        return _segments_convergence_data(result, max_rates)
    if result.diagnostics.chains < 2 or result.engine == "exact":
        raise InvalidArgumentError(
            f"convergence plots need MCMC chains, but this result's {result.engine!r} engine gives independent "
            "draws (nothing to converge); fit with engine='mcmc' to cross-check"
        )
    import arviz as az

    posterior = result.idata.posterior
    # Rank plots do not change under monotone transforms, but the density of
    # log(a+b) is readable where that of a+b is one spike and a long tail.
    dataset = posterior[["population_mean"]].assign(
        log_concentration=np.log(posterior["concentration"]),
        rate=posterior["rate"].isel(variant=slice(0, max_rates)),
    )
    return az.convert_to_inference_data(dataset)


def convergence_table(result: VariantsResult, *, max_rates: int = 50) -> pd.DataFrame:
    """R-hat, bulk and tail ESS and Monte Carlo standard errors of an MCMC fit (ArviZ).

    Rows: the population mean ``a/(a+b)``, ``log(a+b)`` and the first
    ``max_rates`` variants' rates.

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=1)
    >>> convergence_table(res)
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: convergence plots need MCMC chains, ...
    """
    import warnings

    import arviz as az

    data = _convergence_data(result, max_rates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(data, kind="diagnostics", round_to="none")
    return table[["r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"]]


def plot_convergence(result: VariantsResult, *, max_rates: int = 6) -> Figure:
    """Per-chain densities (left) and rank plots (right) of an MCMC fit.

    Well-mixed chains have overlapping densities and flat rank histograms.
    The exact engine's draws are independent, so it has nothing to check
    here; this raises for such results.

    Parameters
    ----------
    result : VariantsResult
        A fit with ``engine="mcmc"``.
    max_rates : int
        Rates of at most this many variants are drawn (after ``a/(a+b)`` and ``log(a+b)``).

    Returns
    -------
    matplotlib.figure.Figure
        One row per quantity, two axes per row.
    """
    import warnings

    import arviz as az

    data = _convergence_data(result, max_rates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(data, kind="diagnostics", round_to="none")
    rows = len(table)
    fig = _figure(8.0, 1.6 * rows + 0.6)
    axes = fig.subplots(rows, 2, squeeze=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        az.plot_trace(data, compact=False, kind="rank_bars", axes=axes, show=False)
    for (name, row), (density_ax, rank_ax) in zip(table.iterrows(), axes, strict=True):
        density_ax.set_title(f"{name}: density per chain", loc="left", fontsize="small")
        rank_ax.set_title(f"ranks  R-hat {row['r_hat']:.3f}, ESS {row['ess_bulk']:.0f}", loc="left", fontsize="small")
        rank_ax.set_xlabel("rank (all chains)", fontsize="small")
        rank_ax.set_ylabel("chain", fontsize="small")
        for ax in (density_ax, rank_ax):
            ax.set_title("")  # ArviZ's centred title; ours, on the left, carries the diagnostics
            ax.tick_params(labelsize="small")
    fig.suptitle(
        f"Convergence: {result.diagnostics.chains} chains × {result.diagnostics.draws:,} draws", x=0.02, ha="left"
    )
    return fig


def plot_segments_shrinkage(result: Any) -> Figure:
    """Shrinkage of each segment's lift: observed lift → pooled estimate, marker size by users.

    The dashed line is the overall observed lift (all treatment successes over
    all treatment users minus the same for the control). Segments with few
    users are pulled toward it; large ones keep their own estimate.

    Parameters
    ----------
    result : SegmentsResult

    Returns
    -------
    matplotlib.figure.Figure
        One panel per treatment arm.
    """
    summary = result.summary()
    arms = list(dict.fromkeys(summary["arm"]))
    fig = _figure(8.0, 1.2 + 0.45 * len(summary))
    axes = fig.subplots(len(arms), 1, squeeze=False)[:, 0]
    biggest = float((summary["trials_control"] + summary["trials_treatment"]).max())
    for ax, arm in zip(axes, arms, strict=True):
        rows = summary[summary["arm"] == arm]
        treated = rows["successes_treatment"].sum() / max(rows["trials_treatment"].sum(), 1)
        control = rows["successes_control"].sum() / max(rows["trials_control"].sum(), 1)
        frame = pd.DataFrame(
            {
                "label": rows["segment"].to_numpy(),
                "trials": (rows["trials_control"] + rows["trials_treatment"]).to_numpy(),
                "observed_rate": (rows["observed_treatment_rate"] - rows["observed_control_rate"]).to_numpy(),
                "estimate": rows["lift"].to_numpy(),
                "ci_low": rows["lift_ci_low"].to_numpy(),
                "ci_high": rows["lift_ci_high"].to_numpy(),
            }
        ).dropna(subset=["observed_rate"])
        shrinkage_panel(
            ax,
            frame,
            float(treated - control),
            max_trials=biggest,
            reference_label="overall lift",
            observed_label="observed lift",
        )
        ax.set_xlabel(f"lift of {arm} (treatment − control)")
    # Outside the axes: inside, the legend would hide the markers it explains.
    axes[0].legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Shrinkage of each segment's lift toward the overall lift", x=0.02, ha="left")
    return fig
