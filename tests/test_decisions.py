"""Decision kernels against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from abpool import decisions


def test_prob_greater_matches_beta_integral(rng) -> None:
    a, b = stats.beta(31, 71), stats.beta(51, 51)
    exact = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 0, 1)[0]  # P(b > a)
    size = 200_000
    draws = np.column_stack([a.rvs(size, random_state=rng), b.rvs(size, random_state=rng)])
    se = np.sqrt(exact * (1 - exact) / size)
    assert abs(decisions.prob_greater_matrix(draws)[1, 0] - exact) < 5 * se + 1e-12


def test_prob_best_and_expected_loss_for_two_normals(rng) -> None:
    # For X ~ N(0, 1), Y ~ N(d, 1): P(Y > X) = Phi(d / sqrt 2); E[max - X] = E[(Y - X)+].
    d, size = 0.5, 400_000
    draws = np.column_stack([rng.normal(0, 1, size), rng.normal(d, 1, size)])
    s = np.sqrt(2.0)
    p = stats.norm.cdf(d / s)
    loss_x = d * p + s * stats.norm.pdf(d / s)
    assert abs(decisions.prob_best(draws)[1] - p) < 5 * np.sqrt(p * (1 - p) / size)
    assert abs(decisions.expected_loss(draws)[0] - loss_x) < 5 * 1.5 / np.sqrt(size)


def test_intervals_of_a_known_distribution(rng) -> None:
    size = 200_000
    draws = rng.normal(0, 1, (size, 1))
    low, high = decisions.equal_tailed_interval(draws, 0.9)
    # Standard error of the 5% quantile: sqrt(0.05 · 0.95 / n) / phi(1.645) ≈ 0.0047.
    assert abs(low[0] + 1.6449) < 0.025 and abs(high[0] - 1.6449) < 0.025
    hlow, hhigh = decisions.highest_density_interval(draws, 0.9)
    # The HDI's position is weakly determined (the width is flat near the optimum); its width is not.
    assert abs((hhigh[0] - hlow[0]) - 2 * 1.6449) < 0.02
    assert abs(hlow[0] + 1.6449) < 0.15
    skewed = rng.exponential(1.0, (size, 1))
    hlow, hhigh = decisions.highest_density_interval(skewed, 0.9)
    # HDI of Exp(1) at 90% is [0, log 10].
    assert hlow[0] < 0.01 and abs(hhigh[0] - np.log(10)) < 0.05


def test_matrix_is_complementary(rng) -> None:
    draws = rng.random((1_000, 7))
    m = decisions.prob_greater_matrix(draws)
    np.testing.assert_allclose(m + m.T + np.eye(7), 1.0)


def test_rope_and_lift() -> None:
    draws = np.array([[0.10, 0.11], [0.10, 0.15]])
    absolute, relative = decisions.lift_draws(draws, 0)
    np.testing.assert_allclose(absolute[:, 1], [0.01, 0.05])
    np.testing.assert_allclose(relative[:, 1], [0.1, 0.5])
    assert decisions.prob_in_rope(absolute[:, [1]], 0.02)[0] == 0.5
    with pytest.raises(ValueError, match="rope must be greater than 0"):
        decisions.prob_in_rope(absolute, 0)


def test_many_segments_are_answered_in_blocks_with_the_same_numbers(rng, monkeypatch) -> None:
    # 150 segments: three blocks of 64 and a partial one, answered on threads, against one pass over all.
    draws = rng.beta(3.0, 7.0, size=(500, 150, 3))
    probs = [0.025, 0.5, 0.975]
    in_blocks = decisions.cell_answers(draws, 1, probs, ordered=decisions.sorted_columns(draws))
    monkeypatch.setattr(decisions, "_SEGMENT_BLOCK", 10**9)
    at_once = decisions.cell_answers(draws, 1, probs)
    assert in_blocks.keys() == at_once.keys()
    for key, value in at_once.items():
        np.testing.assert_array_equal(in_blocks[key], value, err_msg=key)


def test_a_summary_of_many_segments_is_answered_in_blocks_with_the_same_numbers(rng, monkeypatch) -> None:
    # Means, spreads and highest density intervals of 150 segments computed block by block on threads,
    # against the whole array at once: the same bits.
    draws = rng.beta(3.0, 7.0, size=(700, 150, 2))
    in_blocks = decisions.rate_answers(draws, 0, [0.05, 0.5, 0.95], 0.9, rope=0.05)
    ordered = decisions.sorted_columns(draws)
    low, high = decisions.highest_density_interval(draws, 0.9, ordered=ordered)
    expected = {
        "mean": draws.mean(axis=0),
        "sd": draws.std(axis=0, ddof=1),
        "hdi_low": low.reshape(150, 2),
        "hdi_high": high.reshape(150, 2),
    }
    monkeypatch.setattr(decisions, "_SEGMENT_BLOCK", 10**9)
    expected |= decisions.cell_answers(draws, 0, [0.05, 0.5, 0.95], ordered=ordered, rope=0.05)
    assert in_blocks.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(in_blocks[key], value, err_msg=key)
