"""Convergence of MCMC fits: per-chain densities, rank plots, R-hat and ESS (ArviZ)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from abpool.errors import InvalidArgumentError
from abpool.plots._common import new_figure, scenarios

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from abpool.result import Result


def _chains(result: Result, max_rates: int) -> Any:
    import arviz as az

    dataset = result.convergence_dataset(max_rates)
    if dataset is None or result.diagnostics.chains < 2:
        raise InvalidArgumentError(
            f"result must come from an MCMC fit with chains to check, got one of {result.diagnostics.draws:,} "
            "independent draws (nothing to converge); fit with engine='mcmc' to cross-check"
        )
    return az.convert_to_inference_data(dataset)


def convergence_table(result: Result, *, max_rates: int = 50) -> pd.DataFrame:
    """R-hat, bulk and tail ESS and Monte Carlo standard errors of the quantities an MCMC fit checks.

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=1)
    >>> convergence_table(res)
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: result must come from an MCMC fit with chains to check, ...
    """
    import arviz as az

    (result,) = scenarios(result).values()
    data = _chains(result, max_rates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(data, kind="diagnostics", round_to="none")
    return table[["r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"]]


def plot_convergence(result: Result, *, max_rates: int = 6) -> Figure:
    """Per-chain densities (left) and rank plots (right) of an MCMC fit.

    Well-mixed chains have overlapping densities and flat rank histograms.
    Independent draws (the exact engine) have nothing to check here; this
    raises for them.

    Parameters
    ----------
    result : Result
        An MCMC fit.
    max_rates : int
        At most this many arms' rates (variants) or segments' effects are drawn
        after the population parameters.

    Returns
    -------
    matplotlib.figure.Figure
        One row per quantity, two axes per row.
    """
    import arviz as az

    (result,) = scenarios(result).values()
    data = _chains(result, max_rates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(data, kind="diagnostics", round_to="none")
    rows = len(table)
    fig = new_figure(8.0, 1.6 * rows + 0.6)
    axes = fig.subplots(rows, 2, squeeze=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        az.plot_trace(data, compact=False, kind="rank_bars", axes=axes, show=False)
    for (name, row), (density_ax, rank_ax) in zip(table.iterrows(), axes, strict=True):
        label = str(name).replace("$", r"\$")
        density_ax.set_title(f"{label}: density per chain", loc="left", fontsize="small")
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
