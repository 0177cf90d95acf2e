"""Monte Carlo intervals of the calibration studies."""

from __future__ import annotations

MC_LEVEL = 0.95


def wilson_interval(mean: float, n: int, level: float = MC_LEVEL) -> list[float]:
    """Wilson score interval for a proportion (or a mean of values in [0, 1]) over ``n`` trials.

    Examples
    --------
    >>> [round(x, 4) for x in wilson_interval(0.0, 1000)]
    [0.0, 0.0038]
    """
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(mean * n, n, alpha=1.0 - level, method="wilson")
    # Guard against rounding at 0 and 1 so the interval always holds the estimate.
    return [max(0.0, min(float(low), mean)), min(1.0, max(float(high), mean))]
