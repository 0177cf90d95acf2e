"""Exact engine for the hierarchical Beta-Binomial model: adaptive quadrature.

The rates integrate out analytically, so the posterior of the hyperparameters
``(a, b)`` is a two-dimensional density known up to a constant::

    p(a, b | y) ∝ p(a, b) · Π_j B(a + y_j, b + n_j - y_j) / B(a, b)

We tabulate it on a grid over ``phi1 = log(a/b)`` and ``phi2 = log(a + b)``:

1. a coarse sweep over ``phi2`` from ``PHI2_MIN`` to ``PHI2_MAX`` (a + b from
   4e-18 to 3.5e19) finds where the marginal mass lies;
2. for every ``phi2`` row, the ``phi1`` nodes are zoomed in on (or widened to)
   the region holding the conditional mass, so a sharply identified mean
   (millions of trials) and a vague one (ten trials) are both resolved;
3. a fine set of rows covers the region with mass, denser in the bulk.

Cells then carry mass ``density × width1 × width2``; posterior expectations
are weighted sums (quadrature) and draws pick a cell by mass and jitter
uniformly inside it. Mass that would lie beyond ``PHI2_MAX`` (complete pooling
beyond what floating point represents) or below ``PHI2_MIN`` is estimated
from the decay at the edge and reported as ``edge_mass``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from abpool.errors import InvalidDataError
from abpool.variants._numerics import beta_binomial_log_kernel
from abpool.variants.priors import VariantsPrior

PHI2_MIN = -40.0
PHI2_MAX = 45.0
# Log-density drop below the maximum beyond which cells are negligible (e^-25 ≈ 1e-11).
_DROP = 25.0
_COARSE_STEP = 1.5
_ROW_NODES = 48
_COARSE_ROW_NODES = 24
_MAX_ZOOM_PASSES = 12
# Bound on grid points × distinct variants evaluated at once (memory ~ 8 bytes × this × 6).
_CHUNK = 1_500_000


@dataclass(frozen=True)
class GridPosterior:
    """The tabulated posterior of ``(phi1, phi2) = (log(a/b), log(a+b))``.

    Attributes
    ----------
    phi1, phi2 : numpy.ndarray
        Cell centres, shape ``(m,)``.
    width1, width2 : numpy.ndarray
        Cell widths along each axis, shape ``(m,)``.
    weight : numpy.ndarray
        Normalised posterior mass of each cell (sums to one).
    edge_mass : float
        Estimated posterior mass outside the representable range of ``phi2``.
    log_evidence : float
        Log normalising constant (up to the omitted binomial coefficients);
        meaningful only for proper priors.
    """

    phi1: NDArray[np.float64]
    phi2: NDArray[np.float64]
    width1: NDArray[np.float64]
    width2: NDArray[np.float64]
    weight: NDArray[np.float64]
    edge_mass: float
    log_evidence: float

    @property
    def a(self) -> NDArray[np.float64]:
        """``a`` at every cell centre."""
        return np.exp(self.phi2 - np.logaddexp(0.0, -self.phi1))

    @property
    def b(self) -> NDArray[np.float64]:
        """``b`` at every cell centre."""
        return np.exp(self.phi2 - np.logaddexp(0.0, self.phi1))

    @property
    def n_points(self) -> int:
        """Number of grid cells."""
        return int(self.phi1.size)

    def expect(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Posterior expectation of per-cell ``values`` (first axis = cells)."""
        return np.tensordot(self.weight, values, axes=(0, 0))

    def sample(self, rng: np.random.Generator, size: int) -> tuple[NDArray, NDArray]:
        """Draw ``size`` independent ``(phi1, phi2)`` pairs from the tabulated posterior."""
        # rng.choice(self.weight.size, size=size, p=self.weight), step by step: the same uniforms, the same cells.
        cdf = self.weight.cumsum()
        cdf /= cdf[-1]
        if not np.isfinite(cdf[-1]):
            # Weights no sampler can use: let NumPy's own checks say why.
            return self._sample_cells(rng.choice(self.weight.size, size=size, p=self.weight), rng, size)
        return self._sample_cells(_count_at_or_below(cdf, rng.random(size)), rng, size)

    def _sample_cells(self, cells: NDArray[np.intp], rng: np.random.Generator, size: int) -> tuple[NDArray, NDArray]:
        """Jitter each drawn cell's centre uniformly inside the cell."""
        phi1 = self.phi1[cells] + (rng.random(size) - 0.5) * self.width1[cells]
        phi2 = self.phi2[cells] + (rng.random(size) - 0.5) * self.width2[cells]
        return phi1, phi2


# Buckets of the lookup table that starts each search in _count_at_or_below: a power of two, so that a
# uniform's bucket, floor(u * buckets), is exact; and the steps taken from the bucket's start before a
# binary search takes over. Most draws fall where a bucket holds a cell or two.
_GUIDE_BUCKETS = 2048
_GUIDE_STEPS = 4


def _count_at_or_below(cdf: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.intp]:
    """``cdf.searchsorted(u, side="right")`` for uniforms ``u`` in ``[0, 1)`` and a non-decreasing ``cdf``.

    The same positions, several times faster on the tens of thousands of
    unsorted draws a fit takes: a binary search per draw pays a mispredicted
    branch per step. A table of where each bucket ``[k / 2048, (k + 1) / 2048)``
    starts in ``cdf`` places every draw within the cells its bucket holds; a
    few vectorised steps count those at or below it, and draws in the rare
    buckets holding more cells are searched as before.

    Examples
    --------
    >>> import numpy as np
    >>> cdf = np.cumsum(np.random.default_rng(0).random(5000))
    >>> cdf /= cdf[-1]
    >>> u = np.random.default_rng(1).random(20_000)
    >>> bool(np.array_equal(_count_at_or_below(cdf, u), cdf.searchsorted(u, side="right")))
    True
    """
    # k / 2048 and u * 2048 are exact, so bucket k holds exactly the u with start[k] <= u < start[k + 1]:
    # every cdf value before guide[k] is <= u, and every one from guide[k + 1] on is > u.
    guide = cdf.searchsorted(np.arange(_GUIDE_BUCKETS + 1) / _GUIDE_BUCKETS, side="right")
    bucket = (u * _GUIDE_BUCKETS).astype(np.intp)
    low = guide[bucket]
    padded = np.concatenate([cdf, np.full(_GUIDE_STEPS, np.inf)])
    found = low.copy()
    for step in range(_GUIDE_STEPS):
        found += padded[low + step] <= u
    wide = np.flatnonzero(guide[bucket + 1] - low > _GUIDE_STEPS)
    if wide.size:
        found[wide] = cdf.searchsorted(u[wide], side="right")
    return found


def _log_posterior(
    phi1: NDArray[np.float64],
    phi2: NDArray[np.float64],
    successes: NDArray[np.float64],
    trials: NDArray[np.float64],
    counts: NDArray[np.float64],
    prior: VariantsPrior,
) -> NDArray[np.float64]:
    """Unnormalised log posterior of ``(phi1, phi2)`` at flat arrays of points."""
    out = np.asarray(prior.log_density(phi1, phi2), dtype=float).copy()
    chunk = max(1, _CHUNK // max(1, successes.size))
    log_a = phi2 - np.logaddexp(0.0, -phi1)
    log_b = phi2 - np.logaddexp(0.0, phi1)
    for start in range(0, phi1.size, chunk):
        sl = slice(start, start + chunk)
        kernel = beta_binomial_log_kernel(np.exp(log_a[sl]), np.exp(log_b[sl]), successes, trials)
        out[sl] += kernel @ counts
    return out


def _logsumexp(values: NDArray[np.float64], axis: int | None = None) -> NDArray[np.float64]:
    """``scipy.special.logsumexp(values, axis=axis)``, the same arithmetic and so the same digits.

    SciPy's version spends more on its array-API checks than on a row of a
    few dozen numbers, and the grid takes three per fit. As SciPy does, the
    largest term is kept out of the sum: ``log1p(sum of the others / count of
    the largest) + log(count) + largest``; an infinite or NaN result falls back
    to ``log(sum(exp(values)))``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import logsumexp
    >>> x = np.array([[0.5, -1.0, 0.5], [-np.inf, 2.0, 1e3]])
    >>> bool(np.array_equal(_logsumexp(x, axis=1), logsumexp(x, axis=1)))
    True
    >>> float(_logsumexp(x)) == float(logsumexp(x))
    True
    """
    axes = tuple(range(values.ndim)) if axis is None else axis
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        top = values.max(axis=axes, keepdims=True)
        is_top = values == top
        count = np.count_nonzero(is_top, axis=axes, keepdims=True).astype(float)
        # exp(-inf) is 0, so zeroing the largest terms after the shift is SciPy's setting them to -inf before it.
        shifted = np.exp(values - top)
        shifted[is_top] = 0.0
        total = shifted.sum(axis=axes, keepdims=True)
        total = np.where(total == 0, total, total / count)
        out = np.log1p(total) + np.log(count) + top
        finite = np.isfinite(out)
        if not finite.all():
            out = np.where(finite, out, np.log(np.exp(values).sum(axis=axes, keepdims=True)))
    return out.squeeze(axis=axes)[()]


@dataclass
class _Rows:
    """Per-row zoom state: ``phi2`` value and the current ``phi1`` bracket."""

    phi2: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]


def _zoom_rows(rows: _Rows, n_nodes: int, logp_fn) -> tuple[NDArray, NDArray, NDArray]:
    """Place ``n_nodes`` phi1 nodes per row over the region holding its conditional mass.

    Returns the node matrix ``(rows, n_nodes)``, the log density there and the
    node spacing per row.
    """
    n_rows = rows.phi2.size
    nodes = np.empty((n_rows, n_nodes))
    logp = np.empty((n_rows, n_nodes))
    pending = np.arange(n_rows)
    lo, hi = rows.lo.copy(), rows.hi.copy()
    unit = np.linspace(0.0, 1.0, n_nodes)
    for _ in range(_MAX_ZOOM_PASSES):
        if pending.size == 0:
            break
        grid = lo[pending, None] + (hi - lo)[pending, None] * unit[None, :]
        phi2 = np.repeat(rows.phi2[pending], n_nodes)
        values = logp_fn(grid.ravel(), phi2).reshape(grid.shape)
        nodes[pending] = grid
        logp[pending] = values
        row_max = values.max(axis=1, keepdims=True)
        above = values > row_max - _DROP
        first = above.argmax(axis=1)
        last = n_nodes - 1 - above[:, ::-1].argmax(axis=1)
        width = (hi - lo)[pending]
        step = width / (n_nodes - 1)
        grow_left = first == 0
        grow_right = last == n_nodes - 1
        too_coarse = (last - first) < n_nodes // 2
        new_lo = np.where(grow_left, lo[pending] - width, grid[np.arange(pending.size), np.maximum(first - 1, 0)])
        new_hi = np.where(
            grow_right, hi[pending] + width, grid[np.arange(pending.size), np.minimum(last + 1, n_nodes - 1)]
        )
        redo = grow_left | grow_right | too_coarse
        # A flat-topped row at machine precision cannot be resolved further; stop.
        redo &= step > 1e-12 * np.maximum(1.0, np.abs(lo[pending]))
        lo[pending] = np.where(redo, new_lo, lo[pending])
        hi[pending] = np.where(redo, new_hi, hi[pending])
        pending = pending[redo]
    # Rows still pending keep their last evaluated bracket; spacing follows the nodes.
    spacing = nodes[:, 1] - nodes[:, 0]
    return nodes, logp, spacing


def _initial_bracket(successes: NDArray, trials: NDArray, size: int) -> _Rows:
    smoothed = (successes + 0.5) / (trials + 1.0)
    logits = np.log(smoothed) - np.log1p(-smoothed)
    lo = np.full(size, min(logits.min(), 0.0) - 1.0)
    hi = np.full(size, max(logits.max(), 0.0) + 1.0)
    return _Rows(phi2=np.empty(size), lo=lo, hi=hi)


def _voronoi_widths(x: NDArray[np.float64], lower: float, upper: float) -> NDArray[np.float64]:
    mids = 0.5 * (x[1:] + x[:-1])
    edges = np.concatenate([[max(lower, x[0] - (mids[0] - x[0]))], mids, [min(upper, x[-1] + (x[-1] - mids[-1]))]])
    return np.diff(edges)


def check_propriety(successes: NDArray, trials: NDArray, prior: VariantsPrior) -> None:
    """Raise when the posterior under ``prior`` would be improper.

    Under ``p(a, b) ∝ (a + b)^(-5/2)`` the posterior is proper only if at least
    one variant has both a success and a failure; otherwise its mass runs off
    to ``a + b → 0``.
    """
    if prior.proper:
        return
    interior = (successes > 0) & (successes < trials)
    if not np.any(interior):
        raise InvalidDataError(
            "every variant has 0% or 100% successes, so the posterior under the "
            f"'{prior.name}' prior is improper; use the proper prior (--prior lognormal) "
            "or collect more data"
        )


def fit_grid(
    successes: NDArray[np.int64],
    trials: NDArray[np.int64],
    prior: VariantsPrior,
    *,
    fine_rows: int = 64,
    bulk_rows: int = 64,
) -> GridPosterior:
    """Tabulate the posterior of ``(log(a/b), log(a+b))`` for the Beta-Binomial model.

    Parameters
    ----------
    successes, trials : numpy.ndarray
        Per-variant counts, ``0 <= successes <= trials``, ``trials >= 1``.
    prior : VariantsPrior
        Hyperprior on ``(a, b)``.
    fine_rows, bulk_rows : int
        Number of ``phi2`` rows spread over the whole region with mass and
        over its central part (where the marginal is within e^-8 of its peak).

    Returns
    -------
    GridPosterior

    Examples
    --------
    >>> import numpy as np
    >>> from abpool.variants.priors import BDAPrior
    >>> post = fit_grid(np.array([30, 50, 55, 60]), np.array([100] * 4), BDAPrior())
    >>> a, b = post.a, post.b
    >>> round(float(post.expect((a + 30) / (a + b + 100))), 3)
    0.323
    """
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    check_propriety(successes, trials, prior)
    pairs, counts = np.unique(np.stack([successes, trials], axis=1), axis=0, return_counts=True)
    y_u, n_u, c_u = pairs[:, 0], pairs[:, 1], counts.astype(float)

    def logp_fn(phi1: NDArray, phi2: NDArray) -> NDArray:
        return _log_posterior(phi1, phi2, y_u, n_u, c_u, prior)

    # 1. Coarse sweep over phi2 to find where the mass is.
    n_coarse = int(np.ceil((PHI2_MAX - PHI2_MIN) / _COARSE_STEP)) + 1
    coarse_phi2 = np.linspace(PHI2_MIN, PHI2_MAX, n_coarse)
    rows = _initial_bracket(y_u, n_u, coarse_phi2.size)
    rows.phi2 = coarse_phi2
    nodes, logp, spacing = _zoom_rows(rows, _COARSE_ROW_NODES, logp_fn)
    coarse_marginal = _logsumexp(logp, axis=1) + np.log(spacing)
    top = coarse_marginal.max()
    keep = np.flatnonzero(coarse_marginal > top - _DROP)
    lower = coarse_phi2[max(keep[0] - 1, 0)]
    upper = coarse_phi2[min(keep[-1] + 1, coarse_phi2.size - 1)]
    bulk = np.flatnonzero(coarse_marginal > top - 8.0)
    bulk_lo = coarse_phi2[max(bulk[0] - 1, 0)]
    bulk_hi = coarse_phi2[min(bulk[-1] + 1, coarse_phi2.size - 1)]

    # 2. Fine rows, brackets warm-started from the coarse rows.
    phi2_rows = np.unique(
        np.concatenate([np.linspace(lower, upper, fine_rows), np.linspace(bulk_lo, bulk_hi, bulk_rows)])
    )
    lo_interp = np.interp(phi2_rows, coarse_phi2, nodes[:, 0])
    hi_interp = np.interp(phi2_rows, coarse_phi2, nodes[:, -1])
    fine = _Rows(phi2=phi2_rows, lo=lo_interp, hi=hi_interp)
    nodes, logp, spacing = _zoom_rows(fine, _ROW_NODES, logp_fn)
    width2_rows = _voronoi_widths(phi2_rows, PHI2_MIN, PHI2_MAX)

    log_mass = logp + np.log(spacing)[:, None] + np.log(width2_rows)[:, None]
    log_total = _logsumexp(log_mass)
    weight = np.exp(log_mass - log_total).ravel()
    weight /= weight.sum()

    row_mass = np.exp(_logsumexp(log_mass, axis=1) - log_total)
    edge_mass = _edge_mass(phi2_rows, row_mass, width2_rows)

    n_nodes = nodes.shape[1]
    return GridPosterior(
        phi1=nodes.ravel(),
        phi2=np.repeat(phi2_rows, n_nodes),
        width1=np.repeat(spacing, n_nodes),
        width2=np.repeat(width2_rows, n_nodes),
        weight=weight,
        edge_mass=float(edge_mass),
        log_evidence=float(log_total),
    )


def _edge_mass(phi2_rows: NDArray, row_mass: NDArray, widths: NDArray) -> float:
    """Estimate the mass beyond the grid's ``phi2`` range from the decay at each end."""
    density = row_mass / widths
    total = 0.0
    for end, neighbour, at_limit in (
        (0, 1, phi2_rows[0] <= PHI2_MIN + 1e-9),
        (-1, -2, phi2_rows[-1] >= PHI2_MAX - 1e-9),
    ):
        if not at_limit or density[end] <= 0:
            continue
        distance = abs(phi2_rows[end] - phi2_rows[neighbour])
        ratio = density[neighbour] / density[end]
        # Exponential tail through the two outermost rows; a non-decaying edge is unbounded.
        rate = np.log(ratio) / distance if ratio > 1 else 0.0
        total += density[end] / rate if rate > 0 else np.inf
    return min(total, 1.0)
