"""Named priors of the hierarchical normal model on arm means (BDA3 §5.4–5.5).

The model is ``ybar_j ~ Normal(theta_j, sigma_j^2)`` with ``sigma_j`` known,
``theta_j ~ Normal(mu, tau^2)``. Every prior here is flat on ``mu`` and differs
only on the between-arm standard deviation ``tau``:

* ``flat`` — ``p(mu, tau) ∝ 1`` on ``tau >= 0``, BDA3's default. Improper; the
  posterior is proper only with at least three arms (see :func:`check_propriety`).
* ``half-cauchy`` — ``tau ~ HalfCauchy(scale)``, proper and weakly informative.
* ``half-normal`` — ``tau ~ HalfNormal(scale)``, proper, with a lighter tail.

Why ``mu`` stays flat: ``mu`` is a location, identified by the data for any
number of arms (given ``tau`` its posterior is ``Normal(mu_hat, V_mu)``). A flat
prior keeps the analysis equivariant (shifting every arm mean by ``c`` shifts
the posterior by ``c``, which matters for metrics around 1e6), needs no centre
or width chosen from the data, and keeps the BDA3 integration over ``mu`` exact.
A wide normal prior would change nothing in practice and add two settings.

Why this scale rule: when ``scale`` is not given it is the root mean square of
the arms' standard errors, ``sqrt(mean(sigma_j^2))`` (:func:`default_tau_scale`).
With equal standard errors and ``tau ~ HalfCauchy(sigma)`` the implied prior on
the shrinkage factor ``B = sigma^2 / (sigma^2 + tau^2)`` is ``Beta(1/2, 1/2)``:
symmetric, with as much room for complete pooling (``B → 1``) as for none
(``B → 0``) (Polson & Scott 2012, "On the half-Cauchy prior for a global scale
parameter"). The rule uses only the known measurement error, never the spread of
the arm means: a scale taken from that spread would use the very quantity ``tau``
measures and would collapse to zero when the arms agree.

Examples
--------
>>> print(get_continuous_prior("flat"))
flat: p(mu, tau) ∝ 1 (improper; BDA3 §5.4)
>>> print(get_continuous_prior("half-cauchy").resolve([3.0, 4.0]))
half-cauchy: mu flat, tau ~ HalfCauchy(3.53553)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from abpool._validation import check_positive
from abpool.errors import InvalidArgumentError, InvalidDataError

SCALE_RULE = "sqrt(mean(sigma_j^2)), the root mean square of the arms' standard errors"


def default_tau_scale(sigma: ArrayLike) -> float:
    """The default scale of a proper prior on ``tau``: the root mean square standard error.

    Parameters
    ----------
    sigma : array_like
        Known standard errors of the arm means, all positive.

    Returns
    -------
    float
        ``sqrt(mean(sigma_j^2))``, computed without overflow.

    Examples
    --------
    >>> default_tau_scale([15, 10, 16, 11, 9, 11, 10, 18])
    12.884098726725126
    >>> f"{default_tau_scale([1e-200, 3e-200]):.6g}"  # sqrt(5) e-200, where squaring would underflow
    '2.23607e-200'
    """
    s = np.asarray(sigma, dtype=float)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InvalidDataError("standard errors must be finite and positive to set the prior scale on tau")
    # Factor out the largest value so squares of 1e-200 or 1e200 neither underflow nor overflow.
    top = float(s.max())
    return top * math.sqrt(float(np.mean((s / top) ** 2)))


def _as_tau(tau: ArrayLike) -> NDArray[np.float64]:
    """``tau`` as a float array (the callers give ``-inf`` log density below zero)."""
    return np.asarray(tau, dtype=float)


@dataclass(frozen=True)
class FlatPrior:
    """BDA3's default ``p(mu, tau) ∝ 1`` on ``tau >= 0`` (improper).

    For large ``tau`` the marginal posterior behaves like ``tau^-(J-1)``, so it
    is proper only with ``J >= 3`` arms.

    Examples
    --------
    >>> FlatPrior().log_density([0.0, 1.0, -1.0])
    array([  0.,   0., -inf])
    """

    name: ClassVar[str] = "flat"
    # A class constant, not a setting: calling this prior proper would skip the propriety check.
    proper: ClassVar[bool] = False
    # How fast log p(tau) falls in log tau far out: p(tau) ~ tau^-tail_power.
    tail_power: ClassVar[float] = 0.0

    def resolve(self, sigma: ArrayLike) -> FlatPrior:
        """Return the prior ready for data with standard errors ``sigma`` (no scale to set)."""
        return self

    def log_density(self, tau: ArrayLike) -> NDArray[np.float64]:
        """Log prior density of ``tau`` up to a constant (``-inf`` below zero)."""
        t = _as_tau(tau)
        return np.where(t >= 0, 0.0, -np.inf)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, text, parameters, propriety.

        Examples
        --------
        >>> FlatPrior().describe()["proper"]
        False
        """
        return {"name": self.name, "text": str(self), "parameters": {}, "proper": self.proper}

    def __str__(self) -> str:
        return "flat: p(mu, tau) ∝ 1 (improper; BDA3 §5.4)"


@dataclass(frozen=True)
class _ScaledPrior:
    """Shared code of the proper priors on ``tau``: a scale, given or set from the data."""

    scale: float | None = None
    proper: ClassVar[bool] = True
    name: ClassVar[str] = ""
    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.scale is not None:
            object.__setattr__(self, "scale", check_positive(self.scale, f"{self.name} prior scale"))

    def resolve(self, sigma: ArrayLike) -> Any:
        """Return the prior with its scale set (by :func:`default_tau_scale`) when it was not given."""
        if self.scale is not None:
            return self
        return replace(self, scale=default_tau_scale(sigma))

    def _checked_scale(self) -> float:
        if self.scale is None:
            raise InvalidArgumentError(
                f"the {self.name} prior has no scale yet; call resolve(sigma) or give scale=..., got scale=None"
            )
        return self.scale

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, text, parameters, propriety and the scale rule."""
        return {
            "name": self.name,
            "text": str(self),
            "parameters": {"scale": self.scale},
            "proper": self.proper,
            "scale_rule": SCALE_RULE,
        }

    def __str__(self) -> str:
        shown = "set from the data" if self.scale is None else f"{self.scale:g}"
        return f"{self.name}: mu flat, tau ~ {self.family}({shown})"


@dataclass(frozen=True)
class HalfCauchyPrior(_ScaledPrior):
    """``tau ~ HalfCauchy(scale)``, ``mu`` flat: proper and weakly informative (Gelman 2006).

    ``scale=None`` sets the scale from the data with :func:`default_tau_scale`
    when the prior is resolved.

    Examples
    --------
    >>> prior = HalfCauchyPrior(scale=2.0)
    >>> float(prior.log_density(0.0))  # log(2 / (pi * 2))
    -1.1447298858494002
    >>> prior.describe()["parameters"]
    {'scale': 2.0}
    """

    name: ClassVar[str] = "half-cauchy"
    family: ClassVar[str] = "HalfCauchy"
    tail_power: ClassVar[float] = 2.0

    def log_density(self, tau: ArrayLike) -> NDArray[np.float64]:
        """Normalised log density of ``tau`` (``-inf`` below zero)."""
        scale = self._checked_scale()
        t = _as_tau(tau)
        z = t / scale
        out = math.log(2.0 / (math.pi * scale)) - np.log1p(z * z)
        return np.where(t >= 0, out, -np.inf)


@dataclass(frozen=True)
class HalfNormalPrior(_ScaledPrior):
    """``tau ~ HalfNormal(scale)``, ``mu`` flat: proper, and rules out ``tau`` many scales wide.

    Examples
    --------
    >>> round(float(HalfNormalPrior(scale=1.0).log_density(0.0)), 6)  # log(2 / sqrt(2 pi))
    -0.225791
    """

    name: ClassVar[str] = "half-normal"
    family: ClassVar[str] = "HalfNormal"
    tail_power: ClassVar[float] = math.inf

    def log_density(self, tau: ArrayLike) -> NDArray[np.float64]:
        """Normalised log density of ``tau`` (``-inf`` below zero)."""
        scale = self._checked_scale()
        t = _as_tau(tau)
        z = t / scale
        out = math.log(2.0 / (scale * math.sqrt(2.0 * math.pi))) - 0.5 * z * z
        return np.where(t >= 0, out, -np.inf)


ContinuousPrior = FlatPrior | HalfCauchyPrior | HalfNormalPrior

CONTINUOUS_PRIORS: dict[str, type] = {"flat": FlatPrior, "half-cauchy": HalfCauchyPrior, "half-normal": HalfNormalPrior}


def get_continuous_prior(prior: str | ContinuousPrior) -> ContinuousPrior:
    """Return a prior of the hierarchical normal model by name, or pass an instance through.

    Parameters
    ----------
    prior : str or prior object
        ``"flat"``, ``"half-cauchy"`` or ``"half-normal"`` (case and ``_`` for
        ``-`` are forgiven), or an instance of one of the prior classes.

    Returns
    -------
    FlatPrior, HalfCauchyPrior or HalfNormalPrior

    Examples
    --------
    >>> get_continuous_prior("Half_Cauchy")
    HalfCauchyPrior(scale=None)
    >>> get_continuous_prior("uniform")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: prior must be one of flat, half-cauchy, half-normal (...), got 'uniform'
    """
    if isinstance(prior, FlatPrior | HalfCauchyPrior | HalfNormalPrior):
        return prior
    key = prior.strip().lower().replace("_", "-") if isinstance(prior, str) else None
    if key not in CONTINUOUS_PRIORS:
        raise InvalidArgumentError(
            f"prior must be one of {', '.join(CONTINUOUS_PRIORS)} (the continuous model's priors), got {prior!r}"
        )
    return CONTINUOUS_PRIORS[key]()


def prior_from_description(described: dict[str, Any]) -> ContinuousPrior:
    """Rebuild a prior from its :meth:`describe` (as saved results would store it).

    Examples
    --------
    >>> prior_from_description(HalfNormalPrior(scale=3.0).describe())
    HalfNormalPrior(scale=3.0)
    """
    return CONTINUOUS_PRIORS[described["name"]](**described.get("parameters", {}))


def check_propriety(prior: ContinuousPrior, n_arms: int) -> None:
    """Raise :class:`~abpool.errors.InvalidDataError` when the posterior would be improper.

    With ``mu`` flat, integrating it out leaves
    ``p(tau | y) ∝ p(tau) V_mu^(1/2) Π (sigma_j^2 + tau^2)^(-1/2) exp(-Q(tau)/2)``
    with ``V_mu ~ tau^2 / J`` and ``Q → 0`` as ``tau → ∞``: the likelihood factor
    falls like ``tau^-(J-1)`` and is bounded everywhere. A proper ``p(tau)``
    therefore always gives a proper posterior (any ``J >= 1``), while the flat
    prior needs ``∫^∞ tau^-(J-1) dtau < ∞``, i.e. ``J >= 3`` (BDA3 §5.4).

    Examples
    --------
    >>> check_propriety(HalfCauchyPrior(), 2)
    >>> check_propriety(FlatPrior(), 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: the flat prior on tau gives an improper posterior with 2 arms (it needs ...
    """
    if not prior.proper and n_arms < 3:
        noun = "arm" if n_arms == 1 else "arms"
        raise InvalidDataError(
            f"the {prior.name} prior on tau gives an improper posterior with {n_arms} {noun} (it needs at least 3); "
            "use prior='half-cauchy' or add arms"
        )
