"""Fitting the means model: :func:`analyze_means` from data, :func:`fit_means` from per-arm moments."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from abpool._validation import (
    check_chains,
    check_choice,
    check_draws_per_chain,
    check_exact_draws,
    check_int,
    check_level,
    check_optional,
    check_positive,
    check_seed,
    check_split,
)
from abpool._version import __version__
from abpool.continuous.grid import draw_given_tau, fit_tau_grid
from abpool.continuous.priors import ContinuousPrior, HalfCauchyPrior, HalfNormalPrior, get_continuous_prior
from abpool.data import DataSource, read_moments
from abpool.data.moments import ArmMoments
from abpool.decisions import choose_control
from abpool.diagnostics import independent_draws
from abpool.errors import ConvergenceWarning, InvalidArgumentError, InvalidDataError
from abpool.means.result import MeansResult
from abpool.result import check_on_unconverged

ENGINES = ("exact", "mcmc")
# Independent draws: 20,000 give Monte Carlo error ~0.003 on any probability (as the variants model).
EXACT_DRAWS = 20_000
MCMC_DRAWS = 2_000
# The default threshold of caring: this share of the grand mean (of the pooled standard deviation when
# the grand mean is 0), since a mean has no natural unit the way a rate's percentage point is one.
THRESHOLD_SHARE = 0.01
# The funnel between tau and the arm means near tau = 0 needs small steps; the model is small, so they are cheap.
TARGET_ACCEPT = 0.99


def default_prior(n_arms: int) -> ContinuousPrior:
    """The prior used when none is named: BDA3's flat prior on tau, or half-Cauchy below three arms.

    The flat prior gives an improper posterior with one or two arms (BDA3 §5.4),
    the commonest A/B test; there the proper half-Cauchy, scaled to the arms'
    standard errors, takes its place, and the report says so.

    Examples
    --------
    >>> default_prior(3).name, default_prior(2).name
    ('flat', 'half-cauchy')
    """
    return get_continuous_prior("flat" if n_arms >= 3 else "half-cauchy")


def default_threshold(moments: ArmMoments) -> float:
    """1% of the grand mean's size (of the pooled standard deviation when the grand mean is 0).

    Examples
    --------
    >>> import pandas as pd
    >>> from abpool.data.moments import load_moments
    >>> stats = pd.DataFrame({"arm": ["A", "B"], "n": [100, 300], "mean": [2.0, 4.0], "sd": [1.0, 1.0]})
    >>> default_threshold(load_moments(stats))
    0.035
    """
    table = moments.table
    scale = abs(moments.grand_mean)
    if not scale > 0:
        n = table["n"].to_numpy(dtype=float)
        scale = math.sqrt(float(table["m2"].sum()) / max(float(n.sum()) - 1.0, 1.0))
    if not scale > 0:
        return 1e-12
    # Three significant figures: the threshold is printed, and the printed value reproduces it exactly.
    threshold = THRESHOLD_SHARE * scale
    return float(f"{threshold:.3g}")


def analyze_means(
    data: DataSource | ArmMoments,
    *,
    arm: str | None = None,
    value: str | None = None,
    n: str | None = None,
    sum: str | None = None,  # the role's name, as --sum
    sum_sq: str | None = None,
    mean: str | None = None,
    sd: str | None = None,
    std_error: str | None = None,
    cap: float | None = None,
    control: str | None = None,
    prior: str | ContinuousPrior | None = None,
    prior_scale: float | None = None,
    engine: Literal["exact", "mcmc"] = "exact",
    draws: int | None = None,
    chains: int = 4,
    tune: int = 1_000,
    ci: float = 0.95,
    rope: float | None = None,
    threshold: float | None = None,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    progressbar: bool = False,
    on_unconverged: str = "warn",
) -> MeansResult:
    """Fit the hierarchical normal model to a continuous metric (revenue per user, time on site…).

    For arm ``j`` with ``n_j`` users, sample mean ``ȳ_j`` and standard
    deviation ``s_j``: ``ȳ_j ~ Normal(θ_j, s_j²/n_j)``, ``θ_j ~ Normal(μ, τ²)``,
    ``μ`` flat, ``τ`` flat (BDA3's eight-schools model) or half-Cauchy /
    half-normal. Each arm's mean is pulled toward ``μ`` as much as its noise
    deserves; every comparison is a probability from one joint posterior,
    computed exactly (a grid over ``τ``, no MCMC) in milliseconds.

    Parameters
    ----------
    data : DataFrame, path or ArmMoments
        Unit rows with a numeric value per user, or per-arm sufficient
        statistics (see :func:`abpool.data.read_moments`).
    arm, value : str, optional
        Arm column and value column of unit rows (defaults are detected:
        ``value``, ``metric``, ``revenue``, ``amount``).
    n, sum, sum_sq, mean, sd, std_error : str, optional
        Columns of sufficient statistics: ``n`` with ``mean`` and ``sd``,
        ``mean`` and ``std_error``, or ``sum`` and ``sum_sq``.
    cap : float, optional
        Winsorise unit values above this quantile of the whole experiment
        (e.g. 0.99) before taking moments; printed with the result.
    control : str, optional
        Arm that lifts are measured against (default as for the variants model).
    prior : {"flat", "half-cauchy", "half-normal"} or prior object, optional
        Prior on ``τ``. Default: ``"flat"`` with three arms or more, else
        ``"half-cauchy"`` (the flat prior is improper with two arms).
    prior_scale : float, optional
        Scale of the half-Cauchy or half-normal prior (default: the root mean
        square of the arms' standard errors).
    engine : {"exact", "mcmc"}
        ``"exact"``: grid over ``τ``, independent draws. ``"mcmc"``: NUTS, for cross-checking.
    draws : int, optional
        Exact: total draws (default 20,000). MCMC: draws per chain (default 2,000).
    chains, tune : int
        MCMC only.
    ci : float
        Credible level of every interval.
    rope : float, optional
        Half-width of the region of practical equivalence on the lift, in the metric's units.
    threshold : float, optional
        Threshold of caring of the recommendation, in the metric's units
        (default: 1% of the grand mean; see :func:`default_threshold`).
    split : mapping or sequence of float, optional
        Intended share of users per arm for the sample-ratio-mismatch check.
    seed : int, optional
        Random seed; one is chosen and recorded when omitted.
    progressbar : bool
        Unused by the exact engine; kept for the common interface.
    on_unconverged : {"warn", "raise", "ignore"}
        What to do when the fit fails a convergence check.

    Returns
    -------
    MeansResult

    Examples
    --------
    >>> import pandas as pd, abpool
    >>> units = pd.DataFrame({"variant": ["A", "B"] * 200, "revenue": [1.0, 1.5, 2.0, 2.5] * 100})
    >>> res = abpool.analyze_means(units, seed=3)
    >>> res.summary()[["arm", "n", "observed_mean"]].values.tolist()
    [['A', 200, 1.5], ['B', 200, 2.0]]
    >>> res.prior.name  # the flat prior needs three arms
    'half-cauchy'
    """
    if isinstance(data, ArmMoments) and cap is not None and (data.cap or {}).get("quantile") != cap:
        raise InvalidArgumentError(
            "cap applies when unit rows are read; these moments were read without it: read them with load_moments(..., "
            "cap=...) or pass the unit rows"
        )
    moments = read_moments(
        data,
        arm=arm,
        value=value,
        n=n,
        sum=sum,
        sum_sq=sum_sq,
        mean=mean,
        sd=sd,
        std_error=std_error,
        control=control,
        cap=cap,
    )
    return fit_means(
        moments,
        control=control,
        prior=prior,
        prior_scale=prior_scale,
        engine=engine,
        draws=draws,
        chains=chains,
        tune=tune,
        ci=ci,
        rope=rope,
        threshold=threshold,
        split=split,
        seed=seed,
        on_unconverged=on_unconverged,
    )


def _prior(prior: str | ContinuousPrior | None, scale: float | None, n_arms: int) -> ContinuousPrior:
    chosen = default_prior(n_arms) if prior is None else get_continuous_prior(prior)
    if scale is None:
        return chosen
    scale = check_positive(scale, "prior_scale", hint=" (the scale of tau, in the metric's units)")
    if not isinstance(chosen, HalfCauchyPrior | HalfNormalPrior):
        raise InvalidArgumentError(f"prior_scale applies to the half-cauchy and half-normal priors, not {chosen.name}")
    return type(chosen)(scale=scale)


def _check_spread(moments: ArmMoments) -> None:
    errors = moments.std_errors
    bad = np.flatnonzero(~(np.isfinite(errors) & (errors > 0)))
    if bad.size:
        row = moments.table.iloc[int(bad[0])]
        raise InvalidDataError(
            f"arm {row['arm']!r}: all {int(row['n']):,} values are equal (standard deviation 0), so its mean has "
            "no standard error for the normal model to weigh; check the value column or leave the arm out"
        )


def fit_means(
    moments: ArmMoments,
    *,
    control: str | None = None,
    prior: str | ContinuousPrior | None = None,
    prior_scale: float | None = None,
    engine: str = "exact",
    draws: int | None = None,
    chains: int = 4,
    tune: int = 1_000,
    ci: float = 0.95,
    rope: float | None = None,
    threshold: float | None = None,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    on_unconverged: str = "warn",
) -> MeansResult:
    """Fit the means model to already validated :class:`~abpool.data.moments.ArmMoments`."""
    import xarray as xr

    if moments.segment_columns:
        raise InvalidArgumentError(
            "segments are not modelled for continuous metrics yet; analyse each segment's rows separately"
        )
    ci = check_level(ci)
    engine = check_choice(engine, "engine", ENGINES)
    on_unconverged = check_on_unconverged(on_unconverged)
    seed = check_seed(seed)
    arms = moments.arms
    control_label, control_reason = choose_control(arms, control)
    if control_label not in arms:
        raise InvalidArgumentError(f"control must be one of {', '.join(arms[:20])}, got {control_label!r}")
    rope = check_optional(rope, check_positive, "rope", hint=" (a lift half-width in the metric's units)")
    threshold = (
        default_threshold(moments)
        if threshold is None
        else check_positive(threshold, "threshold", hint=" (an expected loss in the metric's units)")
    )
    split = check_split(split, arms)
    prior_obj = _prior(prior, prior_scale, len(arms))
    _check_spread(moments)
    ybar = moments.table["mean"].to_numpy(dtype=float)
    sigma = moments.std_errors
    resolved = prior_obj.resolve(sigma)

    if engine == "exact":
        n_draws = check_exact_draws(draws) if draws is not None else EXACT_DRAWS
        rng = np.random.default_rng(seed)
        with warnings.catch_warnings():
            # The grid's own warning is replaced by the diagnostics below, which every result carries.
            warnings.simplefilter("ignore", ConvergenceWarning)
            grid = fit_tau_grid(ybar, sigma, resolved)
        tau = grid.sample(rng, n_draws)
        mu, theta = draw_given_tau(tau, ybar, sigma, rng)
        mu, tau, theta = mu[None, :], tau[None, :], theta[None, :, :]
        problems = (
            []
            if grid.converged
            else ["the grid over tau did not reach its interpolation tolerance; posterior summaries may be inexact"]
        )
        # The tail beyond the grid is drawn from its closed form: mass there is no fault.
        diagnostics = independent_draws(
            n_draws, edge_mass=grid.edge_mass, grid_points=grid.n_nodes, edge_limit=math.inf, problems=problems
        )
        inference = ("abpool exact engine", __version__)
        tune_used = None
    else:
        from abpool.continuous.pymc_engine import nuts_draws
        from abpool.diagnostics import mcmc_diagnostics
        from abpool.sampling import inference_library

        per_chain = check_draws_per_chain(draws) if draws is not None else MCMC_DRAWS
        chains = check_chains(chains)
        tune_used = check_int(tune, "tune", minimum=1)
        found = nuts_draws(
            ybar,
            sigma,
            resolved,
            draws=per_chain,
            tune=tune_used,
            chains=chains,
            seed=seed,
            target_accept=TARGET_ACCEPT,
        )
        mu = found.mu.reshape(chains, per_chain)
        tau = found.tau.reshape(chains, per_chain)
        theta = found.theta.reshape(chains, per_chain, -1)
        checked = xr.Dataset(
            {"mu": (("chain", "draw"), mu), "tau": (("chain", "draw"), tau), "mean": (("chain", "draw", "arm"), theta)}
        )
        diagnostics = mcmc_diagnostics(
            checked,
            ["mu", "tau", "mean"],
            divergences=found.divergences,
            target_accept=TARGET_ACCEPT,
            attempts=1,
            tune=tune_used,
        )
        inference = inference_library("pymc")

    dims = ("chain", "draw")
    posterior = xr.Dataset(
        {"mean": ((*dims, "arm"), theta), "mu": (dims, mu), "tau": (dims, tau)},
        coords={"chain": np.arange(mu.shape[0]), "draw": np.arange(mu.shape[1]), "arm": list(arms)},
    )
    observed = xr.Dataset(
        {"mean": ("arm", ybar), "std_error": ("arm", sigma), "n": ("arm", moments.table["n"].to_numpy())},
        coords={"arm": list(arms)},
    )
    return MeansResult.from_draws(
        {"posterior": posterior, "observed_data": observed},
        inference=inference,
        on_unconverged=on_unconverged,
        cells=moments,
        prior=prior_obj,
        diagnostics=diagnostics,
        seed=seed,
        ci=ci,
        control=control_label,
        control_reason=control_reason,
        rope=rope,
        threshold=threshold,
        split=split,
        engine=engine,
        tune=tune_used,
    )
