"""The public entry points: ``analyze_variants`` and ``analyze``."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from abpool import decisions
from abpool._version import __version__
from abpool.data import Cells, DataSource, cells_from_counts, load_cells
from abpool.errors import InvalidArgumentError
from abpool.inference import Diagnostics
from abpool.models.variants import build_pymc_model, conditional_rate_draws, exact_draws
from abpool.priors import SegmentsPrior, VariantsPrior, get_segments_prior, get_variants_prior
from abpool.results import VariantsResult
from abpool.segments_result import MODEL_NAME as SEGMENTS_MODEL_NAME
from abpool.segments_result import SegmentsResult

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


def analyze_segments(
    data: DataSource,
    *,
    segment: str | Sequence[str],
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    control: str | None = None,
    prior: str | SegmentsPrior = "article",
    prior_scale: float | None = None,
    correlated: bool = False,
    parameterisation: str | None = None,
    sampler: str = "nutpie",
    draws: int = 1_000,
    tune: int = 1_000,
    chains: int = 4,
    target_accept: float = 0.95,
    ci: float = 0.95,
    seed: int | None = None,
    progressbar: bool = False,
) -> SegmentsResult:
    """Fit the varying-intercept, varying-slope model to an experiment broken down by segment.

    Each segment gets its own control rate (intercept ``a_s``) and treatment
    effect (slope ``b_sk`` per treatment arm) on the log-odds scale; segments
    share strength through common Normal distributions, so a segment with
    little data is pulled toward the population.

    Parameters
    ----------
    data : DataFrame or path
        Unit rows or aggregated cells (aggregated in DuckDB first).
    segment : str or sequence of str
        Segment column(s); several columns are combined.
    arm, outcome, trials, successes : str, optional
        Column names (defaults are detected).
    control : str, optional
        Control arm (default: the first arm in the data).
    prior : {"article", "flat", "conservative"} or SegmentsPrior
        ``article``: ``mu ~ StudentT(3, 0, 1)``, ``sigma ~ HalfNormal(1)``.
    prior_scale : float, optional
        Replace the HalfNormal scale of ``sigma_a``, ``sigma_b``.
    correlated : bool
        Draw intercepts and slopes jointly with an LKJ prior on their correlation.
    parameterisation : {"conditioned", "centred", "non-centred"}, optional
        Coordinates the sampler moves in; the posterior is the same. The
        default, ``"conditioned"``, writes each intercept and slope through its
        approximate conditional posterior and samples without divergences from
        10 to 10,000,000 users per cell; the other two are for comparison (see
        :mod:`abpool.models.segments`). The correlated model is non-centred.
    sampler : {"nutpie", "pymc"}
        NUTS implementation; nutpie compiles a model shape once and refits it
        with new data.
    draws, tune, chains : int
        Draws and tuning steps per chain, chains (run in parallel).
    target_accept : float
        NUTS target acceptance; a fit with problems is refitted once at 0.99.
    ci : float
        Credible level.
    seed : int, optional
        Random seed (chosen and recorded when omitted).
    progressbar : bool
        Show the sampler's progress bar.

    Returns
    -------
    SegmentsResult

    Examples
    --------
    >>> import abpool
    >>> from abpool.datasets import make_dataframe
    >>> frame = make_dataframe(100, [30, 50, 55, 60])  # the article's data
    >>> res = abpool.analyze_segments(frame, segment="country", arm="treated", outcome="success",
    ...                               control="0", seed=3, draws=500)
    >>> res.summary()[["segment", "arm"]].values.tolist()
    [['Canada', '1'], ['China', '1']]
    """
    from abpool.inference import SAMPLERS, compiled_model, sample_nuts
    from abpool.models.segments import (
        MONITORED,
        build_segments_model,
        check_form,
        complete_draws,
        label_draws,
        layout_from_cells,
        model_data,
    )

    if not segment:
        raise InvalidArgumentError("the segments model needs a segment column (segment=...)")
    if sampler not in SAMPLERS:
        raise InvalidArgumentError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    prior_obj = get_segments_prior(prior, prior_scale)
    form = check_form(parameterisation, correlated=correlated)
    ci = decisions.check_level(ci)
    if not (isinstance(target_accept, float) and 0.5 <= target_accept < 1.0):
        raise InvalidArgumentError(f"target_accept must be in [0.5, 1), got {target_accept!r}")
    draws, tune, chains = _positive_int(draws, "draws"), _positive_int(tune, "tune"), _positive_int(chains, "chains")
    seed = _seed(seed)
    cells = load_cells(
        data, arm=arm, outcome=outcome, trials=trials, successes=successes, segment=segment, control=control
    )
    layout = layout_from_cells(cells, control)

    def build():
        return build_segments_model(layout, prior_obj, form, correlated=correlated)

    if sampler == "nutpie":
        # Coordinates are positions, so experiments of the same shape share one compiled model.
        key = ("segments", layout.shape, form, prior_obj, correlated)
        model = compiled_model(key, build)
    else:
        model = build()
    idata, diagnostics = sample_nuts(
        model,
        var_names=MONITORED,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        target_accept=target_accept,
        progressbar=progressbar,
        sampler=sampler,
        data=model_data(layout, form),
    )
    idata = label_draws(complete_draws(idata, layout, prior_obj, form), layout)
    result = SegmentsResult(
        cells=cells,
        layout=layout,
        prior=prior_obj,
        correlated=correlated,
        parameterisation=form,
        sampler=sampler,
        seed=seed,
        idata=idata,
        diagnostics=diagnostics,
        ci=ci,
    )
    idata.attrs.update(
        {
            "abpool_version": __version__,
            "model": SEGMENTS_MODEL_NAME,
            "prior": str(prior_obj),
            "correlated": int(correlated),
            "sampler": sampler,
            "seed": seed,
            "data_fingerprint": cells.fingerprint,
            "data_source": cells.source,
            "created": result.created,
        }
    )
    return result


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
) -> VariantsResult | SegmentsResult:
    """Analyse an experiment, choosing the model from the data's shape.

    With ``segment`` this is :func:`analyze_segments`; without, :func:`analyze_variants`.

    Examples
    --------
    >>> import pandas as pd, abpool
    >>> frame = pd.DataFrame({"variant": ["A", "B"], "trials": [100, 100], "successes": [30, 60]})
    >>> abpool.analyze(frame, seed=1).engine
    'exact'
    """
    columns = {"arm": arm, "outcome": outcome, "trials": trials, "successes": successes, "control": control}
    if segment:
        return analyze_segments(data, segment=segment, **columns, **options)
    return analyze_variants(data, **columns, **options)
