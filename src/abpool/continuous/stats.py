"""Per-arm sufficient statistics of a continuous metric, computed without cancellation.

The hierarchical normal model needs, for every arm, the count ``n``, the mean
and the sum of squared deviations ``M2 = Σ (x − mean)^2`` (sample variance
``M2 / (n − 1)``, standard error of the mean ``sqrt(M2 / (n − 1) / n)``). They
are held as :class:`Moments` triples, which merge exactly (Chan, Golub &
LeVeque 1979): a database can return partial aggregates per partition and
:func:`combine_moments` turns them into per-arm triples.

Why not ``Σx`` and ``Σx²``: ``M2 = Σx² − n·mean²`` subtracts two numbers of
size ``n·mean²`` to get one of size ``n·sd²``. When the mean is large relative
to the standard deviation (timestamps, prices in cents, latencies in
nanoseconds: values ``1e9 + N(0, 1)``) the two agree in all their digits and
the difference is rounding noise, possibly negative. Sums of ``x − c`` with a
shift ``c`` near the mean avoid it (:func:`moments_from_sums` takes the shift
and refuses sums that have lost the variance); partial ``(n, mean, M2)``
aggregates never have the problem.

Examples
--------
>>> keys, arms = group_moments(["A", "B", "A"], [1e9 + 1, 1e9, 1e9 + 3])
>>> keys.tolist(), arms.n.tolist(), arms.mean.tolist(), arms.m2.tolist()
(['A', 'B'], [2.0, 1.0], [1000000002.0, 1000000000.0], [2.0, 0.0])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from abpool.errors import InvalidDataError

# Sums whose M2 is below this fraction of Σ(x − shift)^2 have lost more than ~8 of their ~16 digits.
_CANCELLATION = 1e-8


class Moments(NamedTuple):
    """Count, mean and sum of squared deviations of one or several groups (arrays of equal shape).

    Examples
    --------
    >>> m = Moments(n=np.array([4.0]), mean=np.array([2.0]), m2=np.array([12.0]))
    >>> m.variance().tolist(), m.standard_error().tolist()
    ([4.0], [1.0])
    """

    n: NDArray[np.float64]
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]

    def variance(self) -> NDArray[np.float64]:
        """Sample variance ``M2 / (n − 1)``; every group needs at least two values."""
        n = np.asarray(self.n, dtype=float)
        few = np.flatnonzero(n < 2)
        if few.size:
            raise InvalidDataError(
                f"group {few[0]} has {n[few[0]]:g} value(s); a variance needs at least 2, so drop or merge the group"
            )
        return np.asarray(self.m2, dtype=float) / (n - 1.0)

    def standard_error(self) -> NDArray[np.float64]:
        """Standard error of each mean, ``sqrt(M2 / (n − 1) / n)``: the model's ``sigma_j``."""
        return np.sqrt(self.variance() / np.asarray(self.n, dtype=float))


def _as_moments(n: ArrayLike, mean: ArrayLike, m2: ArrayLike) -> Moments:
    n_arr, mean_arr, m2_arr = (np.asarray(v, dtype=float) for v in (n, mean, m2))
    if not (n_arr.shape == mean_arr.shape == m2_arr.shape):
        raise InvalidDataError(
            f"n, mean and M2 must have one value per group each, got shapes {n_arr.shape}, {mean_arr.shape} "
            f"and {m2_arr.shape}"
        )
    if not np.all(np.isfinite(n_arr) & (n_arr >= 0)):
        raise InvalidDataError("counts must be finite and non-negative; check the aggregates")
    if not np.all(np.isfinite(m2_arr) & (m2_arr >= 0)):
        raise InvalidDataError("sums of squared deviations (M2) must be finite and non-negative; check the aggregates")
    if not np.all(np.isfinite(mean_arr[n_arr > 0])):
        raise InvalidDataError("means of non-empty groups must be finite; check the aggregates")
    return Moments(n_arr, mean_arr, m2_arr)


def moments_from_sums(n: ArrayLike, total: ArrayLike, total_sq: ArrayLike, *, shift: ArrayLike = 0.0) -> Moments:
    """Moments from the sums ``Σ(x − shift)`` and ``Σ(x − shift)^2`` of each group.

    ``M2 = Σ(x − c)^2 − (Σ(x − c))^2 / n`` is exact in exact arithmetic for any
    shift ``c`` but, in floating point, keeps only the digits in which the two
    terms differ: with ``c = 0`` and values ``1e9 + N(0, 1)`` both terms are
    about ``n·1e18`` and their difference ``n`` is lost entirely (it can even
    come out negative). With ``c`` near the mean (the first value of the group,
    a previous day's mean) the terms are ``O(n·sd^2)`` and nothing is lost.
    Sums that have lost more than about half their digits are refused rather
    than returned wrong.

    Parameters
    ----------
    n : array_like
        Number of values per group, at least 1.
    total, total_sq : array_like
        ``Σ(x − shift)`` and ``Σ(x − shift)^2`` per group.
    shift : array_like
        The shift ``c`` the sums were taken around (scalar or one per group).

    Returns
    -------
    Moments

    Raises
    ------
    InvalidDataError
        When the variance of a group cannot be recovered from its sums.

    Examples
    --------
    >>> x = 1e9 + np.array([-1.0, 0.0, 1.0])
    >>> m = moments_from_sums(3, np.sum(x - 1e9), np.sum((x - 1e9) ** 2), shift=1e9)
    >>> float(m.mean[0]), float(m.m2[0])
    (1000000000.0, 2.0)
    >>> moments_from_sums(3, x.sum(), (x**2).sum())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: group 0: its variance cannot be recovered from sums of x and x^2 ...
    """
    n_arr, s1, s2 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (n, total, total_sq)))
    c = np.broadcast_to(np.asarray(shift, dtype=float), n_arr.shape)
    if not np.all(np.isfinite(n_arr) & (n_arr >= 1)):
        raise InvalidDataError("every group needs at least one value (n >= 1); drop the empty groups")
    if not (np.all(np.isfinite(s1)) and np.all(np.isfinite(s2)) and np.all(np.isfinite(c))):
        raise InvalidDataError("sums and shifts must be finite; check the aggregates")
    m2 = s2 - s1 * s1 / n_arr
    lost = np.flatnonzero((s2 > 0) & (m2 <= _CANCELLATION * s2))
    if lost.size:
        raise InvalidDataError(
            f"group {lost[0]}: its variance cannot be recovered from sums of x and x^2 (they cancel when the mean "
            "is large relative to the spread); pass sums of (x - shift) with shift near the mean, or partial "
            "(n, mean, M2) aggregates"
        )
    return Moments(n_arr.copy(), c + s1 / n_arr, m2)


def group_moments(groups: ArrayLike, values: ArrayLike) -> tuple[NDArray, Moments]:
    """Per-group ``(n, mean, M2)`` from unit-level values, by the corrected two-pass algorithm.

    The first pass takes each group's mean from deviations from its first
    value; the second sums squared deviations from that mean and subtracts the
    (tiny) square of their sum, which removes the rounding error of the mean
    (Chan, Golub & LeVeque 1983). Accurate for values like ``1e9 + N(0, 1)``.

    Parameters
    ----------
    groups : array_like
        Group label of every value (any sortable labels).
    values : array_like
        The values, finite, same length as ``groups``.

    Returns
    -------
    keys : numpy.ndarray
        The distinct labels, sorted.
    moments : Moments
        One entry per key.

    Examples
    --------
    >>> keys, m = group_moments([1, 1, 2, 2], [1.0, 3.0, 10.0, 10.0])
    >>> keys.tolist(), m.mean.tolist(), m.m2.tolist()
    ([1, 2], [2.0, 10.0], [2.0, 0.0])
    """
    g = np.asarray(groups)
    x = np.asarray(values, dtype=float)
    if g.shape != x.shape or x.ndim != 1:
        raise InvalidDataError(f"groups and values must be 1-D and of equal length, got shapes {g.shape} and {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidDataError("values must be finite; drop or fix the missing and infinite values")
    keys, first, inv = np.unique(g, return_index=True, return_inverse=True)
    k = keys.size
    n = np.bincount(inv, minlength=k).astype(float)
    shift = x[first]
    mean = shift + np.bincount(inv, weights=x - shift[inv], minlength=k) / n
    dev = x - mean[inv]
    s1 = np.bincount(inv, weights=dev, minlength=k)
    m2 = np.bincount(inv, weights=dev * dev, minlength=k) - s1 * s1 / n
    return keys, Moments(n, mean, np.maximum(m2, 0.0))


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Merge two sets of moments elementwise (Chan's parallel update).

    ``n = n_a + n_b``, ``mean = mean_a + δ n_b / n``,
    ``M2 = M2_a + M2_b + δ^2 n_a n_b / n`` with ``δ = mean_b − mean_a``: only
    differences of means enter, so large means cost no digits. Either side may
    be empty (``n = 0``, mean ignored).

    Parameters
    ----------
    a, b : Moments
        Arrays of equal shape.

    Returns
    -------
    Moments

    Examples
    --------
    >>> left = Moments(np.array([2.0]), np.array([1e9 + 1.0]), np.array([2.0]))   # 1e9 + {0, 2}
    >>> right = Moments(np.array([1.0]), np.array([1e9 + 4.0]), np.array([0.0]))  # 1e9 + {4}
    >>> both = merge_moments(left, right)
    >>> float(both.n[0]), float(both.mean[0]) - 1e9, float(both.m2[0])
    (3.0, 2.0, 8.0)
    """
    a = _as_moments(*a)
    b = _as_moments(*b)
    n = a.n + b.n
    with np.errstate(invalid="ignore", divide="ignore"):
        share_b = np.where(n > 0, b.n / np.where(n > 0, n, 1.0), 0.0)
        delta = np.where((a.n > 0) & (b.n > 0), b.mean - a.mean, 0.0)
        mean = np.where(a.n > 0, a.mean + delta * share_b, b.mean)
    m2 = a.m2 + b.m2 + delta * delta * a.n * share_b
    return Moments(n, np.where(n > 0, mean, np.nan), m2)


def combine_moments(groups: ArrayLike, parts: Moments) -> tuple[NDArray, Moments]:
    """Combine partial aggregates ``(n, mean, M2)`` into one triple per group.

    The k-way form of :func:`merge_moments`: with ``N = Σ n_i``,
    ``mean = c + Σ n_i (mean_i − c) / N`` (``c`` a part's mean, so only
    deviations are summed) and ``M2 = Σ M2_i + Σ n_i (mean_i − mean)^2``. Equal,
    up to rounding, to merging the parts pairwise in any order; what a SQL
    query grouped by arm and partition returns feeds straight in.

    Parameters
    ----------
    groups : array_like
        Group label of every part.
    parts : Moments
        One ``(n, mean, M2)`` per part; empty parts (``n = 0``) are ignored.

    Returns
    -------
    keys : numpy.ndarray
        The distinct labels, sorted.
    moments : Moments
        One entry per key.

    Raises
    ------
    InvalidDataError
        When a group has no values at all.

    Examples
    --------
    >>> parts = Moments(np.array([2.0, 1.0, 3.0]), np.array([1.0, 4.0, 5.0]), np.array([2.0, 0.0, 8.0]))
    >>> keys, m = combine_moments(["A", "A", "B"], parts)
    >>> keys.tolist(), m.n.tolist(), m.mean.tolist(), m.m2.tolist()
    (['A', 'B'], [3.0, 3.0], [2.0, 5.0], [8.0, 8.0])
    """
    p = _as_moments(*parts)
    g = np.asarray(groups)
    if g.shape != p.n.shape or g.ndim != 1:
        raise InvalidDataError(f"groups must give one label per part, got shapes {g.shape} and {p.n.shape}")
    keys, inv = np.unique(g, return_inverse=True)
    k = keys.size
    n = np.bincount(inv, weights=p.n, minlength=k)
    empty = np.flatnonzero(n == 0)
    if empty.size:
        raise InvalidDataError(f"group {keys[empty[0]].item()!r} has no values; drop it before combining")
    used = p.n > 0
    inv_used = inv[used]
    n_i, mean_i, m2_i = p.n[used], p.mean[used], p.m2[used]
    # Shift by the mean of one non-empty part of each group (which one does not matter), so the weighted
    # sum adds deviations, not values of 1e9.
    shift = np.empty(k)
    shift[inv_used] = mean_i
    mean = shift + np.bincount(inv_used, weights=n_i * (mean_i - shift[inv_used]), minlength=k) / n
    between = n_i * (mean_i - mean[inv_used]) ** 2
    m2 = np.bincount(inv_used, weights=m2_i, minlength=k) + np.bincount(inv_used, weights=between, minlength=k)
    return keys, Moments(n, mean, m2)
