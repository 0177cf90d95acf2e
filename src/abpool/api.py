"""The public entry points: ``analyze_variants`` and ``analyze``."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from abpool import decisions
from abpool.data import Cells, DataSource, cells_from_counts, load_cells
from abpool.errors import InvalidArgumentError
from abpool.inference import Diagnostics
from abpool.models.variants import build_pymc_model, conditional_rate_draws, exact_draws
from abpool.priors import VariantsPrior, get_variants_prior
from abpool.results import VariantsResult

ENGINES = ("exact", "mcmc")
# The exact engine's draws are independent, so 20,000 give Monte Carlo error
# ~0.003 on any probability; the cap keeps draws × variants at ≤ 4 million
# (32 MB per copy), so 1,000 variants get 4,000 independent draws.
EXACT_DRAWS = 20_000
EXACT_DRAWS_CELLS = 4_000_000
MCMC_DRAWS = 2_000


def _seed(seed: int | None) -> int:
    if seed is None:
        return secrets.randbits(31)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def default_exact_draws(n_variants: int) -> int:
    """Default number of exact-engine draws for ``n_variants`` variants.

    Examples
    --------
    >>> default_exact_draws(4), default_exact_draws(10_000)
    (20000, 1000)
    """
    return int(max(1_000, min(EXACT_DRAWS, EXACT_DRAWS_CELLS // max(1, n_variants))))


def analyze_variants(
    data: DataSource | None = None,
    *,
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | Sequence[int] | None = None,
    successes: str | Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    control: str | None = None,
    prior: str | VariantsPrior = "bda",
    engine: Literal["exact", "mcmc"] = "exact",
    draws: int | None = None,
    chains: int = 2,
    tune: int = 1_000,
    ci: float = 0.95,
    rope: float | None = None,
    seed: int | None = None,
    progressbar: bool = False,
) -> VariantsResult:
    """Fit the hierarchical Beta-Binomial model to an A/B/n test.

    Each variant's rate is drawn from a common ``Beta(a, b)``, so every
    estimate is pulled toward the grand rate as much as its sample size
    deserves; probabilities such as ``P(B > C)`` need no multiplicity correction.

    Parameters
    ----------
    data : DataFrame or path, optional
        Unit rows or aggregated cells (see :func:`abpool.data.load_cells`).
        Omit it and pass count arrays as ``successes`` and ``trials`` instead.
    arm, outcome : str, optional
        Column names (defaults are detected).
    trials, successes : str or sequence of int, optional
        Column names with ``data``; count arrays without it.
    names : sequence of str, optional
        Variant labels for count arrays (default A, B, C, …).
    control : str, optional
        Variant that lifts are measured against (default: the first).
    prior : {"bda", "lognormal"} or prior object
        Hyperprior; ``"bda"`` is the article's ``(a+b)^(-5/2)``.
    engine : {"exact", "mcmc"}
        ``"exact"``: quadrature, independent draws, milliseconds.
        ``"mcmc"``: PyMC NUTS, for cross-checking.
    draws : int, optional
        Exact engine: total draws (default 20,000, fewer for > 200 variants).
        MCMC: draws per chain (default 2,000).
    chains, tune : int
        MCMC only: chains (run in parallel) and tuning steps per chain.
    ci : float
        Credible level of intervals (default 0.95).
    rope : float, optional
        Half-width of the region of practical equivalence on the absolute lift.
    seed : int, optional
        Random seed; one is chosen and recorded when omitted.
    progressbar : bool
        Show a progress bar (MCMC).

    Returns
    -------
    VariantsResult

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=7)
    >>> round(res.prob_greater("D", "A"), 2)
    1.0
    >>> res.summary()[["variant", "observed_rate"]].values.tolist()
    [['A', 0.3], ['B', 0.5], ['C', 0.55], ['D', 0.6]]
    """
    if data is None:
        if trials is None or successes is None or isinstance(trials, str) or isinstance(successes, str):
            raise InvalidArgumentError("pass data (a DataFrame or file), or count arrays as successes= and trials=")
        cells = cells_from_counts(successes, trials, names)
        if control is not None and str(control) not in cells.arms:
            raise InvalidArgumentError(f"control {control!r} is not a variant; variants are: {', '.join(cells.arms)}")
    else:
        cells = load_cells(data, arm=arm, outcome=outcome, trials=trials, successes=successes, control=control)
    return fit_variants(
        cells,
        control=control,
        prior=prior,
        engine=engine,
        draws=draws,
        chains=chains,
        tune=tune,
        ci=ci,
        rope=rope,
        seed=seed,
        progressbar=progressbar,
    )


def fit_variants(
    cells: Cells,
    *,
    control: str | None = None,
    prior: str | VariantsPrior = "bda",
    engine: str = "exact",
    draws: int | None = None,
    chains: int = 2,
    tune: int = 1_000,
    ci: float = 0.95,
    rope: float | None = None,
    seed: int | None = None,
    progressbar: bool = False,
) -> VariantsResult:
    """Fit the variants model to already validated :class:`~abpool.data.Cells`."""
    if cells.segment_columns:
        raise InvalidArgumentError("the variants model takes no segments; use analyze_segments")
    prior_obj = get_variants_prior(prior)
    ci = decisions.check_level(ci)
    if rope is not None and not (isinstance(rope, int | float) and rope > 0 and np.isfinite(rope)):
        raise InvalidArgumentError(f"rope must be a positive number (a lift half-width such as 0.01), got {rope!r}")
    if engine not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    seed = _seed(seed)
    rng = np.random.default_rng(seed)
    y = cells.table["successes"].to_numpy()
    n = cells.table["trials"].to_numpy()
    control_label = str(control) if control is not None else cells.arms[0]
    if control_label not in cells.arms:
        raise InvalidArgumentError(f"control {control_label!r} is not a variant")

    if engine == "exact":
        n_draws = _positive_int(draws, "draws") if draws is not None else default_exact_draws(len(y))
        hyper, grid = exact_draws(y, n, prior_obj, n_draws, rng)
        a_cells, b_cells = grid.a, grid.b
        posterior_mean = grid.expect(
            (a_cells[:, None] + y[None, :]) / (a_cells[:, None] + b_cells[:, None] + n[None, :])
        )
        shrinkage = grid.expect((a_cells + b_cells)[:, None] / ((a_cells + b_cells)[:, None] + n[None, :]))
        problems = []
        if grid.edge_mass > 1e-3:
            problems.append(
                f"{grid.edge_mass:.1%} of the posterior mass lies beyond the representable range of a+b "
                "(near-complete pooling or no pooling); treat the hyperparameters with caution"
            )
        diagnostics = Diagnostics(
            engine="exact",
            converged=not problems,
            divergences=0,
            max_rhat=None,
            min_ess_bulk=float(n_draws),
            min_ess_tail=float(n_draws),
            draws=n_draws,
            chains=1,
            edge_mass=grid.edge_mass,
            grid_points=grid.n_points,
            warnings=problems,
        )
        a, b, rates = hyper.a, hyper.b, hyper.rates
    else:
        from abpool.inference import sample_nuts

        per_chain = _positive_int(draws, "draws") if draws is not None else MCMC_DRAWS
        chains = _positive_int(chains, "chains")
        model = build_pymc_model(y, n, list(cells.arms), prior_obj)
        idata, diagnostics = sample_nuts(
            model,
            var_names=["logit_mean", "log_concentration"],
            draws=per_chain,
            tune=_positive_int(tune, "tune"),
            chains=chains,
            random_seed=seed,
            progressbar=progressbar,
        )
        a = idata.posterior["a"].values
        b = idata.posterior["b"].values
        rates = conditional_rate_draws(a, b, y, n, rng)
        # Rao-Blackwellised: E[theta_j | a, b, y] averaged over the draws of (a, b).
        conc = (a + b)[..., None]
        posterior_mean = ((a[..., None] + y) / (conc + n)).reshape(-1, len(y)).mean(axis=0)
        shrinkage = (conc / (conc + n)).reshape(-1, len(y)).mean(axis=0)
    return VariantsResult(
        cells=cells,
        prior=prior_obj,
        engine=engine,
        seed=seed,
        rates=rates,
        a=a,
        b=b,
        posterior_mean=posterior_mean,
        shrinkage=shrinkage,
        diagnostics=diagnostics,
        ci=ci,
        control=control_label,
        rope=None if rope is None else float(rope),
    )


def analyze(
    data: DataSource,
    *,
    arm: str | None = None,
    segment: str | Sequence[str] | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    control: str | None = None,
    **options: Any,
) -> VariantsResult:
    """Analyse an experiment, choosing the model from the data's shape.

    Without ``segment`` this is :func:`analyze_variants`.

    Examples
    --------
    >>> import pandas as pd, abpool
    >>> frame = pd.DataFrame({"variant": ["A", "B"], "trials": [100, 100], "successes": [30, 60]})
    >>> abpool.analyze(frame, seed=1).engine
    'exact'
    """
    if segment:
        raise InvalidArgumentError("segments are not supported yet; omit segment to analyse the variants")
    return analyze_variants(
        data, arm=arm, outcome=outcome, trials=trials, successes=successes, control=control, **options
    )
