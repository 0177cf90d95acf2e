"""The few special functions a one-off fit needs, in numpy and the standard library.

Importing :mod:`scipy.special` costs about a quarter of a CPU second, a sixth of
a whole ``abpool segments`` command on the article's data, for four functions
whose exact forms are short: the logistic function, the normal quantile (the
C implementation of Wichura's AS241 in :mod:`statistics`), the chi-square
survival function for whole degrees of freedom (a finite sum), and
``logsumexp``. Each is checked against SciPy in the test suite.
"""

from __future__ import annotations

import functools
import math
import statistics

import numpy as np
from numpy.typing import ArrayLike, NDArray

_STANDARD_NORMAL = statistics.NormalDist()


def expit(x: ArrayLike) -> NDArray[np.float64]:
    """The logistic function ``1 / (1 + exp(-x))``, computed in place (SciPy's ``expit`` to 1e-15).

    Examples
    --------
    >>> expit([-800.0, 0.0, 2.0]).round(6).tolist()
    [0.0, 0.5, 0.880797]
    """
    out = np.negative(np.asarray(x, dtype=float))
    with np.errstate(over="ignore"):  # exp(800) is inf, and 1 / (1 + inf) is the right 0
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def normal_quantiles(probabilities: ArrayLike) -> NDArray[np.float64]:
    """Quantiles of the standard normal distribution (SciPy's ``ndtri``), to within 2e-15.

    Examples
    --------
    >>> normal_quantiles([0.025, 0.5, 0.975]).round(4).tolist()
    [-1.96, 0.0, 1.96]
    """
    inverse = _STANDARD_NORMAL.inv_cdf
    flat = np.asarray(probabilities, dtype=float)
    return np.array([inverse(p) for p in flat.ravel().tolist()], dtype=float).reshape(flat.shape)


@functools.lru_cache(maxsize=8)
def rank_normal_scores(n: int) -> NDArray[np.float64]:
    """Blom's normal scores of every rank a sample of ``n`` can take, whole or tied halves: 1, 1.5, …, n.

    ``rank_normal_scores(n)[2 * rank - 2]`` is the score of ``rank`` (read-only; cached per ``n``).

    Examples
    --------
    >>> rank_normal_scores(3).round(3).tolist()
    [-0.869, -0.396, 0.0, 0.396, 0.869]
    """
    scores = normal_quantiles((np.arange(2, 2 * n + 1) / 2.0 - 0.375) / (n + 0.25))
    scores.flags.writeable = False
    return scores


def chi2_survival(statistic: float, dof: int) -> float:
    """``P(X > statistic)`` for ``X`` chi-square with ``dof`` whole degrees of freedom (SciPy's ``chdtrc``).

    The survival function is then a finite sum: Poisson terms for even ``dof``,
    the normal tail and half-integer terms for odd ``dof``. Each term is
    summed on the log scale, so a statistic in the thousands gives a tiny
    probability rather than 0.

    Examples
    --------
    >>> round(chi2_survival(3.841458820694124, 1), 6)
    0.05
    >>> round(chi2_survival(10.0, 4), 6)
    0.040428
    """
    if dof < 1 or int(dof) != dof:
        raise ValueError(f"dof must be a whole number ≥ 1, got {dof}")
    x = float(statistic)
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    half = x / 2.0
    if dof % 2 == 0:
        # exp(-x/2) Σ_{i < dof/2} (x/2)^i / i!
        logs = [i * math.log(half) - math.lgamma(i + 1.0) - half for i in range(dof // 2)]
        return min(1.0, _sum_of_exponentials(logs))
    # erfc(√(x/2)) + √(2/π) exp(-x/2) Σ_{1 ≤ i ≤ (dof-1)/2} x^(i - 1/2) / (1·3·…·(2i - 1))
    log_scale = 0.5 * math.log(2.0 / math.pi) - half
    logs = [
        log_scale + (i - 0.5) * math.log(x) - (math.lgamma(2.0 * i + 1.0) - i * math.log(2.0) - math.lgamma(i + 1.0))
        for i in range(1, (dof - 1) // 2 + 1)
    ]
    return min(1.0, math.erfc(math.sqrt(half)) + _sum_of_exponentials(logs))


def _sum_of_exponentials(logs: list[float]) -> float:
    if not logs:
        return 0.0
    top = max(logs)
    return math.exp(top) * math.fsum(math.exp(value - top) for value in logs)


def logsumexp(values: ArrayLike) -> float:
    """``log(Σ exp(values))`` without overflow (SciPy's ``logsumexp`` of a 1-D array).

    Examples
    --------
    >>> round(logsumexp([1000.0, 1000.0]), 6)
    1000.693147
    >>> logsumexp([])
    -inf
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return -math.inf
    top = float(np.max(array))
    if not math.isfinite(top):
        return top
    return top + math.log(float(np.sum(np.exp(array - top))))
