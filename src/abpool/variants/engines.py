"""The hierarchical Beta-Binomial model for A/B/n tests: both engines' model code.

``y_j ~ Binomial(n_j, theta_j)``, ``theta_j ~ Beta(a, b)``, ``(a, b) ~ prior``.

* :func:`exact_draws` — the default engine: quadrature over the hyperparameters
  (:mod:`abpool.variants.grid`), then conjugate ``Beta`` draws of every rate.
* :func:`build_pymc_model` — the same model for PyMC's NUTS (the cross-check).
  The rates are integrated out (a Beta-Binomial likelihood) so NUTS explores
  only ``(log(a/b), log(a+b))``: the centred model's funnel, which produces
  divergences when the variants are similar, never arises. The rates are then
  drawn from their exact conditional ``Beta(a + y_j, b + n_j - y_j)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from abpool.variants.grid import GridPosterior, check_propriety, fit_grid
from abpool.variants.priors import VariantsPrior


@dataclass(frozen=True)
class HyperDraws:
    """Posterior draws of the population parameters and of every rate.

    ``rates`` has shape ``(chains, draws, variants)``; the others ``(chains, draws)``.
    """

    a: NDArray[np.float64]
    b: NDArray[np.float64]
    rates: NDArray[np.float64]


def conditional_rate_draws(
    a: NDArray, b: NDArray, successes: NDArray, trials: NDArray, rng: np.random.Generator
) -> NDArray:
    """Draw every rate from ``Beta(a + y_j, b + n_j - y_j)`` for each ``(a, b)`` draw."""
    # a or b underflow to 0 when the population mean is within 1e-300 of 0 or 1; a Beta parameter
    # must stay positive, and the smallest positive double changes no draw.
    tiny = np.finfo(float).tiny
    a = np.maximum(np.asarray(a, dtype=float), tiny)[..., None]
    b = np.maximum(np.asarray(b, dtype=float), tiny)[..., None]
    # Failures first: b + trials - successes would round b away when trials ≫ b and the arm is at 100%.
    return rng.beta(a + successes, b + (trials - successes))


def exact_draws(
    successes: NDArray, trials: NDArray, prior: VariantsPrior, draws: int, rng: np.random.Generator
) -> tuple[HyperDraws, GridPosterior]:
    """Independent posterior draws from the exact (quadrature) engine."""
    grid = fit_grid(successes, trials, prior)
    phi1, phi2 = grid.sample(rng, draws)
    a = np.exp(phi2 - np.logaddexp(0.0, -phi1))
    b = np.exp(phi2 - np.logaddexp(0.0, phi1))
    rates = conditional_rate_draws(a, b, successes, trials, rng)
    return HyperDraws(a=a[None], b=b[None], rates=rates[None]), grid


class _PytensorOps:
    @staticmethod
    def log_sigmoid(x: Any) -> Any:
        import pytensor.tensor as pt

        return -pt.softplus(-x)


def build_pymc_model(successes: NDArray, trials: NDArray, names: list[str], prior: VariantsPrior) -> Any:
    """Return the variants model as a :class:`pymc.Model` over ``(phi1, phi2)``.

    The data enter through ``pm.Data`` so the compiled model can be refitted on
    new counts of the same shape.
    """
    import pymc as pm
    import pytensor.tensor as pt

    check_propriety(np.asarray(successes, float), np.asarray(trials, float), prior)
    with pm.Model(coords={"variant": names}) as model:
        y = pm.Data("successes", np.asarray(successes, dtype=np.int64), dims="variant")
        n = pm.Data("trials", np.asarray(trials, dtype=np.int64), dims="variant")
        phi1 = pm.Flat("logit_mean")
        phi2 = pm.Flat("log_concentration")
        pm.Potential("hyperprior", prior.log_density(phi1, phi2, _PytensorOps()))
        a = pm.Deterministic("a", pt.exp(phi2 - pt.softplus(-phi1)))
        b = pm.Deterministic("b", pt.exp(phi2 - pt.softplus(phi1)))
        pm.BetaBinomial("y", alpha=a, beta=b, n=n, observed=y, dims="variant")
    return model
