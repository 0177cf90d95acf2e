"""Shared fixtures, and the seed of the statistical tests.

Statistical tests compare Monte Carlo estimates with an independent truth at a
tolerance derived from Monte Carlo error, so they must pass for any seed. Two
modes:

* everyday runs use a fixed seed (``DEFAULT_SEED``), so a run is repeatable and
  a failure is never a coin toss;
* ``ABPOOL_TEST_SEED=random`` draws a new seed for the session (rotating seeds,
  as numpyro and scikit-learn's global random seed do), and
  ``ABPOOL_TEST_SEED=N`` replays one. The seed is printed in the pytest header.

False-alarm budget: every statistical assertion is set so that a correct
implementation fails it with probability at most 1e-3 (most far less: 4.5 to 5
standard errors, about 1e-5 to 6e-7), and a session has about 40 of them, so
with rotating seeds a correct tree fails a run less than 4% of the time — and
each failure prints the seed that reproduces it.
"""

from __future__ import annotations

import os
import secrets
import zlib

import numpy as np
import pytest

DEFAULT_SEED = 20161129
# The command-line tests read tables out of piped output: lay it out for a wide page whatever the
# terminal running the tests is (tests of narrow terminals set COLUMNS themselves).
os.environ["COLUMNS"] = "160"


def _session_seed() -> int:
    chosen = os.environ.get("ABPOOL_TEST_SEED", "").strip().lower()
    if chosen == "random":
        return secrets.randbits(31)
    if chosen:
        return int(chosen)
    return DEFAULT_SEED


# Fixed at import: xdist workers import conftest with the same environment, but a random
# seed would differ per worker, so it is handed to them through the environment.
if os.environ.get("ABPOOL_TEST_SEED", "").strip().lower() == "random":
    os.environ["ABPOOL_TEST_SEED"] = str(secrets.randbits(31))
SESSION_SEED = _session_seed()


def pytest_report_header(config: pytest.Config) -> str:
    mode = "fixed" if SESSION_SEED == DEFAULT_SEED and not os.environ.get("ABPOOL_TEST_SEED") else "chosen"
    return (
        f"abpool test seed: {SESSION_SEED} ({mode}; ABPOOL_TEST_SEED=random rotates it, "
        f"ABPOOL_TEST_SEED={SESSION_SEED} replays it)"
    )


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    # Each test gets its own stream, derived from the session seed and its name.
    value = (SESSION_SEED + zlib.crc32(request.node.nodeid.encode())) % 2**31
    request.node.user_properties.append(("seed", value))
    print(f"seed={value} (session seed {SESSION_SEED})")
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
    import abpool

    return abpool.analyze_variants(
        successes=[30, 50, 55, 60],
        trials=[100] * 4,
        engine="mcmc",
        draws=300,
        tune=300,
        chains=2,
        seed=5,
        on_unconverged="ignore",
    )
