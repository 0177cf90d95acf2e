"""The stable log rising factorial, and the special functions computed without SciPy, against exact sums and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import betaln, gammaln

from abpool.variants._numerics import beta_binomial_log_kernel, log_rising_factorial


@settings(max_examples=200, deadline=None)
@given(
    a=st.floats(min_value=1e-6, max_value=1e18, allow_nan=False),
    k=st.integers(min_value=0, max_value=60),
)
def test_log_rising_factorial_matches_exact_sum(a: float, k: int) -> None:
    # For integer k the rising factorial is a finite product: an exact reference.
    expected = math.fsum(math.log(a + i) for i in range(k))
    got = float(log_rising_factorial(a, k))
    assert math.isclose(got, expected, rel_tol=1e-11, abs_tol=1e-11)


def test_log_rising_factorial_matches_gammaln_for_moderate_arguments() -> None:
    a = np.array([0.5, 3.0, 9_999.0, 10_001.0, 2e4])
    k = np.array([7.5, 100.0, 3.25, 3.25, 1e6])
    expected = gammaln(a + k) - gammaln(a)
    np.testing.assert_allclose(log_rising_factorial(a, k), expected, rtol=1e-10)


def test_kernel_equals_beta_function_ratio() -> None:
    a = np.array([0.3, 2.0, 50.0])
    b = np.array([0.7, 5.0, 80.0])
    y = np.array([0.0, 3.0, 10.0])
    n = np.array([5.0, 10.0, 10.0])
    got = beta_binomial_log_kernel(a, b, y, n)
    expected = betaln(a[:, None] + y, b[:, None] + n - y) - betaln(a[:, None], b[:, None])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_kernel_tends_to_binomial_likelihood_under_complete_pooling() -> None:
    # a + b → ∞ with mean m: the kernel tends to y log m + (n - y) log(1 - m).
    m, conc = 0.3, 1e16
    got = beta_binomial_log_kernel(
        np.array([m * conc]), np.array([(1 - m) * conc]), np.array([30.0]), np.array([100.0])
    )
    expected = 30 * math.log(m) + 70 * math.log(1 - m)
    assert math.isclose(float(got[0, 0]), expected, rel_tol=1e-9)


# ------------------------------------------------------------------ special functions without SciPy
def test_special_functions_match_scipy(rng) -> None:
    from scipy import special

    from abpool import _special

    x = np.concatenate([rng.normal(scale=30.0, size=20_000), [-800.0, -745.0, 0.0, 36.0, 800.0]])
    # SciPy's own expit changed formula between releases (1.17 differs by up to 4 units in the last place).
    np.testing.assert_allclose(_special.expit(x), special.expit(x), rtol=1e-15, atol=0)
    assert _special.expit([-800.0, 0.0, 800.0]).tolist() == [0.0, 0.5, 1.0]
    p = np.concatenate([rng.uniform(size=20_000), [1e-300, 1e-20, 0.5, 1 - 1e-16]])
    reference = special.ndtri(p)
    assert np.all(np.abs(_special.normal_quantiles(p) - reference) <= 4e-15 * np.maximum(1.0, np.abs(reference)))
    for values in (rng.normal(scale=300.0, size=50), [1000.0, 1000.0], [-np.inf, 0.0], [np.inf, 1.0], []):
        assert _special.logsumexp(values) == pytest.approx(float(special.logsumexp(values)), rel=1e-14, abs=0)


def test_chi2_survival_matches_scipy_for_every_whole_dof(rng) -> None:
    from scipy.special import chdtrc

    from abpool._special import chi2_survival

    for dof in range(1, 121):
        for x in np.concatenate([np.logspace(-4, 3.7, 40), rng.uniform(0, 5 * dof, 5), [0.0]]):
            expected = float(chdtrc(dof, x))
            assert chi2_survival(x, dof) == pytest.approx(expected, rel=1e-11, abs=1e-300), (dof, x)
    assert chi2_survival(np.inf, 3) == 0.0 and np.isnan(chi2_survival(np.nan, 3))
    with pytest.raises(ValueError, match="whole number"):
        chi2_survival(1.0, 0)
