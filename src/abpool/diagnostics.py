"""Convergence diagnostics: what every result carries to say whether its numbers can be trusted.

A fit is *converged* when every check passed: for MCMC no divergent
transitions, rank-normalised split R-hat at most 1.01 and bulk and tail
effective sample sizes of at least 100 per chain on every checked parameter;
for the exact engine, no posterior mass beyond the grid. Problems are stated
in plain words in ``warnings``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from abpool import _format as fmt
from abpool._special import rank_normal_scores

RHAT_LIMIT = 1.01
ESS_PER_CHAIN = 100


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of one fit.

    Attributes
    ----------
    engine : str
        ``"exact"`` (independent draws) or ``"mcmc"``.
    converged : bool
        Whether every check passed.
    divergences : int
        Divergent transitions after tuning (MCMC only; 0 for the exact engine).
    max_rhat : float or None
        Largest rank-normalised split R-hat over the checked parameters (MCMC only).
    min_ess_bulk, min_ess_tail : float
        Smallest effective sample sizes (the number of draws for independent draws).
    draws, chains : int
        Draws per chain and number of chains kept.
    edge_mass : float or None
        Exact engine: posterior mass estimated beyond the grid.
    grid_points : int or None
        Exact engine: cells of the quadrature grid.
    target_accept : float or None
        NUTS target acceptance of the kept fit.
    attempts : int
        Fits run (2 when a refit was needed).
    checked : list of str
        Parameters whose R-hat and ESS were checked.
    checked_values : int or None
        Scalar quantities checked over those parameters (every segment's intercept and slope, …):
        the largest R-hat and smallest ESS are taken over all of them. None for the exact engine.
    warnings : list of str
        Plain-language problems found.
    """

    engine: str
    converged: bool
    divergences: int
    max_rhat: float | None
    min_ess_bulk: float
    min_ess_tail: float
    draws: int
    chains: int
    edge_mass: float | None = None
    grid_points: int | None = None
    target_accept: float | None = None
    attempts: int = 1
    checked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked_values: int | None = None
    tune: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)

    @property
    def mixed(self) -> bool:
        """Whether the chains agree and mixed enough: R-hat and both ESS pass (divergences aside).

        Examples
        --------
        >>> Diagnostics("mcmc", False, 3, 1.004, 900.0, 800.0, 1_000, 4).mixed
        True
        """
        return rhat_passes(self.max_rhat) and min(self.min_ess_bulk, self.min_ess_tail) >= ess_needed(self.chains)

    @property
    def status(self) -> str:
        """``"converged"`` or ``"NOT CONVERGED"``."""
        return "converged" if self.converged else "NOT CONVERGED"

    def describe(self) -> str:
        """The diagnostics in one line, as the terminal and the report print them.

        Examples
        --------
        >>> Diagnostics("exact", True, 0, None, 2e4, 2e4, 20_000, 1, edge_mass=0.0, grid_points=6144).describe()
        'exact engine: 20,000 independent draws, 6,144 grid cells, mass beyond the grid none; converged'
        >>> mcmc = Diagnostics("mcmc", True, 0, 1.004, 2e3, 1.5e3, 1_000, 4, target_accept=0.95, checked=["mu", "tau"],
        ...                    checked_values=5)
        >>> mcmc.describe().split("; ")[1]
        'divergences 0, max R-hat 1.004, min ESS bulk 2,000 / tail 1,500 over 5 values of 2 parameters (mu, tau)'
        """
        if self.engine == "exact":
            edge = "unknown" if self.edge_mass is None else "none" if self.edge_mass == 0 else f"{self.edge_mass:.1e}"
            detail = (
                f"exact engine: {self.draws:,} independent draws, {self.grid_points or 0:,} grid cells, "
                f"mass beyond the grid {edge}"
            )
        else:
            tuned = "" if self.tune is None else f" after {self.tune:,} tuning steps"
            detail = (
                f"MCMC: {self.chains} chains × {self.draws:,} draws{tuned}, target_accept {self.target_accept}, "
                f"attempts {self.attempts}; divergences {self.divergences}, max R-hat {fmt.number(self.max_rhat, 4)}, "
                f"min ESS bulk {self.min_ess_bulk:,.0f} / tail {self.min_ess_tail:,.0f} over {self.checked_over()}"
            )
        return f"{detail}; {self.status}"

    def checked_over(self) -> str:
        """What the largest R-hat and smallest ESS are taken over, in words: values, and the parameters holding them.

        Examples
        --------
        >>> Diagnostics("mcmc", True, 0, 1.0, 4e3, 4e3, 1_000, 4, checked=["a", "b"], checked_values=101).checked_over()
        '101 values of 2 parameters (a, b)'
        """
        names = fmt.names_list(list(self.checked), 8)
        parameters = f"{len(self.checked)} parameter{'' if len(self.checked) == 1 else 's'} ({names})"
        if self.checked_values is None:
            return parameters
        return f"{self.checked_values:,} value{'' if self.checked_values == 1 else 's'} of {parameters}"


def independent_draws(
    draws: int, *, edge_mass: float, grid_points: int, edge_limit: float = 1e-3, problems: Sequence[str] = ()
) -> Diagnostics:
    """Diagnostics of independent draws from a tabulated posterior: only the grid can fail.

    Mass beyond the grid's edge above ``edge_limit`` fails (the variants
    model's ``a+b`` cannot be represented there; an engine that draws its
    tail in closed form passes ``edge_limit=inf``); ``problems`` are the
    engine's own findings (a grid short of its tolerance).

    Examples
    --------
    >>> independent_draws(1000, edge_mass=0.02, grid_points=10).converged
    False
    >>> independent_draws(1000, edge_mass=0.02, grid_points=10, edge_limit=float("inf")).converged
    True
    """
    problems = list(problems)
    if edge_mass > edge_limit:
        problems.append(
            f"{edge_mass:.1%} of the posterior mass lies beyond the representable range of a+b "
            "(near-complete pooling or no pooling); treat the population parameters with caution"
        )
    return Diagnostics(
        engine="exact",
        converged=not problems,
        divergences=0,
        max_rhat=None,
        min_ess_bulk=float(draws),
        min_ess_tail=float(draws),
        draws=int(draws),
        chains=1,
        edge_mass=float(edge_mass),
        grid_points=int(grid_points),
        warnings=problems,
    )


# --------------------------------------------------------------------------- R-hat and ESS, in numpy
# Rank-normalised split R-hat and bulk and tail effective sample sizes (Vehtari, Gelman, Simpson,
# Carpenter and Bürkner 2021, "Rank-normalization, folding, and localization: an improved R-hat"),
# step for step as ArviZ computes them, so that a fit need not import ArviZ (tested to agree to 1e-12),
# and for every quantity at once.
def _ranks_by_row(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n within each row of a 2-D array, ties sharing their average rank (``rankdata`` per row).

    Folded draws always hold ties (the two draws either side of an even median are
    equally far from it), so ties are handled for every row at once: the members of
    a run of equal values share the mean of the run's first and last rank.
    """
    rows, n = values.shape
    order = np.argsort(values, axis=1)
    index = (order + (np.arange(rows) * n)[:, None]).ravel()
    ordered = values.ravel()[index]
    ranks_in_order = np.tile(np.arange(1.0, n + 1.0), rows)
    # Ties are few (continuous draws have none but the folded pair): only they are visited. ``tied`` are
    # the sorted positions equal to the one before them; a run of them, with the position before its
    # first, is one group of equal values, which never spans two rows (a row's first value starts one).
    tied = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    tied = tied[tied % n != 0]
    if tied.size:
        breaks = np.flatnonzero(np.diff(tied) != 1) + 1
        starts = tied[np.concatenate([[0], breaks])] - 1
        ends = tied[np.concatenate([breaks, [tied.size]]) - 1]
        lengths = ends - starts + 1
        members = np.repeat(starts, lengths) + (
            np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        ranks_in_order[members] = np.repeat((starts % n + ends % n) / 2.0 + 1.0, lengths)
    ranks = np.empty(rows * n)
    ranks[index] = ranks_in_order
    return ranks.reshape(rows, n)


def _z_scale_rows(values: np.ndarray) -> np.ndarray:
    """:func:`_z_scale` of each quantity at once: ``values`` is (quantities, chains, draws)."""
    flat = values.reshape(values.shape[0], -1)
    ranks = _ranks_by_row(flat)
    # Ranks are whole or half numbers from 1 to n: the normal quantile of each of those 2n - 1 values,
    # looked up, rather than computed again for every draw of every quantity.
    return rank_normal_scores(flat.shape[1])[(2.0 * ranks).astype(np.intp) - 2].reshape(values.shape)


def _rhat_rows(values: np.ndarray) -> np.ndarray:
    draws = values.shape[2]
    between = draws * np.var(values.mean(axis=2), axis=1, ddof=1)
    within = np.mean(np.var(values, axis=2, ddof=1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A constant quantity has no R-hat (NaN), as in ArviZ.
        return np.sqrt((between / within + draws - 1) / draws)


def _fft(size: int) -> tuple[Any, Any, Any]:
    """``rfft``, ``irfft`` and ``next_fast_len`` for ``size`` values: numpy's below a million, SciPy's above.

    SciPy's transforms are five times faster on the draws of thousands of
    quantities, but importing them costs more than transforming the few
    quantities of a small fit many times over.
    """
    if size >= _SCIPY_FFT_FROM:
        from scipy.fft import irfft, next_fast_len, rfft

        return rfft, irfft, next_fast_len
    return np.fft.rfft, np.fft.irfft, _next_fast_len


_SCIPY_FFT_FROM = 1_000_000


def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth number ≥ ``n`` (a length pocketfft transforms fastest; SciPy's ``next_fast_len``)."""
    best = 1 << max(0, (n - 1).bit_length())
    fives = 1
    while fives < best:
        threes = fives
        while threes < best:
            candidate = threes << max(0, (-(-n // threes) - 1).bit_length())
            best = min(best, candidate)
            threes *= 3
        fives *= 5
    return best


def _ess_rows(values: np.ndarray) -> np.ndarray:
    """:func:`_ess` of each quantity at once, ``values`` (quantities, chains, draws): the same arithmetic, vectorised.

    Geyer's initial positive sequence stops at the first pair of autocorrelations whose sum is not
    positive; the monotone sequence is then the running minimum of the pair sums before it.
    """
    quantities, chains, draws = values.shape
    flat = values.reshape(quantities, -1)
    constant = (flat.max(axis=1) - flat.min(axis=1)) < np.finfo(float).resolution
    rfft, irfft, next_fast_len = _fft(values.size)
    size = next_fast_len(2 * draws)
    centred = values - values.mean(axis=2, keepdims=True)
    spectrum = rfft(centred, n=size, axis=2)
    acov = irfft(spectrum.real**2 + spectrum.imag**2, n=size, axis=2)[:, :, :draws] / draws
    mean_acov = acov.mean(axis=1)
    mean_var = mean_acov[:, 0] * draws / (draws - 1.0)
    var_plus = mean_var * (draws - 1.0) / draws
    if chains > 1:
        var_plus = var_plus + np.var(values.mean(axis=2), axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - mean_acov) / var_plus[:, None]
    rho[:, 0] = 1.0
    pairs = draws // 2
    pair_sums = rho[:, 0 : 2 * pairs : 2] + rho[:, 1 : 2 * pairs : 2]
    # Pair m = 1, 2, … is looked at while m < limit and 2m - 1 < draws - 3; the sequence stops before
    # the first pair whose sum is not positive.
    limit = max(1, min(pairs, (draws - 2) // 2 + 1))
    candidates = max(0, min(limit - 1, pairs, (draws - 3) // 2))
    positive = pair_sums[:, :candidates] > 0.0
    if candidates:
        kept_pairs = np.where(positive.all(axis=1), candidates, np.argmin(positive, axis=1))
    else:
        kept_pairs = np.zeros(quantities, dtype=int)
    stop = kept_pairs + 1
    rows = np.arange(quantities)
    last_even = rho[rows, 2 * kept_pairs]
    next_sum = pair_sums[rows, np.minimum(kept_pairs, pairs - 1)]
    stored = np.where(stop == 1, 1.0, np.where((last_even > 0) | (next_sum >= 0), last_even, 0.0))
    monotone = np.minimum.accumulate(pair_sums[:, :candidates], axis=1) if candidates else pair_sums[:, :0]
    kept = np.arange(candidates)[None, :] < kept_pairs[:, None]
    tau = -1.0 + 2.0 * np.where(kept, monotone, 0.0).sum(axis=1) + stored
    total = chains * draws
    tau = np.maximum(tau, 1 / np.log10(total))
    out = np.where(np.isnan(rho).any(axis=1), np.nan, total / tau)
    out[constant] = float(total)
    return out


_CHUNK = 64


def _split(values: np.ndarray) -> np.ndarray:
    """Each chain cut in two halves (the middle draw of an odd chain dropped): (quantities, 2·chains, draws/2)."""
    half = values.shape[2] // 2
    return np.concatenate([values[:, :, :half], values[:, :, values.shape[2] - half :]], axis=1)


def rhat_ess(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat, bulk ESS and tail ESS of every quantity of ``values`` (quantities, chains, draws).

    R-hat is the larger of the bulk and the folded (tail) R-hat; the tail ESS is the
    smaller of the 5% and 95% quantiles' ESS. NaN where they are undefined (NaN
    draws, fewer than 4 draws, or a single chain for R-hat).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r, bulk, tail = rhat_ess(rng.normal(size=(1, 4, 1000)))
    >>> bool(r[0] < 1.01), bool(bulk[0] > 3000)
    (True, True)
    """
    values = np.asarray(values, dtype=float)
    quantities, chains, draws = values.shape
    nan = np.full(quantities, np.nan)
    if draws < 4 or quantities == 0:
        return nan, nan.copy(), nan.copy()
    if quantities > _CHUNK:
        # Blocks of quantities keep the temporaries small enough to be reused rather than paged in anew,
        # and run on every core: numpy's sorts, transforms and ufuncs release the GIL.
        from concurrent.futures import ThreadPoolExecutor

        blocks = [values[i : i + _CHUNK] for i in range(0, quantities, _CHUNK)]
        with ThreadPoolExecutor(max_workers=min(len(blocks), os.cpu_count() or 1)) as pool:
            parts = list(pool.map(rhat_ess, blocks))
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    bad = np.isnan(values).reshape(quantities, -1).any(axis=1)
    values = np.where(bad[:, None, None], 0.0, values)
    split = _split(values)
    folded = np.abs(split - np.median(split.reshape(quantities, -1), axis=1)[:, None, None])
    z_split = _z_scale_rows(split)
    rhats = np.maximum(_rhat_rows(z_split), _rhat_rows(_z_scale_rows(folded)))
    if chains < 2:
        rhats = nan.copy()
    bulk = _ess_rows(z_split)
    ordered = np.sort(values.reshape(quantities, -1), axis=1)
    tails = []
    for p in (0.05, 0.95):
        # The type-7 quantile in the arithmetic of scipy.stats.mstats.mquantiles (ArviZ's), ties and all.
        aleph = ordered.shape[1] * p + (1.0 - p)
        k = int(np.floor(np.clip(aleph, 1, ordered.shape[1] - 1)))
        gamma = float(np.clip(aleph - k, 0.0, 1.0))
        threshold = (1.0 - gamma) * ordered[:, k - 1] + gamma * ordered[:, k]
        tails.append(_ess_rows((split <= threshold[:, None, None]).astype(float)))
    tail = np.minimum(*tails)
    for array in (rhats, bulk, tail):
        array[bad] = np.nan
    return rhats, bulk, tail


def rhat(ary: np.ndarray) -> float:
    """Rank-normalised split R-hat of one quantity's draws ``(chains, draws)``."""
    return float(rhat_ess(np.asarray(ary, dtype=float)[None])[0][0])


def ess_bulk(ary: np.ndarray) -> float:
    """Bulk effective sample size of one quantity's draws ``(chains, draws)``."""
    return float(rhat_ess(np.asarray(ary, dtype=float)[None])[1][0])


def ess_tail(ary: np.ndarray) -> float:
    """Tail effective sample size of one quantity's draws ``(chains, draws)``."""
    return float(rhat_ess(np.asarray(ary, dtype=float)[None])[2][0])


def _per_quantity(posterior: Any, var_names: list[str]) -> tuple[float, float, float, int]:
    """Largest R-hat and smallest bulk and tail ESS over every element of the named variables, and how many."""
    series = []
    for name in var_names:
        values = np.asarray(posterior[name].transpose("chain", "draw", ...).values, dtype=float)
        series.append(np.moveaxis(values.reshape(values.shape[0], values.shape[1], -1), 2, 0))
    values = np.concatenate(series, axis=0)
    rhats, bulk, tail = rhat_ess(values)
    # A quantity that never moves (the unit diagonal of a correlation matrix) has no R-hat and cannot
    # disagree between chains; a NaN anywhere else (NaN draws) makes the worst R-hat NaN: not converged.
    flat = values.reshape(values.shape[0], -1)
    moving = ~(flat.max(axis=1) == flat.min(axis=1))
    checked = rhats[moving]
    worst = float(np.max(checked)) if checked.size and not np.isnan(checked).any() else float("nan")
    if not moving.any():
        worst = 1.0
    return worst, float(np.min(bulk)), float(np.min(tail)), int(values.shape[0])


def rhat_passes(max_rhat: float | None) -> bool:
    """Whether the largest R-hat is at most :data:`RHAT_LIMIT` (a missing or NaN R-hat does not pass)."""
    return max_rhat is not None and max_rhat <= RHAT_LIMIT


def ess_needed(chains: int) -> int:
    """The smallest bulk and tail ESS a fit of ``chains`` chains must reach."""
    return ESS_PER_CHAIN * chains


def mcmc_diagnostics(
    posterior: Any,
    var_names: list[str],
    *,
    divergences: int,
    target_accept: float,
    attempts: int,
    tune: int | None = None,
) -> Diagnostics:
    """Divergences, R-hat and ESS of the named variables of an MCMC posterior (an xarray Dataset).

    Every name must be present: a parameter that is reported must be checked.
    """
    missing_names = [v for v in var_names if v not in posterior]
    if missing_names:
        raise ValueError(f"cannot check convergence of {missing_names}: not in the posterior")
    chains = int(posterior.sizes["chain"])
    draws = int(posterior.sizes["draw"])
    max_rhat, min_bulk, min_tail, values = _per_quantity(posterior, var_names)
    problems = []
    if divergences:
        problems.append(f"{divergences} divergent transitions: the posterior was not fully explored")
    if not rhat_passes(max_rhat):
        problems.append(f"R-hat {max_rhat:.3f} > {RHAT_LIMIT}: chains disagree")
    needed = ess_needed(chains)
    if not (min_bulk >= needed and min_tail >= needed):
        problems.append(f"effective sample size {min(min_bulk, min_tail):.0f} < {needed}: too few independent draws")
    return Diagnostics(
        engine="mcmc",
        converged=not problems,
        divergences=int(divergences),
        max_rhat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        draws=draws,
        chains=chains,
        target_accept=target_accept,
        attempts=attempts,
        checked=list(var_names),
        checked_values=values,
        warnings=problems,
        tune=tune,
    )
