"""R-hat and effective sample sizes, computed in numpy, against ArviZ's (the reference implementation)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from abpool.diagnostics import mcmc_diagnostics, rhat_ess


def arviz_reference(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array(
            [
                [float(az.rhat(row)), float(az.ess(row, method="bulk")), float(az.ess(row, method="tail"))]
                for row in values
            ]
        )


@pytest.mark.parametrize("chains", [1, 2, 4])
def test_rhat_and_ess_match_arviz(rng, chains) -> None:
    worst = 0.0
    for trial in range(12):
        draws = int(rng.integers(4, 400))
        # Random walks mixed with noise: from independent draws to chains that have not mixed at all.
        walk = rng.normal(size=(6, chains, draws)).cumsum(axis=2) * rng.uniform(0, 1)
        values = walk + rng.normal(size=walk.shape)
        if trial % 3 == 0:
            values = np.round(values, 1)  # ties, which ranks must share
        if trial % 4 == 0:
            values[1] = 7.0  # a constant quantity
        ours = np.column_stack(rhat_ess(values))
        theirs = arviz_reference(values)
        if chains == 1:
            theirs[:, 0] = np.nan  # one chain has no between-chain R-hat
        assert np.array_equal(np.isnan(ours), np.isnan(theirs))
        finite = np.isfinite(theirs)
        worst = max(worst, np.max(np.abs(ours[finite] - theirs[finite]) / np.maximum(1.0, np.abs(theirs[finite]))))
    assert worst < 1e-10


def test_many_quantities_in_blocks_give_the_same_numbers(rng) -> None:
    values = rng.normal(size=(300, 4, 60)).cumsum(axis=2)
    together = np.column_stack(rhat_ess(values))
    one_by_one = np.vstack([np.column_stack(rhat_ess(values[i : i + 1])) for i in range(len(values))])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-13)


def posterior(**variables: np.ndarray) -> xr.Dataset:
    return xr.Dataset(
        {name: (["chain", "draw", *[f"{name}_{i}" for i in range(v.ndim - 2)]], v) for name, v in variables.items()}
    )


def test_a_constant_quantity_does_not_block_convergence(rng) -> None:
    # The unit diagonal of a correlation matrix never moves: no R-hat, nothing to disagree about.
    mixed = rng.normal(size=(4, 500, 2))
    constant = np.ones((4, 500, 2))
    diagnostics = mcmc_diagnostics(
        posterior(x=mixed, diag=constant), ["x", "diag"], divergences=0, target_accept=0.8, attempts=1
    )
    assert diagnostics.converged and diagnostics.max_rhat < 1.01


def test_nan_draws_and_stuck_chains_are_not_converged(rng) -> None:
    stuck = rng.normal(size=(4, 500))
    stuck[0] += 5.0  # one chain elsewhere
    with_nan = rng.normal(size=(4, 500))
    with_nan[2, 10] = np.nan
    for values in (stuck, with_nan):
        diagnostics = mcmc_diagnostics(posterior(x=values), ["x"], divergences=0, target_accept=0.8, attempts=1)
        assert not diagnostics.converged and "R-hat" in " ".join(diagnostics.warnings)


def test_ranks_with_any_ties_are_scipys_average_ranks(rng) -> None:
    # Continuous draws (no ties), folded draws (a tied pair around the median) and discrete draws (runs of ties).
    from scipy.stats import rankdata

    from abpool.diagnostics import _ranks_by_row

    for trial in range(150):
        rows, n = int(rng.integers(1, 6)), int(rng.integers(1, 300))
        values = rng.normal(size=(rows, n))
        if trial % 3 == 1:
            values = np.abs(values - np.median(values, axis=1, keepdims=True))
        elif trial % 3 == 2:
            values = rng.integers(0, int(rng.integers(1, 20)), size=(rows, n)).astype(float)
        assert np.array_equal(_ranks_by_row(values), rankdata(values, axis=1))


def test_the_diagnostics_say_how_many_values_they_checked() -> None:
    rng = np.random.default_rng(3)
    posterior = xr.Dataset(
        {
            "sigma": (("chain", "draw"), rng.normal(size=(4, 500))),
            "a": (("chain", "draw", "segment"), rng.normal(size=(4, 500, 3))),
            "b": (("chain", "draw", "segment", "treatment"), rng.normal(size=(4, 500, 3, 2))),
        }
    )
    found = mcmc_diagnostics(posterior, ["sigma", "a", "b"], divergences=0, target_accept=0.9, attempts=1)
    assert found.checked_values == 1 + 3 + 6
    assert "over 10 values of 3 parameters (sigma, a, b)" in found.describe()
    assert found.to_dict()["checked_values"] == 10


@pytest.mark.parametrize(
    ("divergences", "rhat", "ess", "expected"),
    [
        (4, 1.004, 900.0, (0.99, 500, 1_000)),  # diverged, mixed: smaller steps only
        (0, 1.03, 900.0, (0.8, 1_500, 2_000)),  # chains disagree: tune longer, keep more
        (0, 1.004, 250.0, (0.8, 1_500, 2_000)),  # too few independent draws
        (0, None, 900.0, (0.8, 1_500, 2_000)),  # NaN draws leave no R-hat: not mixed
        (2, 1.05, 120.0, (0.99, 1_500, 2_000)),  # both
    ],
)
def test_a_refit_changes_what_the_trouble_calls_for(divergences, rhat, ess, expected) -> None:
    from abpool.diagnostics import Diagnostics
    from abpool.sampling import refit_settings

    failed = Diagnostics("mcmc", False, divergences, rhat, ess, ess, 1_000, 4)
    assert refit_settings(failed, target_accept=0.8, tune=500, draws=1_000) == expected
