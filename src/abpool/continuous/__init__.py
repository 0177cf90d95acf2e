"""The hierarchical normal model on arm means (BDA3 §5.4–5.5, "eight schools"): its statistical core.

``ybar_j ~ Normal(theta_j, sigma_j^2)`` with ``sigma_j = s_j / sqrt(n_j)`` known,
``theta_j ~ Normal(mu, tau^2)``, ``mu`` flat and ``tau`` flat (BDA3's default,
three arms or more) or half-Cauchy / half-normal. The pieces:

* :mod:`~abpool.continuous.stats` — per-arm ``(n, mean, M2)`` from unit-level
  values or partial aggregates, without the cancellation of raw sums;
* :mod:`~abpool.continuous.priors` — the priors on ``tau`` and the propriety check;
* :mod:`~abpool.continuous.grid` — the exact engine: ``p(tau | y)`` on an
  adaptive grid, then conditional normal draws of ``mu`` and ``theta``;
* :mod:`~abpool.continuous.pymc_engine` — the same model for NUTS, the cross-check.
"""

from abpool.continuous.grid import ContinuousDraws, TauGrid, exact_draws, fit_tau_grid
from abpool.continuous.priors import FlatPrior, HalfCauchyPrior, HalfNormalPrior, get_continuous_prior
from abpool.continuous.pymc_engine import nuts_draws
from abpool.continuous.stats import Moments, combine_moments, group_moments, merge_moments, moments_from_sums

__all__ = [
    "ContinuousDraws",
    "FlatPrior",
    "HalfCauchyPrior",
    "HalfNormalPrior",
    "Moments",
    "TauGrid",
    "combine_moments",
    "exact_draws",
    "fit_tau_grid",
    "get_continuous_prior",
    "group_moments",
    "merge_moments",
    "moments_from_sums",
    "nuts_draws",
]
