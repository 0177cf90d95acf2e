"""Fitting the variants model: :func:`analyze_variants` from data, :func:`fit_variants` from cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

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
from abpool.data import Cells, DataSource, cells_from_counts, load_cells
from abpool.decisions import DEFAULT_THRESHOLD, choose_control
from abpool.diagnostics import independent_draws
from abpool.draws import Group, shared_labels
from abpool.errors import InvalidArgumentError
from abpool.result import check_on_unconverged
from abpool.variants.engines import build_pymc_model, conditional_rate_draws, exact_draws
from abpool.variants.priors import VariantsPrior, get_variants_prior
from abpool.variants.result import VariantsResult

ENGINES = ("exact", "mcmc")
# The exact engine's draws are independent, so 20,000 give Monte Carlo error
# ~0.003 on any probability; the cap keeps draws × variants at ≤ 4 million
# (32 MB per copy), so 1,000 variants get 4,000 independent draws.
EXACT_DRAWS = 20_000
EXACT_DRAWS_CELLS = 4_000_000
MCMC_DRAWS = 2_000


@lru_cache(maxsize=16)
def _coordinates(chains: int | None, draws: int | None, arms: tuple[str, ...]) -> Any:
    """The labels of a fit's draws (``chain``, ``draw`` and ``arm``; only ``arm`` without chains), made once per shape.

    A batch fits experiment after experiment of the same shape; shared, their
    xarray indexes are built once, and only if a DataTree is (see :func:`abpool.draws.shared_labels`).
    """
    coords: dict[str, Any] = {} if chains is None else {"chain": np.arange(chains), "draw": np.arange(draws)}
    return shared_labels(coords | {"arm": list(arms)})


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
    threshold: float = DEFAULT_THRESHOLD,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    progressbar: bool = False,
    on_unconverged: str = "warn",
) -> VariantsResult:
    """Fit the hierarchical Beta-Binomial model to an A/B/n test.

    Each variant's rate is drawn from a common ``Beta(a, b)``, so every
    estimate is pulled toward the grand rate as much as its sample size
    deserves; every comparison is a probability from one joint posterior.

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
        Variant that lifts are measured against (default: one named control,
        ctrl, baseline, A, 0 or false, else the first in sorted order; see
        :func:`abpool.decisions.choose_control`).
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
        Credible level of every interval (default 0.95).
    rope : float, optional
        Half-width of the region of practical equivalence on the absolute lift
        (default for the recommendation: the threshold).
    threshold : float
        Threshold of caring of the recommendation: ship an arm whose expected
        loss is below it (absolute rate; default 0.001 = 0.1 percentage points).
    split : mapping or sequence of float, optional
        Intended share of users per arm for the sample-ratio-mismatch check
        (``{"A": 50, "B": 50}``, or weights in the data's arm order; default equal).
    seed : int, optional
        Random seed; one is chosen and recorded when omitted.
    progressbar : bool
        Show a progress bar (MCMC).
    on_unconverged : {"warn", "raise", "ignore"}
        What to do when the fit fails a convergence check: warn (a
        :class:`~abpool.ConvergenceWarning` pointing at your call), raise
        :class:`~abpool.ConvergenceError`, or stay silent. The diagnostics are
        in the result either way.

    Returns
    -------
    VariantsResult

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=7)
    >>> round(res.prob_greater("D", "A"), 2)
    1.0
    >>> res.summary()[["arm", "observed_rate"]].values.tolist()
    [['A', 0.3], ['B', 0.5], ['C', 0.55], ['D', 0.6]]
    """
    if data is None:
        if trials is None or successes is None or isinstance(trials, str) or isinstance(successes, str):
            raise InvalidArgumentError("pass data (a DataFrame or file), or count arrays as successes= and trials=")
        cells = cells_from_counts(successes, trials, names)
        if control is not None and str(control) not in cells.arms:
            raise InvalidArgumentError(f"control must be one of {', '.join(cells.arms[:20])}, got {control!r}")
    else:
        if names is not None:
            raise InvalidArgumentError("names labels count arrays; with data the labels come from the arm column")
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
        threshold=threshold,
        split=split,
        seed=seed,
        progressbar=progressbar,
        on_unconverged=on_unconverged,
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
    threshold: float = DEFAULT_THRESHOLD,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    progressbar: bool = False,
    on_unconverged: str = "warn",
) -> VariantsResult:
    """Fit the variants model to already validated :class:`~abpool.data.Cells`."""
    if cells.segment_columns:
        raise InvalidArgumentError("segment applies to the segments model; use analyze_segments or analyze")
    prior_obj = get_variants_prior(prior)
    ci = check_level(ci)
    rope = check_optional(rope, check_positive, "rope", hint=" (a lift half-width such as 0.01)")
    engine = check_choice(engine, "engine", ENGINES)
    on_unconverged = check_on_unconverged(on_unconverged)
    seed = check_seed(seed)
    rng = np.random.default_rng(seed)
    y = cells.table["successes"].to_numpy()
    n = cells.table["trials"].to_numpy()
    # Read once: each reading walks the table's arm column.
    arms = cells.arms
    control_label, control_reason = choose_control(arms, control)
    if control_label not in arms:
        raise InvalidArgumentError(f"control must be one of {', '.join(arms[:20])}, got {control_label!r}")
    threshold = check_positive(threshold, "threshold", hint=" (an expected loss such as 0.001)")
    split = check_split(split, arms)

    sample_stats = None
    if engine == "exact":
        n_draws = check_exact_draws(draws) if draws is not None else default_exact_draws(len(y))
        hyper, grid = exact_draws(y, n, prior_obj, n_draws, rng)
        diagnostics = independent_draws(n_draws, edge_mass=grid.edge_mass, grid_points=grid.n_points)
        a, b, rates = hyper.a, hyper.b, hyper.rates
        inference = ("abpool exact engine", __version__)
        tune_used = None
    else:
        from abpool.sampling import inference_library, sample_nuts

        per_chain = check_draws_per_chain(draws) if draws is not None else MCMC_DRAWS
        chains = check_chains(chains)
        tune_used = check_int(tune, "tune", minimum=1)
        model = build_pymc_model(y, n, list(arms), prior_obj)
        idata, diagnostics = sample_nuts(
            model,
            var_names=["logit_mean", "log_concentration"],
            draws=per_chain,
            tune=tune_used,
            chains=chains,
            random_seed=seed,
            progressbar=progressbar,
        )
        a = idata.posterior["a"].values
        b = idata.posterior["b"].values
        rates = conditional_rate_draws(a, b, y, n, rng)
        sample_stats = idata.sample_stats
        inference = inference_library("pymc")

    dims = ("chain", "draw")
    # Arrays until someone reads result.tree: a batch without saved runs never needs the DataTree.
    posterior = Group(
        {
            "rate": ((*dims, "arm"), rates),
            "a": (dims, a),
            "b": (dims, b),
            "population_mean": (dims, a / (a + b)),
            "concentration": (dims, a + b),
        },
        _coordinates(a.shape[0], a.shape[1], arms),
    )
    observed = Group({"successes": (("arm",), y), "trials": (("arm",), n)}, _coordinates(None, None, arms))
    groups = {"posterior": posterior, "observed_data": observed}
    if sample_stats is not None:
        groups["sample_stats"] = sample_stats
    return VariantsResult.from_draws(
        groups,
        inference=inference,
        on_unconverged=on_unconverged,
        cells=cells,
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
