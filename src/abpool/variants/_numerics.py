"""Numerically stable special-function helpers used by the exact engine.

The Beta-Binomial likelihood is a ratio of Beta functions. Written with
``gammaln`` it suffers catastrophic cancellation when ``a + b`` is large
(``gammaln(1e15 + 30) - gammaln(1e15)`` loses every digit), which is exactly
the near-complete-pooling region the grid has to reach. These helpers stay
accurate for any positive argument.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Above this the Stirling series for log Gamma is accurate to ~1e-20 relative,
# and gammaln differences start losing digits.
_STIRLING_THRESHOLD = 1.0e4


def _stirling_correction(x: NDArray[np.float64]) -> NDArray[np.float64]:
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0)))


def log_rising_factorial(a: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
    """Return ``log Gamma(a + k) - log Gamma(a)`` without cancellation.

    Parameters
    ----------
    a : array_like
        Positive base, broadcast against ``k``.
    k : array_like
        Non-negative increment (need not be an integer).

    Returns
    -------
    numpy.ndarray
        ``log((a)_k)``, the log of the rising factorial (Pochhammer symbol).

    Examples
    --------
    >>> import numpy as np
    >>> float(log_rising_factorial(2.0, 3.0))  # log(2 * 3 * 4)
    3.1780538303479458
    >>> round(float(log_rising_factorial(1e15, 2.0)), 6)  # log(1e15 * (1e15 + 1))
    69.077553
    """
    a = np.asarray(a, dtype=float)
    k = np.asarray(k, dtype=float)
    if a.ndim == 2 and a.shape[1] == 1 and k.ndim == 2 and k.shape[0] == 1:
        return _log_rising_factorial_table(a[:, 0], k[0])
    a_arr, k_arr = np.broadcast_arrays(a, k)
    out = np.empty(a_arr.shape, dtype=float)
    large = a_arr >= _STIRLING_THRESHOLD
    if np.any(~large):
        from scipy.special import gammaln  # here, not at import: the segments command never needs SciPy

        small = ~large
        out[small] = gammaln(a_arr[small] + k_arr[small]) - gammaln(a_arr[small])
    if np.any(large):
        aa = a_arr[large]
        kk = k_arr[large]
        # (a+k-1/2)log(a+k) - (a-1/2)log(a) - k, rearranged so no large terms cancel.
        out[large] = (
            (aa - 0.5) * np.log1p(kk / aa)
            + kk * np.log(aa + kk)
            - kk
            + _stirling_correction(aa + kk)
            - _stirling_correction(aa)
        )
    return out


def _log_rising_factorial_table(a: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log((a_i)_{k_j})`` for every pair: rows of ``a`` split once by method, no per-element masks."""
    out = np.empty((a.size, k.size))
    large = a >= _STIRLING_THRESHOLD
    small_a = a[~large][:, None]
    if small_a.size:
        from scipy.special import gammaln

        out[~large] = gammaln(small_a + k) - gammaln(small_a)
    large_a = a[large][:, None]
    if large_a.size:
        shifted = large_a + k
        out[large] = (
            (large_a - 0.5) * np.log1p(k / large_a)
            + k * np.log(shifted)
            - k
            + _stirling_correction(shifted)
            - _stirling_correction(large_a)
        )
    return out


def beta_binomial_log_kernel(
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    successes: NDArray[np.float64],
    trials: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Return ``log B(a + y, b + n - y) - log B(a, b)`` for every grid point and variant.

    ``a`` and ``b`` have shape ``(m,)`` (grid points); ``successes`` and
    ``trials`` have shape ``(j,)``. The result has shape ``(m, j)``. The
    binomial coefficient is omitted: it does not depend on ``(a, b)``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import betaln
    >>> a, b, y, n = np.array([2.0]), np.array([3.0]), np.array([4.0]), np.array([10.0])
    >>> got = beta_binomial_log_kernel(a, b, y, n)[0, 0]
    >>> bool(np.isclose(got, betaln(6.0, 9.0) - betaln(2.0, 3.0)))
    True
    """
    a_col = a[:, None]
    b_col = b[:, None]
    return (
        log_rising_factorial(a_col, successes[None, :])
        + log_rising_factorial(b_col, (trials - successes)[None, :])
        - log_rising_factorial(a_col + b_col, trials[None, :])
    )
