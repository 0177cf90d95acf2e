"""Shared fixtures.

Statistical tests draw a fresh seed every run (printed on failure, and fixed
with ABPOOL_TEST_SEED=N): their tolerances come from Monte Carlo error, so they
must pass for any seed rather than for one seed's digits.
"""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    value = int(os.environ.get("ABPOOL_TEST_SEED", secrets.randbits(31)))
    request.node.user_properties.append(("seed", value))
    print(f"seed={value}")
    return value


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def article_cells_csv(tmp_path):
    path = tmp_path / "article.csv"
    path.write_text("variant,trials,successes\nA,100,30\nB,100,50\nC,100,55\nD,100,60\n")
    return path


@pytest.fixture(scope="session")
def mcmc_fit():
    """A short two-chain MCMC fit of the article's four variants (for convergence figures and reports)."""
    import warnings

    import abpool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return abpool.analyze_variants(
            successes=[30, 50, 55, 60], trials=[100] * 4, engine="mcmc", draws=300, tune=300, chains=2, seed=5
        )
