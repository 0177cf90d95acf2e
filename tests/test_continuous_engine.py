"""The hierarchical normal model's core: closed forms, the exact grid engine, NUTS, and the moment helpers.

Every statistical check compares with an independent truth (linear algebra on
the joint Gaussian, numerical integration over ``mu``, a brute-force 2-D
quadrature over ``(mu, tau)``) at a tolerance of 5 Monte Carlo standard errors,
and runs on several seeds.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from abpool.continuous.grid import (
    TauGrid,
    check_arms,
    draw_given_tau,
    exact_draws,
    fit_tau_grid,
    log_marginal_tau,
    mu_conditional,
    theta_conditional,
)
from abpool.continuous.priors import (
    FlatPrior,
    HalfCauchyPrior,
    HalfNormalPrior,
    check_propriety,
    default_tau_scale,
    get_continuous_prior,
    prior_from_description,
)
from abpool.continuous.stats import Moments, combine_moments, group_moments, merge_moments, moments_from_sums
from abpool.errors import InvalidArgumentError, InvalidDataError

EIGHT_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_S = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
# Arm means that agree far better than their standard errors: the posterior of tau piles up at zero.
NEAR_ZERO_Y = np.array([5.02, 4.97, 5.01, 4.99, 5.03, 4.98, 5.00, 5.01, 4.99, 5.00])
NEAR_ZERO_S = np.array([1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.3, 0.7, 1.0, 1.05])
# Large samples of a metric around 1e6: standard errors of 1e-6, twelve orders below the means.
BIG_Y = 1e6 + 1e-6 * np.array([3.0, -1.0, 2.0, 0.5, -2.0, 1.0])
BIG_S = 1e-6 * np.array([1.0, 2.0, 1.5, 1.0, 0.8, 1.2])
# Standard errors six orders of magnitude apart.
WIDE_Y = np.array([0.0, 1.0, -5.0, 0.5, 2.0, -0.3])
WIDE_S = np.array([1e-3, 1.0, 1e3, 0.1, 10.0, 0.5])
DRAWS = 4000
STREAMS = [0, 1, 2]


# --------------------------------------------------------------------------- independent truths
def joint_gaussian(y: np.ndarray, s: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance of ``(mu, theta_1..J)`` given ``tau`` (flat ``mu``), by linear algebra."""
    j = y.size
    precision = np.zeros((j + 1, j + 1))
    precision[0, 0] = j / tau**2
    precision[0, 1:] = precision[1:, 0] = -1.0 / tau**2
    precision[1:, 1:] = np.diag(1.0 / s**2 + 1.0 / tau**2)
    linear = np.concatenate([[0.0], y / s**2])
    cov = np.linalg.inv(precision)
    return cov @ linear, cov


def log_integral_over_mu(y: np.ndarray, s: np.ndarray, tau: float) -> float:
    """``log ∫ Π Normal(y_j | mu, s_j^2 + tau^2) dmu`` by adaptive quadrature."""
    sd = np.sqrt(s**2 + tau**2)
    # Integrate over the offset of mu from the first arm: for means of 1e6 and standard errors of 1e-6, quadrature
    # nodes placed around 1e6 would round by 1e-10, a relative error of 1e-4 in the integrand.
    offsets = y - y[0]
    centre = float(np.sum(offsets / sd**2) / np.sum(1 / sd**2))
    width = float(1.0 / np.sqrt(np.sum(1 / sd**2)))
    peak = float(np.sum(stats.norm.logpdf(offsets, centre, sd)))

    def f(d: float) -> float:
        return math.exp(float(np.sum(stats.norm.logpdf(offsets, d, sd))) - peak)

    value, _ = integrate.quad(f, centre - 40 * width, centre + 40 * width, points=[centre], limit=200)
    return math.log(value) + peak


@functools.cache
def brute_force(dataset: str, prior_name: str) -> dict[str, np.ndarray]:
    """Posterior moments on a dense rectangular (mu, tau) grid with scipy's normal density (independent code).

    Midpoint rule in ``tau`` (the density is flat at ``tau = 0``), uniform in ``mu``;
    ``E[theta_j | mu, tau, y]`` in BDA3's precision-weighted form (eq. 5.17).
    """
    y, s = DATASETS[dataset]
    scale = y.std() + s.max()
    tau_max, n_tau, n_mu = 10.0 * scale, 1500, 1500
    h = tau_max / n_tau
    tau = (np.arange(n_tau) + 0.5) * h
    centre = float(np.mean(y))
    half_width = 6 * tau_max / math.sqrt(y.size)
    mu = np.linspace(centre - half_width, centre + half_width, n_mu)
    prior = get_continuous_prior(prior_name).resolve(s)
    log_joint = np.empty((n_tau, n_mu))
    chunks = [slice(start, start + 100) for start in range(0, n_tau, 100)]
    for sl in chunks:
        t = tau[sl, None, None]
        log_joint[sl] = stats.norm.logpdf(y, mu[None, :, None], np.sqrt(s**2 + t**2)).sum(axis=2)
    log_joint += prior.log_density(tau)[:, None]
    w = np.exp(log_joint - log_joint.max())
    w /= w.sum()
    theta = np.zeros(y.size)
    for sl in chunks:
        prec = 1.0 / s**2 + 1.0 / tau[sl, None, None] ** 2
        cond_theta = (y / s**2 + mu[None, :, None] / tau[sl, None, None] ** 2) / prec
        theta += np.einsum("tm,tmj->j", w[sl], cond_theta)
    return {
        "tau_nodes": tau,
        "tau_pdf": w.sum(axis=1) / h,
        "tau": np.sum(w * tau[:, None]),
        "mu": np.sum(w * mu[None, :]),
        "theta": theta,
    }


DATASETS = {
    "eight schools": (EIGHT_Y, EIGHT_S),
    "near zero": (NEAR_ZERO_Y, NEAR_ZERO_S),
    # The large-sample data in units of its standard errors: the same posterior, mapped by an affine change.
    "big, rescaled": ((BIG_Y - 1e6) * 1e6, BIG_S * 1e6),
}


class QuadPosterior:
    """The closed-form marginal of tau (checked against integration over mu above), by adaptive quadrature."""

    def __init__(self, y: np.ndarray, s: np.ndarray, prior: str = "flat") -> None:
        self.y, self.s, self.prior = y, s, prior
        self.lp0 = float(log_marginal_tau(np.array([0.0]), y, s, prior)[0])
        # Breakpoints at every scale of the data, so quad sees each feature.
        scales = np.concatenate([s, [np.ptp(y)]])
        scales = scales[scales > 0]
        self.edges = [0.0, *np.geomspace(scales.min() / 100, scales.max() * 100, 30)]
        self.z = self.integral(self.unnormalised)

    def unnormalised(self, t: float) -> float:
        return math.exp(float(log_marginal_tau(np.array([t]), self.y, self.s, self.prior)[0]) - self.lp0)

    def pdf(self, t: float) -> float:
        return self.unnormalised(t) / getattr(self, "z", 1.0)

    def integral(self, f, upper: float = np.inf) -> float:
        edges = [e for e in self.edges if e < upper] + [upper]
        return sum(integrate.quad(f, a, b, limit=200)[0] for a, b in itertools.pairwise(edges))

    def mean(self, fn) -> float:
        return self.integral(lambda t: fn(t) * self.unnormalised(t)) / self.z

    @functools.cached_property
    def mean_tau(self) -> float:
        return self.mean(lambda t: t)

    @functools.cached_property
    def mean_mu(self) -> float:
        return self.mean(lambda t: float(mu_conditional(np.array([t]), self.y, self.s)[0][0]))


@functools.cache
def quad_posterior(y: tuple, s: tuple, prior: str = "flat") -> QuadPosterior:
    return QuadPosterior(np.array(y), np.array(s), prior)


def assert_within(draws: np.ndarray, truth, k: float = 5.0) -> None:
    """Mean of independent draws within ``k`` standard errors of ``truth``."""
    se = draws.std(axis=0, ddof=1) / math.sqrt(draws.shape[0])
    z = (draws.mean(axis=0) - truth) / se
    assert np.all(np.abs(z) < k), z


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize(("y", "s"), [(EIGHT_Y, EIGHT_S), (WIDE_Y, np.array([0.5, 1.0, 3.0, 0.1, 2.0, 0.5]))])
@pytest.mark.parametrize("tau", [0.05, 1.0, 7.0, 200.0])
def test_conditionals_match_the_joint_gaussian(y, s, tau) -> None:
    mean, cov = joint_gaussian(y, s, tau)
    mu_hat, v_mu = mu_conditional(np.array([tau]), y, s)
    np.testing.assert_allclose(mu_hat[0], mean[0], rtol=1e-9, atol=1e-9 * np.abs(y).max())
    np.testing.assert_allclose(v_mu[0], cov[0, 0], rtol=1e-9)
    # theta | mu: the Gaussian conditioning formula on the joint, at several values of mu.
    for mu in (mean[0] - 3.0, mean[0], mean[0] + 10.0):
        gain = cov[1:, 0] / cov[0, 0]
        cond_mean = mean[1:] + gain * (mu - mean[0])
        cond_cov = cov[1:, 1:] - np.outer(cov[1:, 0], cov[0, 1:]) / cov[0, 0]
        got_mean, got_var = theta_conditional(mu, tau, y, s)
        np.testing.assert_allclose(got_mean, cond_mean, rtol=1e-9, atol=1e-9 * np.abs(y).max())
        np.testing.assert_allclose(got_var, np.diag(cond_cov), rtol=1e-8)
        # The arms are independent given (mu, tau): the conditional covariance is diagonal.
        off = cond_cov - np.diag(np.diag(cond_cov))
        assert np.abs(off).max() < 1e-9 * np.diag(cond_cov).max()


def test_conditionals_at_tau_zero_are_the_complete_pooling_limits() -> None:
    mu_hat, v_mu = mu_conditional(np.array([0.0, 1e-12]), EIGHT_Y, EIGHT_S)
    precision = 1.0 / EIGHT_S**2
    np.testing.assert_allclose(mu_hat, np.sum(precision * EIGHT_Y) / precision.sum(), rtol=1e-12)
    np.testing.assert_allclose(v_mu, 1.0 / precision.sum(), rtol=1e-12)
    mean, var = theta_conditional(3.0, 0.0, EIGHT_Y, EIGHT_S)
    assert np.all(mean == 3.0)
    assert np.all(var == 0.0)
    # Continuous at zero, and no pooling as tau grows without bound.
    mean_small, var_small = theta_conditional(3.0, 1e-9, EIGHT_Y, EIGHT_S)
    np.testing.assert_allclose(mean_small, 3.0, atol=1e-15)
    assert np.all(var_small < 1e-17)
    mean_big, var_big = theta_conditional(3.0, 1e200, EIGHT_Y, EIGHT_S)
    np.testing.assert_allclose(mean_big, EIGHT_Y, rtol=1e-15)
    np.testing.assert_allclose(var_big, EIGHT_S**2, rtol=1e-15)


@pytest.mark.parametrize(
    ("y", "s", "prior"),
    [(EIGHT_Y, EIGHT_S, "flat"), (EIGHT_Y, EIGHT_S, "half-cauchy"), (WIDE_Y, WIDE_S, "flat"), (BIG_Y, BIG_S, "flat")],
)
def test_log_marginal_of_tau_matches_integration_over_mu(y, s, prior) -> None:
    # BDA3 eq. 5.21 against a numerical integral of the likelihood over mu (the 2π constants cancel in differences).
    base = np.concatenate([s, [np.ptp(y)]]).max()
    taus = base * np.array([1e-3, 0.1, 0.5, 2.0, 30.0])
    got = log_marginal_tau(taus, y, s, prior)
    resolved = get_continuous_prior(prior).resolve(s)
    expected = np.array([log_integral_over_mu(y, s, t) for t in taus]) + resolved.log_density(taus)
    np.testing.assert_allclose(got - got[0], expected - expected[0], atol=1e-7)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("tau", [0.0, 4.0, 40.0])
def test_draws_given_tau_follow_the_joint_gaussian(seed, stream, tau) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    mu, theta = draw_given_tau(np.full(n, tau), EIGHT_Y, EIGHT_S, rng)
    if tau == 0.0:
        precision = 1.0 / EIGHT_S**2
        mean = np.full(9, np.sum(precision * EIGHT_Y) / precision.sum())
        cov = np.full((9, 9), 1.0 / precision.sum())
    else:
        mean, cov = joint_gaussian(EIGHT_Y, EIGHT_S, tau)
    joint = np.column_stack([mu, theta])
    assert_within(joint, mean)
    # Sample variances: standard error var·sqrt(2/(n−1)) for normal draws.
    var = np.diag(cov)
    z = (joint.var(axis=0, ddof=1) - var) / (var * math.sqrt(2.0 / (n - 1)))
    assert np.all(np.abs(z) < 5), z


# --------------------------------------------------------------------------- the grid against brute force
@pytest.mark.parametrize(
    ("dataset", "prior"),
    [("eight schools", "flat"), ("eight schools", "half-cauchy"), ("near zero", "flat"), ("big, rescaled", "flat")],
)
def test_grid_marginal_and_means_match_brute_force(dataset, prior) -> None:
    y, s = DATASETS[dataset]
    truth = brute_force(dataset, prior)
    grid = fit_tau_grid(y, s, prior)
    assert grid.converged
    # The density the grid draws from, against the brute-force marginal of tau (where it is not negligible).
    nodes, pdf = truth["tau_nodes"], truth["tau_pdf"]
    keep = pdf > 1e-4 * pdf.max()
    np.testing.assert_allclose(grid.pdf(nodes[keep]), pdf[keep], rtol=2e-3, atol=1e-4 * pdf.max())
    spread = math.sqrt(float(grid.expect(lambda t: mu_conditional(t, y, s)[1])))
    np.testing.assert_allclose(grid.expect(lambda t: t), truth["tau"], rtol=1e-3)
    np.testing.assert_allclose(grid.expect(lambda t: mu_conditional(t, y, s)[0]), truth["mu"], atol=1e-3 * spread)

    def theta_mean(t):
        mu_hat, _ = mu_conditional(t, y, s)
        return theta_conditional(mu_hat, t, y, s)[0]

    np.testing.assert_allclose(grid.expect(theta_mean), truth["theta"], atol=1e-3 * spread)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize(
    ("dataset", "prior"), [("eight schools", "flat"), ("eight schools", "half-cauchy"), ("near zero", "flat")]
)
def test_exact_draws_match_brute_force(seed, stream, dataset, prior) -> None:
    y, s = DATASETS[dataset]
    truth = brute_force(dataset, prior)
    post = exact_draws(y, s, prior, draws=DRAWS, seed=seed)
    assert post.mu.shape == post.tau.shape == (DRAWS,)
    assert post.theta.shape == (DRAWS, y.size)
    assert post.engine == "exact"
    assert post.chains == 1
    assert post.edge_mass < 1e-6
    assert post.n_nodes > 50
    assert post.prior["name"] == prior
    assert_within(post.tau, truth["tau"])
    assert_within(post.mu, truth["mu"])
    assert_within(post.theta, truth["theta"])
    # The whole distribution of tau, not only its mean: the mass below the brute-force median.
    nodes, pdf = truth["tau_nodes"], truth["tau_pdf"]
    cdf = np.cumsum(pdf) * (nodes[1] - nodes[0])
    median = float(np.interp(0.5, cdf, nodes + 0.5 * (nodes[1] - nodes[0])))
    below = np.mean(post.tau < median)
    assert abs(below - 0.5) < 5 * math.sqrt(0.25 / DRAWS)


@pytest.mark.parametrize("stream", STREAMS)
def test_large_samples_keep_their_digits(seed, stream) -> None:
    # Means of 1e6 with standard errors of 1e-6: the same posterior as the rescaled data, mapped back.
    small_y, small_s = DATASETS["big, rescaled"]
    grid_big = fit_tau_grid(BIG_Y, BIG_S)
    grid_small = fit_tau_grid(small_y, small_s)
    np.testing.assert_allclose(grid_big.expect(lambda t: t) * 1e6, grid_small.expect(lambda t: t), rtol=1e-6)
    mu_big = grid_big.expect(lambda t: mu_conditional(t, BIG_Y, BIG_S)[0])
    mu_small = grid_small.expect(lambda t: mu_conditional(t, small_y, small_s)[0])
    # Equal to within three spacings of doubles at 1e6 (1.2e-10, i.e. 1.2e-4 standard errors): every digit 1e6 leaves.
    assert abs((mu_big - 1e6) - mu_small * 1e-6) < 3 * np.spacing(1e6)
    truth = brute_force("big, rescaled", "flat")
    post = exact_draws(BIG_Y, BIG_S, draws=DRAWS, seed=seed)
    assert np.all(np.isfinite(post.theta))
    assert_within(post.tau * 1e6, truth["tau"])
    assert_within((post.mu - 1e6) * 1e6, truth["mu"])
    assert_within((post.theta - 1e6) * 1e6, truth["theta"])


@pytest.mark.parametrize("stream", STREAMS)
def test_tau_at_zero_when_every_arm_agrees(seed, stream) -> None:
    y, s = np.full(5, 3.0), np.array([1.0, 2.0, 1.0, 3.0, 0.5])
    grid = fit_tau_grid(y, s)
    truth = quad_posterior(tuple(y), tuple(s))
    mean_tau = truth.mean_tau
    np.testing.assert_allclose(grid.expect(lambda t: t), mean_tau, rtol=1e-4)
    # Density at zero: flat there, and it is the mode.
    np.testing.assert_allclose(grid.pdf(0.0), truth.pdf(0.0), rtol=1e-4)
    assert grid.pdf(0.0) >= grid.density.max() * (1 - 1e-6)
    post = exact_draws(y, s, draws=DRAWS, seed=seed)
    assert np.all(np.isfinite(post.theta))
    assert_within(post.tau, mean_tau)
    assert_within(post.mu, 3.0)


@pytest.mark.parametrize("stream", STREAMS)
def test_standard_errors_six_orders_apart(seed, stream) -> None:
    truth = quad_posterior(tuple(WIDE_Y), tuple(WIDE_S))
    mean_tau, mean_mu = truth.mean_tau, truth.mean_mu
    grid = fit_tau_grid(WIDE_Y, WIDE_S)
    assert grid.converged
    np.testing.assert_allclose(grid.expect(lambda t: t), mean_tau, rtol=1e-4)
    np.testing.assert_allclose(grid.expect(lambda t: mu_conditional(t, WIDE_Y, WIDE_S)[0]), mean_mu, atol=1e-5)
    post = exact_draws(WIDE_Y, WIDE_S, draws=DRAWS, seed=seed)
    assert_within(post.tau, mean_tau)
    assert_within(post.mu, mean_mu)


@pytest.mark.parametrize("stream", STREAMS)
def test_flat_prior_with_three_arms_keeps_its_heavy_tail(seed, stream) -> None:
    # p(tau | y) ~ tau^-2: no finite grid holds it, so the mass beyond the last node is drawn from the tail.
    y, s = np.array([0.0, 1.0, 3.0]), np.array([1.0, 1.0, 2.0])
    grid = fit_tau_grid(y, s)
    assert grid.tail_power == pytest.approx(2.0, abs=1e-6)
    truth = quad_posterior(tuple(y), tuple(s))
    tau_hi = float(grid.tau[-1])
    # Beyond tau_hi the density is c·tau^-2 to ~1e-8, so its mass is tau_hi · p(tau_hi).
    assert grid.edge_mass == pytest.approx(tau_hi * truth.pdf(tau_hi), rel=1e-4)
    assert 0 < grid.edge_mass < 1e-2
    # The tail probability at 100 (deep in the tail), from the draws and from the normalised closed form.
    t = 100.0
    p_beyond = 1.0 - truth.integral(truth.pdf, upper=t)
    post = exact_draws(y, s, draws=20_000, seed=seed)
    assert post.edge_mass == grid.edge_mass
    got = np.mean(post.tau > t)
    assert abs(got - p_beyond) < 5 * math.sqrt(p_beyond * (1 - p_beyond) / 20_000)


@pytest.mark.parametrize("stream", STREAMS)
def test_grid_sampler_draws_every_piece_from_its_closed_form(seed, stream) -> None:
    # A two-node grid whose three pieces all carry mass: flat in tau below e^0, density ∝ e^(-t) in
    # t = log tau on [0, 1], and a Pareto tail tau^-3 beyond e^1 — each checked against its own law.
    g0 = 0.0
    d, power = -1.0, 3.0
    pieces = np.array([math.exp(g0), math.exp(g0) * (1 - math.exp(d)) / -d, math.exp(g0 + d) / (power - 1)])
    log_z = math.log(pieces.sum())
    masses = pieces / pieces.sum()
    grid = TauGrid(
        log_tau=np.array([0.0, 1.0]),
        log_density=np.array([g0, g0 + d]) - log_z,
        cell_mass=masses[1:2],
        lower_mass=float(masses[0]),
        edge_mass=float(masses[2]),
        tail_power=power,
        converged=True,
    )
    assert integrate.quad(grid.pdf, 0, 1)[0] + integrate.quad(grid.pdf, 1, math.e)[0] == pytest.approx(
        1 - grid.edge_mass, rel=1e-10
    )
    assert float(grid.expect(lambda t: np.ones_like(t))) == pytest.approx(1.0, rel=1e-12)
    n = 200_000
    tau = grid.sample(np.random.default_rng(seed), n)
    low, high = tau < 1.0, tau > math.e
    for share, mass in ((low.mean(), grid.lower_mass), (high.mean(), grid.edge_mass)):
        assert abs(share - mass) < 5 * math.sqrt(mass * (1 - mass) / n)
    assert_within(tau[low], 0.5)  # uniform on [0, 1]
    assert_within(np.log(tau[high]) - 1.0, 1.0 / (power - 1))  # exponential with rate k − 1
    inner = np.log(tau[~(low | high)])
    assert_within(inner, 1.0 / (1.0 - math.e) + 1.0)  # mean of t under e^(-t) on [0, 1]


# --------------------------------------------------------------------------- priors and propriety
@pytest.mark.parametrize("n_arms", [1, 2])
def test_flat_prior_refuses_fewer_than_three_arms(n_arms) -> None:
    y, s = EIGHT_Y[:n_arms], EIGHT_S[:n_arms]
    for call in (lambda: fit_tau_grid(y, s), lambda: exact_draws(y, s, "flat", draws=10)):
        with pytest.raises(InvalidDataError, match=r"improper posterior.*half-cauchy.*add arms") as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("prior", ["half-cauchy", "half-normal"])
def test_proper_priors_work_with_two_arms(seed, stream, prior) -> None:
    y, s = np.array([1.0, 4.0]), np.array([1.0, 1.5])
    post = exact_draws(y, s, prior, draws=DRAWS, seed=seed)
    assert np.all(np.isfinite(post.theta))
    # Under the half-Cauchy tau has no finite variance with two arms, so compare probabilities, not means.
    truth = quad_posterior(tuple(y), tuple(s), prior)
    for t in (0.5, 2.0, 6.0):
        p_below = truth.integral(truth.pdf, upper=t)
        got = np.mean(post.tau < t)
        assert abs(got - p_below) < 5 * math.sqrt(p_below * (1 - p_below) / DRAWS) + 1e-9
    scale = default_tau_scale(s)
    assert post.prior["parameters"]["scale"] == pytest.approx(scale)


def test_priors_describe_themselves_and_round_trip() -> None:
    flat = get_continuous_prior("flat")
    assert isinstance(flat, FlatPrior) and not flat.proper
    assert flat.describe() == {"name": "flat", "text": str(flat), "parameters": {}, "proper": False}
    cauchy = get_continuous_prior("half-cauchy").resolve(EIGHT_S)
    assert cauchy.scale == pytest.approx(math.sqrt(np.mean(EIGHT_S**2)))
    described = cauchy.describe()
    assert described["proper"] and "root mean square" in described["scale_rule"]
    assert prior_from_description(described) == cauchy
    assert get_continuous_prior(HalfNormalPrior(scale=2.0)) == HalfNormalPrior(scale=2.0)
    # Given scales are kept; densities integrate to one.
    assert HalfCauchyPrior(scale=3.0).resolve(EIGHT_S).scale == 3.0
    for prior in (HalfCauchyPrior(scale=3.0), HalfNormalPrior(scale=3.0)):
        total = integrate.quad(lambda t, p=prior: math.exp(float(p.log_density(t))), 0, np.inf)[0]
        assert total == pytest.approx(1.0, rel=1e-8)
        assert prior.log_density(-1.0) == -np.inf
    with pytest.raises(InvalidArgumentError, match="no scale yet"):
        HalfCauchyPrior().log_density(1.0)
    with pytest.raises(InvalidArgumentError, match="scale must be greater than 0"):
        HalfNormalPrior(scale=-1.0)
    with pytest.raises(InvalidArgumentError, match="prior must be one of flat, half-cauchy, half-normal"):
        get_continuous_prior("uniform")
    check_propriety(FlatPrior(), 3)
    check_propriety(HalfCauchyPrior(), 1)


def test_invalid_arms_are_refused_in_one_line() -> None:
    cases = [
        (([1.0, 2.0], [1.0]), "two 1-D arrays"),
        (([1.0, np.nan, 2.0], [1.0, 1.0, 1.0]), "mean of arm 1 must be finite"),
        (([1.0, 2.0, 3.0], [1.0, -1.0, 1.0]), "standard error of arm 1 must be finite and positive"),
        (([1.0, 2.0, 3.0], [1.0, 1.0, np.inf]), "standard error of arm 2"),
        (([], []), "two 1-D arrays"),
    ]
    for (y, s), message in cases:
        with pytest.raises(InvalidDataError, match=message) as info:
            check_arms(y, s)
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidArgumentError, match="draws must be an integer of at least 1"):
        exact_draws(EIGHT_Y, EIGHT_S, draws=0)
    with pytest.raises(InvalidArgumentError, match=r"tau must be finite and at least 0, got -1\.0"):
        mu_conditional([1.0, -1.0], EIGHT_Y, EIGHT_S)


def test_a_generator_or_a_seed_gives_repeatable_draws() -> None:
    a = exact_draws(EIGHT_Y, EIGHT_S, draws=100, seed=7)
    b = exact_draws(EIGHT_Y, EIGHT_S, draws=100, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a.theta, b.theta)


# --------------------------------------------------------------------------- exact against NUTS
@pytest.mark.slow
def test_exact_and_nuts_agree_on_eight_schools(seed) -> None:
    import arviz as az

    from abpool.continuous.pymc_engine import nuts_draws

    chains, per_chain = 2, 2000
    nuts = nuts_draws(EIGHT_Y, EIGHT_S, draws=per_chain, tune=1000, chains=chains, seed=seed)
    exact = exact_draws(EIGHT_Y, EIGHT_S, draws=DRAWS, seed=seed)
    assert nuts.engine == "nuts" and nuts.chains == chains
    assert nuts.theta.shape == (chains * per_chain, 8)
    # A few divergences at most: non-centred eight schools under the flat prior is an easy geometry.
    assert nuts.divergences <= 10
    grid = fit_tau_grid(EIGHT_Y, EIGHT_S)
    truth = {
        "tau": float(grid.expect(lambda t: t)),
        "mu": float(grid.expect(lambda t: mu_conditional(t, EIGHT_Y, EIGHT_S)[0])),
    }
    columns = {"tau": (nuts.tau, exact.tau), "mu": (nuts.mu, exact.mu)}
    for j in range(8):
        columns[f"theta[{j}]"] = (nuts.theta[:, j], exact.theta[:, j])
    for name, (mc, ex) in columns.items():
        chained = mc.reshape(chains, per_chain)
        assert float(az.rhat(chained)) < 1.01, name
        ess = float(az.ess(chained))
        # Monte Carlo error of the NUTS mean from its effective sample size, plus the exact side's.
        se = math.sqrt(mc.var() / ess + ex.var() / ex.size)
        assert abs(mc.mean() - ex.mean()) < 5 * se, (name, (mc.mean() - ex.mean()) / se)
        if name in truth:
            assert abs(mc.mean() - truth[name]) < 5 * math.sqrt(mc.var() / ess), name


# --------------------------------------------------------------------------- moment helpers
def reference_moments(x: np.ndarray, centre: float) -> tuple[float, float]:
    """Mean and M2 of values near ``centre``: their offsets from it are exact, then summed exactly."""
    dev = x - centre
    mean_dev = math.fsum(dev) / dev.size
    return centre + mean_dev, math.fsum((dev - mean_dev) ** 2)


def test_naive_sums_fail_where_the_stable_helpers_do_not(rng) -> None:
    x = 1e9 + rng.standard_normal(10_000)
    ref_mean, ref_m2 = reference_moments(x, 1e9)
    # The textbook formula from Σx and Σx²: rounding noise, often negative.
    naive = np.sum(x**2) - x.size * np.mean(x) ** 2
    assert abs(naive - ref_m2) > 0.1 * ref_m2
    with pytest.raises(InvalidDataError, match="cannot be recovered from sums") as info:
        moments_from_sums(x.size, x.sum(), np.sum(x**2))
    assert "\n" not in str(info.value)
    # Sums of shifted values (shift = the first value) keep every digit.
    c = x[0]
    shifted = moments_from_sums(x.size, np.sum(x - c), np.sum((x - c) ** 2), shift=c)
    np.testing.assert_allclose(shifted.mean, ref_mean, rtol=1e-15)
    np.testing.assert_allclose(shifted.m2, ref_m2, rtol=1e-10)
    _, grouped = group_moments(np.zeros(x.size, dtype=int), x)
    np.testing.assert_allclose(grouped.mean, ref_mean, rtol=1e-15)
    np.testing.assert_allclose(grouped.m2, ref_m2, rtol=1e-12)
    np.testing.assert_allclose(grouped.standard_error(), math.sqrt(ref_m2 / (x.size - 1) / x.size), rtol=1e-12)


def test_partial_aggregates_merge_exactly(rng) -> None:
    # Three arms around 1e9, split into random partitions as a SQL query grouped by (arm, partition) returns them.
    arms = np.repeat(np.array(["A", "B", "C"]), [5000, 3000, 7000])
    x = 1e9 + np.where(arms == "B", 3.0, 0.0) + rng.standard_normal(arms.size) * np.where(arms == "C", 2.0, 1.0)
    partition = rng.integers(0, 13, size=x.size)
    labels = np.char.add(np.char.add(arms, ":"), partition.astype(str))
    part_keys, parts = group_moments(labels, x)
    part_arms = np.array([key.split(":")[0] for key in part_keys])
    keys, combined = combine_moments(part_arms, parts)
    assert keys.tolist() == ["A", "B", "C"]
    for i, arm in enumerate(keys):
        ref_mean, ref_m2 = reference_moments(x[arms == arm], 1e9)
        assert combined.n[i] == np.sum(arms == arm)
        np.testing.assert_allclose(combined.mean[i], ref_mean, rtol=1e-15)
        # The partial means are doubles near 1e9 (spacing 1.2e-7): that bounds the between-part term, ~1e-9 here.
        np.testing.assert_allclose(combined.m2[i], ref_m2, rtol=1e-8)
        # Chan's pairwise merge in a random order agrees.
        mine = np.flatnonzero(part_arms == arm)
        rng.shuffle(mine)
        acc = Moments(np.array([0.0]), np.array([np.nan]), np.array([0.0]))
        for k in mine:
            acc = merge_moments(acc, Moments(parts.n[k : k + 1], parts.mean[k : k + 1], parts.m2[k : k + 1]))
        np.testing.assert_allclose(acc.mean[0], ref_mean, rtol=1e-15)
        np.testing.assert_allclose(acc.m2[0], ref_m2, rtol=1e-8)


def test_moment_helpers_refuse_what_they_cannot_summarise() -> None:
    one = Moments(np.array([1.0, 5.0]), np.array([2.0, 3.0]), np.array([0.0, 4.0]))
    with pytest.raises(InvalidDataError, match="group 0 has 1 value"):
        one.standard_error()
    empty = Moments(np.array([0.0, 2.0]), np.array([np.nan, 1.0]), np.array([0.0, 2.0]))
    with pytest.raises(InvalidDataError, match="group 'A' has no values"):
        combine_moments(["A", "B"], empty)
    _, ok = combine_moments(["B", "B"], empty)
    assert ok.n.tolist() == [2.0] and ok.mean.tolist() == [1.0]
    with pytest.raises(InvalidDataError, match="non-negative"):
        merge_moments(one, Moments(np.array([1.0, 1.0]), np.array([0.0, 0.0]), np.array([-1.0, 0.0])))
    with pytest.raises(InvalidDataError, match="finite"):
        group_moments([0, 1], [1.0, np.inf])
    with pytest.raises(InvalidDataError, match="at least one value"):
        moments_from_sums(0, 0.0, 0.0)
    # A constant group taken around its own value is exact, not a cancellation.
    exact = moments_from_sums(4, 0.0, 0.0, shift=7.0)
    assert exact.mean.tolist() == [7.0] and exact.m2.tolist() == [0.0]
