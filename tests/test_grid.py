"""The exact engine's quadrature against independent integrations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import betaln, expit

from abpool.errors import InvalidDataError
from abpool.variants.grid import fit_grid
from abpool.variants.priors import BDAPrior, LogNormalPrior

ARTICLE_Y = np.array([30, 50, 55, 60])
ARTICLE_N = np.array([100, 100, 100, 100])


def brute_force_means(y, n, log_prior, phi1_range=(-5, 5), phi2_range=(-10, 32), size=(700, 2500)):
    """Posterior means of every rate on a huge uniform grid using scipy's betaln (independent code)."""
    phi1 = np.linspace(*phi1_range, size[0])
    phi2 = np.linspace(*phi2_range, size[1])
    p1, p2 = np.meshgrid(phi1, phi2, indexing="ij")
    a = np.exp(p2) * expit(p1)
    b = np.exp(p2) * expit(-p1)
    logp = log_prior(p1, p2)
    for yj, nj in zip(y, n, strict=True):
        logp = logp + betaln(a + yj, b + nj - yj) - betaln(a, b)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    return np.array([np.sum(w * (a + yj) / (a + b + nj)) for yj, nj in zip(y, n, strict=True)])


def bda_log_prior(p1, p2):
    return np.log(expit(p1)) + np.log(expit(-p1)) - 0.5 * p2


@pytest.mark.parametrize(
    ("y", "n"),
    [
        (ARTICLE_Y, ARTICLE_N),
        (np.array([3, 50, 55, 60]), np.array([10, 100, 100, 100])),
        (np.array([0, 4, 1, 9, 2]), np.array([20, 25, 30, 22, 40])),
    ],
)
def test_grid_means_match_brute_force_integration(y, n) -> None:
    post = fit_grid(y, n, BDAPrior())
    a, b = post.a, post.b
    got = post.expect((a[:, None] + y) / (a[:, None] + b[:, None] + n))
    expected = brute_force_means(y, n, bda_log_prior)
    np.testing.assert_allclose(got, expected, atol=5e-4)


def test_grid_matches_brute_force_under_lognormal_prior() -> None:
    prior = LogNormalPrior()
    y = np.array([12, 15, 9])
    n = np.array([100, 120, 90])
    post = fit_grid(y, n, prior)
    a, b = post.a, post.b
    got = post.expect((a[:, None] + y) / (a[:, None] + b[:, None] + n))
    expected = brute_force_means(
        y, n, lambda p1, p2: prior.log_density(p1, p2), phi1_range=(-6, 2), phi2_range=(-12, 20)
    )
    np.testing.assert_allclose(got, expected, atol=5e-4)


def test_single_variant_posterior_is_conjugate_beta_mixture() -> None:
    # With the proper prior and one variant, a brute-force 1-D check of the marginal of the mean.
    prior = LogNormalPrior(loc=2.0, scale=0.5)
    y, n = np.array([7]), np.array([40])
    post = fit_grid(y, n, prior)
    a, b = post.a, post.b
    got = float(post.expect((a + 7) / (a + b + 40)))

    def joint(phi2, phi1):
        aa, bb = np.exp(phi2) * expit(phi1), np.exp(phi2) * expit(-phi1)
        return np.exp(prior.log_density(phi1, phi2) + betaln(aa + 7, bb + 33) - betaln(aa, bb))

    def weighted(phi2, phi1):
        aa, bb = np.exp(phi2) * expit(phi1), np.exp(phi2) * expit(-phi1)
        return joint(phi2, phi1) * (aa + 7) / (aa + bb + 40)

    z = integrate.dblquad(joint, -8, 8, -2, 6)[0]
    m = integrate.dblquad(weighted, -8, 8, -2, 6)[0]
    assert abs(got - m / z) < 2e-4


def test_draws_follow_the_tabulated_posterior(rng) -> None:
    post = fit_grid(ARTICLE_Y, ARTICLE_N, BDAPrior())
    size = 40_000
    phi1, phi2 = post.sample(rng, size)
    # Mean of phi2 by quadrature vs the draws: tolerance from the draws' standard error.
    exact = float(post.expect(post.phi2))
    se = phi2.std() / np.sqrt(size)
    assert abs(phi2.mean() - exact) < 5 * se + 0.01

    # Whole-distribution check: the draws' CDF against the grid's CDF.
    # Each cell is uniform over its width, so the tabulated CDF is piecewise linear.
    def cdf(x):
        x = np.atleast_1d(x)
        lo = post.phi1 - post.width1 / 2
        inside = np.clip((x[:, None] - lo) / post.width1, 0.0, 1.0)
        return inside @ post.weight

    ks = stats.ks_1samp(phi1[:4000], cdf)
    # Critical value of the KS statistic at alpha = 1e-4 for n = 4000.
    assert ks.statistic < np.sqrt(-0.5 * np.log(1e-4 / 2) / 4000)


def test_improper_posterior_is_refused_under_bda_prior() -> None:
    with pytest.raises(InvalidDataError, match="improper"):
        fit_grid(np.array([0, 10]), np.array([10, 10]), BDAPrior())
    post = fit_grid(np.array([0, 10]), np.array([10, 10]), LogNormalPrior())
    assert post.edge_mass < 1e-6


def test_thousands_of_variants_and_huge_counts() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1_000, 10_000_000, size=2_000)
    y = rng.binomial(n, rng.beta(50, 950, size=n.size))
    post = fit_grid(y, n, BDAPrior())
    assert post.edge_mass < 1e-6
    a, b = post.a, post.b
    mean_rate = float(post.expect(a / (a + b)))
    assert abs(mean_rate - 0.05) < 0.005


def test_identical_rates_reach_toward_complete_pooling() -> None:
    # Equal observed rates: the posterior of a + b runs far beyond the sample sizes.
    post = fit_grid(np.array([500, 500, 500]), np.array([1000, 1000, 1000]), BDAPrior())
    conc = np.exp(post.phi2)
    assert post.expect((conc > 1000).astype(float)) > 0.5
    assert post.edge_mass < 1e-3


@pytest.mark.parametrize("loc", [60.0, -55.0])
def test_mass_beyond_the_representable_range_is_reported(loc) -> None:
    # A prior that puts a+b beyond 1e19 (or below 1e-17) pushes the posterior off the grid.
    post = fit_grid(np.array([30, 50]), np.array([100, 100]), LogNormalPrior(loc=loc, scale=2.0))
    assert post.edge_mass > 0.5


def _random_log_values(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    values = rng.normal(rng.normal(0, 300), rng.choice([1e-3, 1.0, 40.0]), shape)
    values[rng.random(shape) < rng.choice([0.0, 0.3])] = -np.inf
    if rng.random() < 0.3:
        values[rng.random(shape) < 0.5] = values.max()
    return values


def test_logsumexp_gives_scipys_digits(rng) -> None:
    # The grid's weights must not move by an ulp: the same arithmetic as SciPy, so the same numbers.
    from scipy.special import logsumexp

    from abpool.variants.grid import _logsumexp

    for _ in range(300):
        values = _random_log_values(rng, (int(rng.integers(1, 130)), int(rng.integers(1, 50))))
        for axis in (None, 0, 1):
            with np.errstate(invalid="ignore"):
                expected = logsumexp(values, axis=axis)
            np.testing.assert_array_equal(_logsumexp(values, axis=axis), expected)
    assert np.isneginf(_logsumexp(np.full((2, 3), -np.inf)))


def test_cells_are_the_ones_numpys_choice_picks(rng) -> None:
    from abpool.variants.grid import _count_at_or_below

    for _ in range(200):
        size = int(rng.integers(1, 9000))
        weight = rng.random(size) ** rng.choice([1, 30, 300])
        weight[rng.random(size) < rng.choice([0.0, 0.6])] = 0.0
        weight[0] += 1e-300  # never all zero
        cdf = np.cumsum(weight)
        cdf /= cdf[-1]
        u = rng.random(5_000)
        u[:50] = cdf[rng.integers(0, size, 50)] % 1.0  # uniforms landing exactly on cumulative weights
        np.testing.assert_array_equal(_count_at_or_below(cdf, u), cdf.searchsorted(u, side="right"))
    # The whole sampler against rng.choice's own steps, for a real posterior: the same draws from the same seed.
    post = fit_grid(np.array([3, 50, 55, 60]), np.array([10, 100, 100, 100]), BDAPrior())
    picked = np.random.default_rng(5).choice(post.weight.size, size=20_000, p=post.weight)
    reference = np.random.default_rng(5)
    reference.random(20_000)
    expected = post.phi1[picked] + (reference.random(20_000) - 0.5) * post.width1[picked]
    phi1, _ = post.sample(np.random.default_rng(5), 20_000)
    np.testing.assert_array_equal(phi1, expected)
