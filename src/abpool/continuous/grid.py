"""Exact engine of the hierarchical normal model on arm means: a 1-D grid over ``tau``.

The model (BDA3 §5.4–5.5, "eight schools")::

    ybar_j ~ Normal(theta_j, sigma_j^2)     sigma_j known
    theta_j ~ Normal(mu, tau^2)
    p(mu, tau) ∝ p(tau)                     mu flat (see abpool.continuous.priors)

Given ``tau`` everything else is Gaussian, so ``theta`` and ``mu`` integrate out
analytically (BDA3 eqs. 5.17–5.21)::

    w_j(tau)   = 1 / (sigma_j^2 + tau^2)
    mu_hat     = Σ w_j ybar_j / Σ w_j,          V_mu = 1 / Σ w_j
    log p(tau | y) = log p(tau) + ½ log V_mu − ½ Σ log(sigma_j^2 + tau^2)
                     − ½ Σ w_j (ybar_j − mu_hat)^2          (+ const)
    mu | tau, y        ~ Normal(mu_hat, V_mu)
    theta_j | mu, tau, y ~ Normal(mu + (1 − B_j)(ybar_j − mu), (1 − B_j) sigma_j^2),
                       B_j = sigma_j^2 / (sigma_j^2 + tau^2)

The last line is eq. 5.17 written with the shrinkage factor ``B_j``: it has no
``1/tau^2`` and holds at ``tau = 0`` (``theta_j = mu``).

The one-dimensional posterior of ``x = log tau`` is tabulated on an adaptive
grid and treated as piecewise exponential between nodes (log-linear in ``x``):

* the grid spans ``[tau_lo, tau_hi]``: ``tau_lo`` is far below every scale of
  the data, where ``p(tau | y)`` is flat (it is smooth in ``tau^2``), so the
  mass on ``[0, tau_lo]`` is exactly a uniform cell; ``tau_hi`` is far above
  them, where ``p(tau | y)`` is a power law ``tau^-k`` (``k = J − 1`` under the
  flat prior, ``J + 1`` under the half-Cauchy), so the mass beyond is a Pareto
  tail in closed form, fitted to the last two nodes and reported as
  ``edge_mass``. Nothing is truncated: the flat prior with ``J = 3`` has a
  ``tau^-2`` tail that no finite grid could hold, and the draws include it;
* cells are halved where the log density departs from linear by more than
  ``_TOL`` and the cell can hold mass, so nodes gather where the mass is
  whatever the scale (a ``tau`` near zero, or a sharply identified one);
* ``tau`` is drawn by inverse CDF: a cell by its mass, then the exact inverse
  CDF of the exponential piece inside it; then ``mu | tau`` and
  ``theta | mu, tau`` from their normal conditionals, all vectorised.

Every computation is done on standardised data, ``(ybar − centre) / scale`` and
``sigma / scale``, so arm means of 1e6 with standard errors of 1e-6 are as
accurate as the eight schools.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from abpool._validation import check_int
from abpool.continuous.priors import ContinuousPrior, check_propriety, get_continuous_prior
from abpool.errors import ConvergenceWarning, InvalidArgumentError, InvalidDataError

# tau_lo = _LOW × the smallest scale of the data: p(tau | y) is flat there to ~(_LOW)^2 relative.
_LOW = 1e-4
# tau_hi = _HIGH × the largest scale: the power-law tail is exact there to ~(1/_HIGH)^2 relative.
_HIGH = 1e4
_COARSE_STEP = 0.25
# Cells whose both ends are this far below the peak of the log density hold < e^-30 of the mass each.
_DROP = 30.0
# Largest departure of the log density from linear at a cell midpoint: the cell-mass error is about this.
_TOL = 1e-5
_MAX_PASSES = 40
# Bound on tau values × arms evaluated at once (memory ~ 8 bytes × this × 4).
_CHUNK = 1_000_000
_LAGUERRE = np.polynomial.laguerre.laggauss(32)


# --------------------------------------------------------------------------- data and its frame
def check_arms(ybar: ArrayLike, sigma: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate arm means and their standard errors; return them as float arrays.

    Parameters
    ----------
    ybar : array_like
        Arm means, one per arm, finite.
    sigma : array_like
        Known standard errors of the arm means, finite and positive.

    Returns
    -------
    ybar, sigma : numpy.ndarray

    Examples
    --------
    >>> check_arms([1, 2], [0.5, 0.5])
    (array([1., 2.]), array([0.5, 0.5]))
    >>> check_arms([1, 2], [0.5, 0.0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: standard error of arm 1 must be finite and positive, got 0.0; drop the arm ...
    """
    y = np.asarray(ybar, dtype=float)
    s = np.asarray(sigma, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or y.size != s.size or y.size == 0:
        raise InvalidDataError(
            f"arm means and standard errors must be two 1-D arrays of one value per arm, got shapes {y.shape} "
            f"and {s.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise InvalidDataError(f"mean of arm {bad[0]} must be finite, got {float(y[bad[0]])!r}; check its data")
    bad = np.flatnonzero(~(np.isfinite(s) & (s > 0)))
    if bad.size:
        raise InvalidDataError(
            f"standard error of arm {bad[0]} must be finite and positive, got {float(s[bad[0]])!r}; "
            "drop the arm or check its data"
        )
    return y, s


def _check_tau(tau: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(tau, dtype=float)
    bad = ~(np.isfinite(t) & (t >= 0))
    if np.any(bad):
        raise InvalidArgumentError(f"tau must be finite and at least 0, got {float(t[bad].ravel()[0])!r}")
    return t


@dataclass(frozen=True)
class _Frame:
    """Standardised data: ``y = (ybar − centre) / scale``, ``s = sigma / scale``."""

    centre: float
    scale: float
    y: NDArray[np.float64]
    s: NDArray[np.float64]


def _frame(ybar: NDArray[np.float64], sigma: NDArray[np.float64]) -> _Frame:
    # Differences from the most precise arm are exact for close values (Sterbenz), so a weighted mean of
    # them keeps the digits that a weighted mean of values around 1e6 would lose.
    ref = float(ybar[np.argmin(sigma)])
    weights = (sigma.min() / sigma) ** 2
    centre = ref + float(np.sum(weights * (ybar - ref)) / np.sum(weights))
    dev = ybar - centre
    scale = max(float(sigma.max()), float(np.ptp(dev)))
    return _Frame(centre=centre, scale=scale, y=dev / scale, s=sigma / scale)


def _conditionals(frame: _Frame, t: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray]:
    """For standardised ``tau`` values ``t`` (1-D): log p(y | tau) with mu integrated out, mu_hat, log V_mu.

    All in standardised units; logs of ``sigma^2 + tau^2`` through ``logaddexp`` so ``tau = 0`` and
    standard errors of 1e-150 neither divide by zero nor underflow.
    """
    j = frame.y.size
    log_lik = np.empty(t.size)
    mu_hat = np.empty(t.size)
    log_v = np.empty(t.size)
    log_s2 = 2.0 * np.log(frame.s)
    with np.errstate(divide="ignore"):
        log_t2 = 2.0 * np.log(t)
    step = max(1, _CHUNK // j)
    for start in range(0, t.size, step):
        sl = slice(start, start + step)
        log_var = np.logaddexp(log_s2[None, :], log_t2[sl, None])
        # logsumexp by hand: scipy's checks cost more than the arithmetic for a few arms.
        top = (-log_var).max(axis=1)
        lse = top + np.log(np.sum(np.exp(-log_var - top[:, None]), axis=1))
        share = np.exp(-log_var - lse[:, None])
        m = share @ frame.y
        resid = frame.y[None, :] - m[:, None]
        with np.errstate(divide="ignore"):
            q = np.sum(np.exp(2.0 * np.log(np.abs(resid)) - log_var), axis=1)
        mu_hat[sl] = m
        log_v[sl] = -lse
        log_lik[sl] = -0.5 * lse - 0.5 * log_var.sum(axis=1) - 0.5 * q
    return log_lik, mu_hat, log_v


# --------------------------------------------------------------------------- closed forms
def log_marginal_tau(
    tau: ArrayLike, ybar: ArrayLike, sigma: ArrayLike, prior: str | ContinuousPrior = "flat"
) -> NDArray[np.float64]:
    """Unnormalised log posterior of ``tau`` with ``mu`` and ``theta`` integrated out (BDA3 eq. 5.21).

    ``log p(tau) + ½ log V_mu − ½ Σ log(sigma_j^2 + tau^2) − ½ Σ (ybar_j − mu_hat)^2 / (sigma_j^2 + tau^2)``,
    exactly as written (the ``2π`` constants omitted).

    Parameters
    ----------
    tau : array_like
        Values of ``tau >= 0``, any shape.
    ybar, sigma : array_like
        Arm means and their known standard errors.
    prior : str or prior object
        Prior on ``tau`` (``mu`` is flat); a proper prior without a scale gets
        the default scale from ``sigma``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``tau``.

    Examples
    --------
    >>> ybar, sigma = [28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18]
    >>> lp = log_marginal_tau([0.0, 5.0, 50.0], ybar, sigma)
    >>> [round(float(v - lp[0]), 4) for v in lp]
    [0.0, -0.2211, -7.8707]
    """
    y, s = check_arms(ybar, sigma)
    resolved = get_continuous_prior(prior).resolve(s)
    t = _check_tau(tau)
    frame = _frame(y, s)
    log_lik, _, _ = _conditionals(frame, t.ravel() / frame.scale)
    # Back from standardised units: ½ log V gains log(scale), each of the J log-variance terms −log(scale).
    out = log_lik.reshape(t.shape) + (1 - y.size) * math.log(frame.scale)
    return resolved.log_density(t) + out


def mu_conditional(tau: ArrayLike, ybar: ArrayLike, sigma: ArrayLike) -> tuple[NDArray, NDArray]:
    """Mean and variance of ``mu | tau, y`` (BDA3 eqs. 5.19–5.20), with ``mu`` flat.

    Parameters
    ----------
    tau : array_like
        Values of ``tau >= 0``, any shape.
    ybar, sigma : array_like
        Arm means and their known standard errors.

    Returns
    -------
    mu_hat, v_mu : numpy.ndarray
        Same shape as ``tau``.

    Examples
    --------
    >>> m, v = mu_conditional([0.0, 1e9], [0.0, 1.0, 5.0], [1.0, 1.0, 2.0])
    >>> m.round(9).tolist()  # the precision-weighted mean at tau = 0, the plain mean for huge tau
    [1.0, 2.0]
    >>> [f"{value:.6g}" for value in v]  # 1 / (1 + 1 + 1/4), then tau^2 / J
    ['0.444444', '3.33333e+17']
    """
    y, s = check_arms(ybar, sigma)
    t = _check_tau(tau)
    frame = _frame(y, s)
    _, m, log_v = _conditionals(frame, t.ravel() / frame.scale)
    mean = frame.centre + frame.scale * m
    var = frame.scale**2 * np.exp(log_v)
    return mean.reshape(t.shape), var.reshape(t.shape)


def theta_conditional(
    mu: ArrayLike, tau: ArrayLike, ybar: ArrayLike, sigma: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and variance of every ``theta_j | mu, tau, y`` (BDA3 eq. 5.17), exact at ``tau = 0``.

    With ``B_j = sigma_j^2 / (sigma_j^2 + tau^2)``: mean ``mu + (1 − B_j)(ybar_j − mu)``,
    variance ``(1 − B_j) sigma_j^2``; ``1 − B_j`` is computed as ``tau^2 / (sigma_j^2 + tau^2)``
    so a tiny ``sigma_j`` keeps its digits.

    Parameters
    ----------
    mu, tau : array_like
        Broadcastable values of ``mu`` and ``tau >= 0``.
    ybar, sigma : array_like
        Arm means and their known standard errors, ``J`` values each.

    Returns
    -------
    mean, var : numpy.ndarray
        Shape ``broadcast(mu, tau).shape + (J,)``.

    Examples
    --------
    >>> mean, var = theta_conditional([0.0, 0.0], [0.0, 1.0], [2.0, -2.0], [1.0, 1.0])
    >>> mean.tolist(), var.tolist()
    ([[0.0, 0.0], [1.0, -1.0]], [[0.0, 0.0], [0.5, 0.5]])
    """
    y, s = check_arms(ybar, sigma)
    mu_arr, tau_arr = np.broadcast_arrays(np.asarray(mu, dtype=float), _check_tau(tau))
    # 1 − B_j = 1 / (1 + (sigma_j / tau)^2) is scale-free, gives 0 at tau = 0 (sigma / 0 = inf) and never
    # subtracts: a tiny sigma_j or a huge tau rounds it to 1, not to a difference of nearly equal numbers.
    with np.errstate(divide="ignore", over="ignore"):
        kept = 1.0 / (1.0 + (s / tau_arr[..., None]) ** 2)
    mean = mu_arr[..., None] + kept * (y - mu_arr[..., None])
    var = kept * s**2
    return mean, var


# --------------------------------------------------------------------------- the grid
def _log_expm1_ratio(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log((e^d − 1) / d)``, the log mass of ``e^(d t)`` on ``[0, 1]``, for any ``d``."""
    out = d / 2.0 + d * d / 24.0
    pos = d > 1e-6
    neg = d < -1e-6
    out[pos] = d[pos] + np.log(-np.expm1(-d[pos])) - np.log(d[pos])
    out[neg] = np.log(-np.expm1(d[neg])) - np.log(-d[neg])
    return out


def _right_share(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean of ``t`` under the density ``∝ e^(d t)`` on ``[0, 1]``: the share of a cell's mass at its right node."""
    out = 0.5 + d / 12.0
    big = np.abs(d) > 1e-4
    with np.errstate(over="ignore", divide="ignore"):
        out[big] = 1.0 / (-np.expm1(-d[big])) - 1.0 / d[big]
    return np.clip(out, 0.0, 1.0)


def _inverse_cdf(u: NDArray[np.float64], d: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse CDF at ``u`` of the density ``∝ e^(d t)`` on ``[0, 1]``, written so no exponential overflows."""
    t = u.copy()
    pos = d > 1e-9
    neg = d < -1e-9
    t[pos] = 1.0 + np.log(u[pos] + (1.0 - u[pos]) * np.exp(-d[pos])) / d[pos]
    t[neg] = np.log1p(u[neg] * np.expm1(d[neg])) / d[neg]
    return np.clip(t, 0.0, 1.0)


@dataclass(frozen=True)
class TauGrid:
    """The tabulated posterior of ``tau``, piecewise exponential in ``log tau`` between nodes.

    Attributes
    ----------
    log_tau : numpy.ndarray
        Nodes, ``log tau``, increasing, shape ``(m,)``.
    log_density : numpy.ndarray
        Normalised log posterior density of ``log tau`` at the nodes (the
        density of ``tau`` is ``exp(log_density) / tau``).
    cell_mass : numpy.ndarray
        Posterior mass between consecutive nodes, shape ``(m − 1,)``.
    lower_mass : float
        Mass on ``[0, tau_lo]``, where the density of ``tau`` is flat.
    edge_mass : float
        Mass beyond the last node ``tau_hi``, from the power-law tail in
        closed form (and included in the draws).
    tail_power : float
        ``k`` of the tail ``p(tau | y) ~ tau^-k`` fitted at ``tau_hi``.
    converged : bool
        Whether every cell that can hold mass met the interpolation tolerance.
    """

    log_tau: NDArray[np.float64]
    log_density: NDArray[np.float64]
    cell_mass: NDArray[np.float64]
    lower_mass: float
    edge_mass: float
    tail_power: float
    converged: bool

    @property
    def tau(self) -> NDArray[np.float64]:
        """The nodes on the ``tau`` scale."""
        return np.exp(self.log_tau)

    @property
    def density(self) -> NDArray[np.float64]:
        """Normalised posterior density ``p(tau | y)`` at the nodes."""
        return np.exp(self.log_density - self.log_tau)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.log_tau.size)

    def _slopes(self) -> NDArray[np.float64]:
        return np.diff(self.log_density)

    def pdf(self, tau: ArrayLike) -> NDArray[np.float64]:
        """The density ``p(tau | y)`` the grid represents (and draws from), at any ``tau >= 0``.

        Flat below the first node, log-linear in ``log tau`` between nodes, a
        power law beyond the last.

        Examples
        --------
        >>> grid = fit_tau_grid([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18])
        >>> [round(float(p), 4) for p in grid.pdf([0.0, 5.0, 20.0])]
        [0.103, 0.0826, 0.0055]
        """
        t = np.asarray(tau, dtype=float)
        x = self.log_tau
        with np.errstate(divide="ignore"):
            log_t = np.log(t)
        clipped = np.clip(log_t, x[0], x[-1])
        log_dens = np.interp(clipped, x, self.log_density)
        beyond = log_t > x[-1]
        # Density of tau: that of log tau over tau; flat below the first node, tau^-k beyond the last.
        log_pdf = np.where(log_t < x[0], self.log_density[0] - x[0], log_dens - clipped)
        log_pdf = np.where(beyond, self.log_density[-1] - x[-1] - self.tail_power * (log_t - x[-1]), log_pdf)
        return np.where(t >= 0, np.exp(log_pdf), 0.0)

    def sample(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]:
        """Draw ``size`` independent values of ``tau`` from the tabulated posterior (inverse CDF).

        Examples
        --------
        >>> grid = fit_tau_grid([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18])
        >>> tau = grid.sample(np.random.default_rng(1), 4000)
        >>> tau.shape, bool(tau.min() >= 0)
        ((4000,), True)
        """
        x, d = self.log_tau, self._slopes()
        probs = np.concatenate([[self.lower_mass], self.cell_mass, [self.edge_mass]])
        cum = np.cumsum(probs)
        cum /= cum[-1]
        # side="right": a category of zero mass spans an empty interval of u and is never chosen.
        which = np.minimum(np.searchsorted(cum, rng.random(size), side="right"), probs.size - 1)
        u = rng.random(size)
        tau = np.empty(size)
        low = which == 0
        tau[low] = np.exp(x[0]) * u[low]
        high = which == probs.size - 1
        rate = self.tail_power - 1.0
        tau[high] = np.exp(x[-1] - np.log1p(-u[high]) / rate)
        inner = ~(low | high)
        cell = which[inner] - 1
        h = x[cell + 1] - x[cell]
        tau[inner] = np.exp(x[cell] + h * _inverse_cdf(u[inner], d[cell]))
        return tau

    def expect(self, fn: Callable[[NDArray[np.float64]], ArrayLike]) -> NDArray[np.float64]:
        """Posterior expectation of ``fn(tau)`` by quadrature.

        ``fn`` maps a 1-D array of ``tau`` values to an array whose first axis
        matches it. Exact for ``fn`` linear in ``log tau`` between nodes; the tail
        beyond ``tau_hi`` uses Gauss–Laguerre quadrature. An expectation that does
        not exist (``E[tau]`` under the flat prior with three arms) gives a
        meaningless finite number.

        Examples
        --------
        >>> grid = fit_tau_grid([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18])
        >>> round(float(grid.expect(lambda t: t)), 2)  # E[tau | y]
        6.58
        """
        x, d = self.log_tau, self._slopes()
        values = np.asarray(fn(np.exp(x)), dtype=float)
        share = _right_share(d)
        total = np.tensordot(self.cell_mass * (1.0 - share), values[:-1], axes=(0, 0))
        total = total + np.tensordot(self.cell_mass * share, values[1:], axes=(0, 0))
        if self.lower_mass > 0:
            total = total + self.lower_mass * np.asarray(fn(np.array([0.5 * np.exp(x[0])])), dtype=float)[0]
        if self.edge_mass > 0:
            nodes, weights = _LAGUERRE
            with np.errstate(over="ignore"):
                tail_tau = np.exp(x[-1] + nodes / (self.tail_power - 1.0))
            tail_values = np.asarray(fn(tail_tau), dtype=float)
            total = total + self.edge_mass * np.tensordot(weights, tail_values, axes=(0, 0))
        return np.asarray(total)


def _tau_range(frame: _Frame, prior: ContinuousPrior) -> tuple[float, float]:
    """``(tau_lo, tau_hi)`` in standardised units: far below and far above every scale of the problem."""
    s_min = float(frame.s.min())
    spread = float(np.ptp(frame.y))
    scale = None if getattr(prior, "scale", None) is None else prior.scale / frame.scale
    # p(tau | y) is flat in tau on the scale of the smallest sigma_j, or of sigma_j^2 / |ybar_j − mu| when
    # an arm lies many standard errors away, and of a proper prior's scale.
    low = s_min * min(1.0, s_min / spread) if spread > 0 else s_min
    if scale is not None:
        low = min(low, scale)
    high = max(float(frame.s.max()), spread, scale or 0.0)
    return _LOW * low, _HIGH * high


def _refine(
    log_g: Callable[[NDArray[np.float64]], NDArray[np.float64]], lo: float, hi: float
) -> tuple[NDArray, NDArray, bool]:
    """Nodes over ``[lo, hi]`` (log tau) and the log density there, halving cells until log-linear within ``_TOL``."""
    x = np.linspace(lo, hi, math.ceil((hi - lo) / _COARSE_STEP) + 1)
    g = log_g(x)
    done = np.zeros(x.size - 1, dtype=bool)
    for _ in range(_MAX_PASSES):
        top = g.max()
        active = np.flatnonzero(~done & (np.maximum(g[:-1], g[1:]) > top - _DROP))
        if active.size == 0:
            return x, g, True
        mid = 0.5 * (x[active] + x[active + 1])
        g_mid = log_g(mid)
        ok = np.abs(g_mid - 0.5 * (g[active] + g[active + 1])) < _TOL
        # Halving a cell divides its midpoint error by four: both halves of a cell within tolerance are done.
        flags = done.copy()
        flags[active] = ok
        split = np.zeros(done.size, dtype=bool)
        split[active] = True
        done = np.repeat(flags, np.where(split, 2, 1))
        x = np.insert(x, active + 1, mid)
        g = np.insert(g, active + 1, g_mid)
    return x, g, False


def fit_tau_grid(ybar: ArrayLike, sigma: ArrayLike, prior: str | ContinuousPrior = "flat") -> TauGrid:
    """Tabulate the marginal posterior ``p(tau | y)`` of the hierarchical normal model.

    Parameters
    ----------
    ybar, sigma : array_like
        Arm means and their known standard errors.
    prior : str or prior object
        ``"flat"`` (BDA3's default, needs at least three arms), ``"half-cauchy"``,
        ``"half-normal"``, or a prior object.

    Returns
    -------
    TauGrid

    Raises
    ------
    InvalidDataError
        Invalid arms, or an improper posterior (flat prior with fewer than three arms).

    Examples
    --------
    >>> grid = fit_tau_grid([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18])
    >>> grid.converged, grid.edge_mass < 1e-20
    (True, True)
    >>> round(fit_tau_grid([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]).tail_power, 6)  # the flat prior's tau^-(J-1)
    2.0
    """
    y, s = check_arms(ybar, sigma)
    resolved = get_continuous_prior(prior).resolve(s)
    check_propriety(resolved, y.size)
    frame = _frame(y, s)

    def log_g(x: NDArray[np.float64]) -> NDArray[np.float64]:
        # Density of x = log tau: the density of tau times the Jacobian tau. The prior is evaluated in the
        # data's units; the constant from standardising does not matter once normalised.
        log_lik, _, _ = _conditionals(frame, np.exp(x))
        return resolved.log_density(np.exp(x + math.log(frame.scale))) + log_lik + x

    lo, hi = _tau_range(frame, resolved)
    x, g, converged = _refine(log_g, math.log(lo), math.log(hi))
    if not converged:
        warnings.warn(
            "the grid over tau did not reach its interpolation tolerance; posterior summaries may be inexact",
            ConvergenceWarning,
            stacklevel=2,
        )
    d = np.diff(g)
    h = np.diff(x)
    # The tail beyond the last node is the exponential piece of the last cell continued: p(tau) ~ tau^-k.
    rate = -d[-1] / h[-1]
    if not rate > 0:
        raise InvalidDataError("the posterior of tau does not decay for large tau; use prior='half-cauchy'")
    log_cells = np.log(h) + g[:-1] + _log_expm1_ratio(d)
    # Below the first node the density of tau is flat, so that of log tau grows as e^x: mass e^g[0].
    log_parts = np.concatenate([[g[0]], log_cells, [g[-1] - math.log(rate)]])
    log_z = float(np.logaddexp.reduce(log_parts))
    masses = np.exp(log_parts - log_z)
    return TauGrid(
        log_tau=x + math.log(frame.scale),
        log_density=g - log_z,
        cell_mass=masses[1:-1],
        lower_mass=float(masses[0]),
        edge_mass=float(masses[-1]),
        tail_power=float(rate + 1.0),
        converged=converged,
    )


# --------------------------------------------------------------------------- draws
@dataclass(frozen=True)
class ContinuousDraws:
    """Posterior draws of the hierarchical normal model, from either engine.

    Attributes
    ----------
    mu, tau : numpy.ndarray
        Shape ``(draws,)``; with several chains, chain after chain.
    theta : numpy.ndarray
        Shape ``(draws, J)``.
    engine : str
        ``"exact"`` (independent draws) or ``"nuts"``.
    chains : int
        Number of chains the draws come from (1 for the exact engine).
    edge_mass : float
        Exact engine: posterior mass beyond the grid's last node, drawn from
        the closed-form tail (0 for NUTS).
    n_nodes : int
        Exact engine: nodes of the grid over ``tau`` (0 for NUTS).
    divergences : int
        NUTS: divergent transitions (0 for the exact engine).
    prior : dict
        The resolved prior's :meth:`describe`.
    """

    mu: NDArray[np.float64]
    tau: NDArray[np.float64]
    theta: NDArray[np.float64]
    engine: str
    chains: int = 1
    edge_mass: float = 0.0
    n_nodes: int = 0
    divergences: int = 0
    prior: dict[str, Any] = field(default_factory=dict)

    @property
    def n_draws(self) -> int:
        """Total number of draws (all chains)."""
        return int(self.mu.size)


def draw_given_tau(
    tau: ArrayLike, ybar: ArrayLike, sigma: ArrayLike, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw ``mu | tau, y`` and then ``theta | mu, tau, y`` for every value of ``tau``.

    Parameters
    ----------
    tau : array_like
        1-D array of ``tau >= 0``, one draw each.
    ybar, sigma : array_like
        Arm means and their known standard errors.
    rng : numpy.random.Generator

    Returns
    -------
    mu : numpy.ndarray
        Shape ``(draws,)``.
    theta : numpy.ndarray
        Shape ``(draws, J)``.

    Examples
    --------
    >>> mu, theta = draw_given_tau(np.zeros(3), [1.0, 2.0], [1.0, 1.0], np.random.default_rng(0))
    >>> bool(np.all(theta == mu[:, None]))  # no spread between arms at tau = 0
    True
    """
    t = np.asarray(tau, dtype=float).ravel()
    mean, var = mu_conditional(t, ybar, sigma)
    mu = mean + np.sqrt(var) * rng.standard_normal(t.size)
    th_mean, th_var = theta_conditional(mu, t, ybar, sigma)
    theta = th_mean + np.sqrt(th_var) * rng.standard_normal(th_mean.shape)
    return mu, theta


def exact_draws(
    ybar: ArrayLike,
    sigma: ArrayLike,
    prior: str | ContinuousPrior = "flat",
    *,
    draws: int = 4000,
    seed: int | np.random.Generator | None = None,
) -> ContinuousDraws:
    """Independent posterior draws of ``(mu, tau, theta)`` from the exact engine.

    Parameters
    ----------
    ybar, sigma : array_like
        Arm means and their known standard errors (``sigma_j = s_j / sqrt(n_j)``).
    prior : str or prior object
        Prior on ``tau`` (``mu`` is flat); see :mod:`abpool.continuous.priors`.
    draws : int
        Number of draws.
    seed : int, numpy.random.Generator or None
        Seed or generator; ``None`` for fresh entropy.

    Returns
    -------
    ContinuousDraws

    Examples
    --------
    >>> post = exact_draws([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18], seed=1)
    >>> post.theta.shape, post.n_nodes > 100
    ((4000, 8), True)
    >>> exact_draws([1.0, 2.0], [1.0, 1.0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: the flat prior on tau gives an improper posterior with 2 arms ...
    """
    n = check_int(draws, "draws", minimum=1)
    rng = np.random.default_rng(seed)
    y, s = check_arms(ybar, sigma)
    resolved = get_continuous_prior(prior).resolve(s)
    grid = fit_tau_grid(y, s, resolved)
    tau = grid.sample(rng, n)
    mu, theta = draw_given_tau(tau, y, s, rng)
    return ContinuousDraws(
        mu=mu,
        tau=tau,
        theta=theta,
        engine="exact",
        edge_mass=grid.edge_mass,
        n_nodes=grid.n_nodes,
        prior=resolved.describe(),
    )
