"""Convergence diagnostics: what every result carries to say whether its numbers can be trusted.

A fit is *converged* when every check passed: for MCMC no divergent
transitions, rank-normalised split R-hat at most 1.01 and bulk and tail
effective sample sizes of at least 100 per chain on every checked parameter;
for the exact engine, no posterior mass beyond the grid. Problems are stated
in plain words in ``warnings``.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from abpool import _format as fmt

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

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)

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
        """
        if self.engine == "exact":
            edge = "unknown" if self.edge_mass is None else "none" if self.edge_mass == 0 else f"{self.edge_mass:.1e}"
            detail = (
                f"exact engine: {self.draws:,} independent draws, {self.grid_points or 0:,} grid cells, "
                f"mass beyond the grid {edge}"
            )
        else:
            detail = (
                f"MCMC: {self.chains} chains × {self.draws:,} draws, target_accept {self.target_accept}, "
                f"attempts {self.attempts}; divergences {self.divergences}, max R-hat {fmt.number(self.max_rhat, 4)}, "
                f"min ESS bulk {self.min_ess_bulk:,.0f} / tail {self.min_ess_tail:,.0f} "
                f"over {len(self.checked)} parameter(s)"
            )
        return f"{detail}; {self.status}"


def independent_draws(draws: int, *, edge_mass: float, grid_points: int, edge_limit: float = 1e-3) -> Diagnostics:
    """Diagnostics of independent draws from a tabulated posterior: only the grid's edge can fail.

    Examples
    --------
    >>> independent_draws(1000, edge_mass=0.02, grid_points=10).converged
    False
    """
    problems = []
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


def mcmc_diagnostics(
    posterior: Any, var_names: list[str], *, divergences: int, target_accept: float, attempts: int
) -> Diagnostics:
    """Divergences, R-hat and ESS of the named variables of an MCMC posterior (an xarray Dataset).

    Every name must be present: a parameter that is reported must be checked.
    """
    import arviz as az

    missing_names = [v for v in var_names if v not in posterior]
    if missing_names:
        raise ValueError(f"cannot check convergence of {missing_names}: not in the posterior")
    chains = int(posterior.sizes["chain"])
    draws = int(posterior.sizes["draw"])
    subset = posterior[var_names]
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        rhat = az.rhat(subset)
        ess_bulk = az.ess(subset, method="bulk")
        ess_tail = az.ess(subset, method="tail")
    max_rhat = float(max(np.nanmax(rhat[v].values) for v in var_names))
    min_bulk = float(min(np.nanmin(ess_bulk[v].values) for v in var_names))
    min_tail = float(min(np.nanmin(ess_tail[v].values) for v in var_names))
    problems = []
    if divergences:
        problems.append(f"{divergences} divergent transitions: the posterior was not fully explored")
    if not (max_rhat <= RHAT_LIMIT):
        problems.append(f"R-hat {max_rhat:.3f} > {RHAT_LIMIT}: chains disagree")
    needed = ESS_PER_CHAIN * chains
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
        warnings=problems,
    )
