"""Exact (quadrature) and MCMC (PyMC NUTS) engines agree within Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest

import abpool


def _assert_agree(exact, mcmc) -> None:
    assert mcmc.diagnostics.divergences == 0
    assert mcmc.diagnostics.converged, mcmc.diagnostics.warnings
    ex, mc = exact.summary(), mcmc.summary()
    # Standard error of the MCMC mean from its effective sample size, plus the exact side's.
    ess = mcmc.diagnostics.min_ess_bulk
    se = np.sqrt(mc["rate_sd"] ** 2 / ess + ex["rate_sd"] ** 2 / exact.rate_draws().shape[0])
    assert (np.abs(mc["rate_mean"] - ex["rate_mean"]) < 5 * se).all(), (mc["rate_mean"] - ex["rate_mean"]) / se
    for q in ("rate", "rate_ci_low", "rate_ci_high"):
        # Quantile Monte Carlo error is larger than the mean's; 5 sd/sqrt(ess) · 2 covers it.
        assert (np.abs(mc[q] - ex[q]) < 10 * se).all()
    pm_ex = exact.tree["posterior"]["population_mean"].values.ravel()
    pm_mc = mcmc.tree["posterior"]["population_mean"].values.ravel()
    # Median's standard error ≈ 1.25 sd / sqrt(n) for a roughly normal posterior.
    se_median = 1.25 * pm_ex.std() * np.sqrt(1 / ess + 1 / pm_ex.size)
    assert abs(np.median(pm_ex) - np.median(pm_mc)) < 5 * se_median


def test_engines_agree_on_the_article_data(seed) -> None:
    y, n = [30, 50, 55, 60], [100] * 4
    exact = abpool.analyze_variants(successes=y, trials=n, seed=seed)
    mcmc = abpool.analyze_variants(successes=y, trials=n, seed=seed, engine="mcmc", draws=2_000, chains=2)
    _assert_agree(exact, mcmc)
    ess = mcmc.diagnostics.min_ess_bulk
    p_exact, p_mcmc = exact.prob_greater("B", "C"), mcmc.prob_greater("B", "C")
    se = np.sqrt(p_exact * (1 - p_exact) * (1 / ess + 1 / exact.rate_draws().shape[0]))
    assert abs(p_exact - p_mcmc) < 5 * se


@pytest.mark.slow
def test_engines_agree_on_thirty_variants(seed) -> None:
    rng = np.random.default_rng(seed)
    n = rng.integers(50, 2_000, size=30)
    y = rng.binomial(n, rng.beta(8, 32, size=30))
    exact = abpool.analyze_variants(successes=y, trials=n, seed=seed)
    mcmc = abpool.analyze_variants(successes=y, trials=n, seed=seed, engine="mcmc", draws=2_000, chains=2)
    _assert_agree(exact, mcmc)
