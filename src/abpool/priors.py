"""Named hyperpriors for the hierarchical models.

Every prior on the Beta population ``Beta(a, b)`` is written in the
coordinates the engines work in::

    phi1 = log(a / b)      (the logit of the population mean a / (a + b))
    phi2 = log(a + b)      (the log of the concentration; large = strong pooling)

A prior's ``log_density`` already includes the Jacobian of that change of
variables, so engines can integrate or sample ``(phi1, phi2)`` directly.

Examples
--------
>>> from abpool.priors import get_variants_prior
>>> print(get_variants_prior("bda"))
bda: p(a, b) ∝ (a + b)^(-5/2) (improper; BDA3 §5.3)
>>> print(get_variants_prior("lognormal"))
lognormal: a/(a+b) ~ Beta(1, 1), log(a + b) ~ Normal(4.6, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaln

from abpool.errors import InvalidArgumentError


class MathOps(Protocol):
    """The few elementwise functions a prior needs, from numpy or pytensor."""

    def log_sigmoid(self, x: Any) -> Any: ...


class NumpyOps:
    """Elementwise operations on numpy arrays."""

    @staticmethod
    def log_sigmoid(x: Any) -> Any:
        return -np.logaddexp(0.0, -x)


NUMPY_OPS = NumpyOps()


@dataclass(frozen=True)
class BDAPrior:
    """The article's hyperprior ``p(a, b) ∝ (a + b)^(-5/2)`` (Gelman et al., BDA3 §5.3).

    Flat on the population mean and on ``(a + b)^(-1/2)``, roughly the prior
    standard deviation of the rates. Improper: the posterior is proper only when
    at least one variant has both successes and failures.
    """

    name: str = "bda"
    proper: bool = False

    def log_density(self, phi1: Any, phi2: Any, ops: MathOps = NUMPY_OPS) -> Any:
        # log(ab) - 5/2 log(a+b) with a = e^phi2 s, b = e^phi2 (1 - s).
        return ops.log_sigmoid(phi1) + ops.log_sigmoid(-phi1) - 0.5 * phi2

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {"name": self.name, "density": "p(a, b) ∝ (a + b)^(-5/2)", "proper": False}

    def __str__(self) -> str:
        return "bda: p(a, b) ∝ (a + b)^(-5/2) (improper; BDA3 §5.3)"


@dataclass(frozen=True)
class LogNormalPrior:
    """A proper, weakly informative hyperprior.

    ``a / (a + b) ~ Beta(mean_alpha, mean_beta)`` and
    ``log(a + b) ~ Normal(loc, scale)``. The defaults put 95% of the prior
    concentration between 0.3 and 36,000: anything from no pooling to very
    strong pooling of conversion rates.
    """

    mean_alpha: float = 1.0
    mean_beta: float = 1.0
    loc: float = round(math.log(100.0), 1)
    scale: float = 3.0
    name: str = "lognormal"
    proper: bool = True

    def __post_init__(self) -> None:
        for field in ("mean_alpha", "mean_beta", "scale"):
            value = getattr(self, field)
            if not (value > 0 and math.isfinite(value)):
                raise InvalidArgumentError(f"lognormal prior: {field} must be a positive number, got {value!r}")

    def log_density(self, phi1: Any, phi2: Any, ops: MathOps = NUMPY_OPS) -> Any:
        # Beta density of the mean times the Jacobian d mean / d phi1 = s (1 - s).
        mean_part = (
            self.mean_alpha * ops.log_sigmoid(phi1)
            + self.mean_beta * ops.log_sigmoid(-phi1)
            - float(betaln(self.mean_alpha, self.mean_beta))
        )
        z = (phi2 - self.loc) / self.scale
        return mean_part - 0.5 * z * z - math.log(self.scale * math.sqrt(2 * math.pi))

    def sample(self, rng: np.random.Generator, size: int) -> tuple[NDArray, NDArray]:
        """Draw ``(a, b)`` from the prior (used by simulation-based calibration)."""
        mean = rng.beta(self.mean_alpha, self.mean_beta, size=size)
        conc = np.exp(rng.normal(self.loc, self.scale, size=size))
        return mean * conc, (1.0 - mean) * conc

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "name": self.name,
            "density": (
                f"a/(a+b) ~ Beta({self.mean_alpha:g}, {self.mean_beta:g}), "
                f"log(a + b) ~ Normal({self.loc:g}, {self.scale:g})"
            ),
            "proper": True,
        }

    def __str__(self) -> str:
        return f"{self.name}: {self.describe()['density']}"


VariantsPrior = BDAPrior | LogNormalPrior

VARIANTS_PRIORS: dict[str, type] = {"bda": BDAPrior, "lognormal": LogNormalPrior}


def get_variants_prior(prior: str | VariantsPrior) -> VariantsPrior:
    """Return a variants-model hyperprior by name, or pass an instance through.

    Examples
    --------
    >>> get_variants_prior("bda").proper
    False
    >>> get_variants_prior("flat")
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: unknown prior 'flat' for the variants model; choose one of: bda, lognormal
    """
    if isinstance(prior, BDAPrior | LogNormalPrior):
        return prior
    key = str(prior).strip().lower()
    if key not in VARIANTS_PRIORS:
        raise InvalidArgumentError(
            f"unknown prior {prior!r} for the variants model; choose one of: {', '.join(VARIANTS_PRIORS)}"
        )
    return VARIANTS_PRIORS[key]()


# --------------------------------------------------------------------------- segments model
@dataclass(frozen=True)
class SegmentsPrior:
    """Priors of the varying-intercept, varying-slope logistic regression.

    ``mu_a, mu_b ~ StudentT(nu, 0, location_scale)`` and
    ``sigma_a, sigma_b ~ HalfNormal(scale)``; with ``correlated=True`` the
    intercept-slope correlation gets an ``LKJ(eta)`` prior.

    Examples
    --------
    >>> print(get_segments_prior("article"))
    article: mu_a, mu_b ~ StudentT(3, 0, 1); sigma_a, sigma_b ~ HalfNormal(1)
    >>> print(get_segments_prior("article", scale=0.5))
    article: mu_a, mu_b ~ StudentT(3, 0, 1); sigma_a, sigma_b ~ HalfNormal(0.5)
    """

    name: str = "article"
    nu: float = 3.0
    location_scale: float = 1.0
    scale: float = 1.0
    lkj_eta: float = 2.0

    def __post_init__(self) -> None:
        for field in ("nu", "location_scale", "scale", "lkj_eta"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise InvalidArgumentError(f"segments prior: {field} must be a positive number, got {value!r}")

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "name": self.name,
            "parameters": {
                "nu": self.nu,
                "location_scale": self.location_scale,
                "scale": self.scale,
                "lkj_eta": self.lkj_eta,
            },
            "mu": f"StudentT({self.nu:g}, 0, {self.location_scale:g})",
            "sigma": f"HalfNormal({self.scale:g})",
            "lkj_eta": self.lkj_eta,
            "text": str(self),
        }

    def __str__(self) -> str:
        return (
            f"{self.name}: mu_a, mu_b ~ StudentT({self.nu:g}, 0, {self.location_scale:g}); "
            f"sigma_a, sigma_b ~ HalfNormal({self.scale:g})"
        )


SEGMENTS_PRIORS: dict[str, dict[str, float]] = {
    # The article's priors: conservative HalfNormal(1) scales for few segments.
    "article": {},
    # Flatter: lets segments differ more before pooling them.
    "flat": {"location_scale": 2.5, "scale": 2.5},
    # More conservative: pools harder, as the article recommends for small effects.
    "conservative": {"scale": 0.5},
}


def get_segments_prior(prior: str | SegmentsPrior = "article", scale: float | None = None) -> SegmentsPrior:
    """Return a segments-model prior by name, optionally with a different ``sigma`` scale.

    Examples
    --------
    >>> get_segments_prior("conservative").scale
    0.5
    >>> get_segments_prior("wide")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: unknown prior 'wide' for the segments model; choose one of: article, ...
    """
    if isinstance(prior, SegmentsPrior):
        base = prior
    else:
        key = str(prior).strip().lower()
        if key not in SEGMENTS_PRIORS:
            raise InvalidArgumentError(
                f"unknown prior {prior!r} for the segments model; choose one of: {', '.join(SEGMENTS_PRIORS)}"
            )
        base = SegmentsPrior(name=key, **SEGMENTS_PRIORS[key])
    if scale is None:
        return base
    return SegmentsPrior(
        name=base.name, nu=base.nu, location_scale=base.location_scale, scale=scale, lkj_eta=base.lkj_eta
    )
