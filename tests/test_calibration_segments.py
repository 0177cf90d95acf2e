"""Simulation-based calibration of the segments model (Talts et al. 2018).

Parameters are drawn from the model's prior, data from the parameters, and the
model is fitted to the data. If the fit is right, the rank of each true value
among independent posterior draws is uniform; a miscalibrated posterior (too
narrow, too wide, biased) bends the rank distribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

import abpool
from abpool.segments.priors import SegmentsPrior

# Same worker as the other segments tests, so the sampler's compiled models are shared.
pytestmark = pytest.mark.xdist_group("segments")

# The article's prior shapes with half its scales: proper, and the simulated
# logits stay within a few units of 0, so no cell is stuck at 0% or 100% and
# every replicate exercises the likelihood.
SBC_PRIOR = SegmentsPrior(name="sbc", nu=3.0, location_scale=0.5, scale=0.5)
SEGMENTS, TRIALS = 4, 100
REPLICATES = 100
CHAINS, DRAWS, TUNE = 2, 500, 400
# At most this many thinned draws per replicate; fewer when the effective sample size is smaller.
MAX_RANK_DRAWS = 99
# Family-wise false-alarm probability of the test, split (Bonferroni) over the quantities checked.
FALSE_ALARM = 1e-3


def draw_from_prior(rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    """One draw of every parameter of the segments model (one treatment arm) from ``SBC_PRIOR``."""
    mu_a, mu_b = SBC_PRIOR.location_scale * rng.standard_t(SBC_PRIOR.nu, size=2)
    sigma_a, sigma_b = np.abs(rng.normal(0.0, SBC_PRIOR.scale, size=2))
    a = rng.normal(mu_a, sigma_a, size=SEGMENTS)
    b = rng.normal(mu_b, sigma_b, size=SEGMENTS)
    return {"mu_a": mu_a, "sigma_a": sigma_a, "mu_b": mu_b, "sigma_b": sigma_b, "a": a, "b": b}


def simulate_cells(rng: np.random.Generator, truth: dict) -> pd.DataFrame:
    logits = np.column_stack([truth["a"], truth["a"] + truth["b"]])
    successes = rng.binomial(TRIALS, expit(logits))
    return pd.DataFrame(
        {
            "segment": np.repeat([f"s{s}" for s in range(SEGMENTS)], 2),
            "arm": ["control", "treatment"] * SEGMENTS,
            "trials": TRIALS,
            "successes": successes.ravel(),
        }
    )


def normalised_rank(chains: np.ndarray, truth: float, rng: np.random.Generator) -> float:
    """Rank of ``truth`` among roughly independent posterior draws, spread uniformly over [0, 1).

    ``chains`` has shape ``(chains, draws)``. The draws are thinned to
    ``L = min(ESS, MAX_RANK_DRAWS)`` evenly spaced ones (autocorrelated draws
    would make ranks cluster). If the posterior is right, the rank ``r`` of
    the truth among ``L`` independent draws is uniform on ``0..L``, so
    ``(r + V) / (L + 1)`` with ``V ~ Uniform(0, 1)`` is uniform on [0, 1)
    whatever ``L`` is; that lets replicates with different ``L`` be pooled.
    """
    import arviz as az

    ess = float(az.ess(chains, method="bulk"))
    flat = chains.ravel()
    size = int(max(1, min(MAX_RANK_DRAWS, np.floor(ess))))
    thinned = flat[np.linspace(0, flat.size - 1, size).round().astype(int)]
    rank = int(np.sum(thinned < truth))
    return (rank + rng.uniform()) / (size + 1)


@pytest.mark.slow
def test_simulation_based_calibration_of_the_segments_model(seed, rng) -> None:
    """Ranks of the true mu_b and of the first segment's effect b_0 are uniform.

    Each quantity's normalised ranks get a two-sided Kolmogorov-Smirnov test
    against Uniform(0, 1) at level ``FALSE_ALARM / 2``: by Bonferroni the
    probability that a correct model fails this test is at most 1e-3 per run.
    Every fit counts, converged or not: dropping fits would condition on the
    data and bias the ranks.
    """
    names = ("mu_b", "b[0]")
    ranks = np.empty((REPLICATES, len(names)))
    unconverged = 0
    for r in range(REPLICATES):
        truth = draw_from_prior(rng)
        frame = simulate_cells(rng, truth)
        result = abpool.analyze_segments(
            frame,
            segment="segment",
            arm="arm",
            control="control",
            prior=SBC_PRIOR,
            draws=DRAWS,
            tune=TUNE,
            chains=CHAINS,
            seed=int(rng.integers(2**31)),
            on_unconverged="ignore",
        )
        unconverged += not result.diagnostics.converged
        posterior = result.tree["posterior"]
        samples = (posterior["mu_b"].values[..., 0], posterior["b"].values[..., 0, 0])
        truths = (truth["mu_b"], truth["b"][0])
        for k, (draws, value) in enumerate(zip(samples, truths, strict=True)):
            ranks[r, k] = normalised_rank(draws, float(value), rng)
    for k, name in enumerate(names):
        p_value = stats.kstest(ranks[:, k], "uniform").pvalue
        histogram = np.histogram(ranks[:, k], bins=10, range=(0, 1))[0].tolist()
        assert p_value > FALSE_ALARM / len(names), (
            f"{name}: normalised ranks are not uniform (KS p = {p_value:.2g}; deciles {histogram}; "
            f"{unconverged} of {REPLICATES} fits failed a convergence check)"
        )


def test_normalised_rank_is_uniform_for_independent_draws(rng) -> None:
    """The rank statistic itself: truth and draws from one distribution give uniform ranks."""
    values = [normalised_rank(rng.normal(size=(2, 200)), float(rng.normal()), rng) for _ in range(400)]
    assert stats.kstest(values, "uniform").pvalue > 1e-3


def test_normalised_rank_detects_an_overconfident_posterior(rng) -> None:
    """Draws far narrower than the truth's spread put the truth at the extremes: the test must see it."""
    values = [normalised_rank(0.1 * rng.normal(size=(2, 200)), float(rng.normal()), rng) for _ in range(100)]
    assert stats.kstest(values, "uniform").pvalue < 1e-6
