"""Named hyperpriors of the variants model (the Beta population of the rates).

Every prior on the Beta population ``Beta(a, b)`` is written in the
coordinates the engines work in::

    phi1 = log(a / b)      (the logit of the population mean a / (a + b))
    phi2 = log(a + b)      (the log of the concentration; large = strong pooling)

A prior's ``log_density`` already includes the Jacobian of that change of
variables, so engines can integrate or sample ``(phi1, phi2)`` directly.

Examples
--------
>>> from abpool.variants.priors import get_variants_prior
>>> print(get_variants_prior("bda"))
bda: p(a, b) ∝ (a + b)^(-5/2) (improper; BDA3 §5.3)
>>> print(get_variants_prior("lognormal"))
lognormal: a/(a+b) ~ Beta(1, 1), log(a + b) ~ Normal(4.6, 3)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from abpool._validation import check_positive, check_real
from abpool.errors import InvalidArgumentError
from abpool.panel import PanelEntry, panel_entry


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

    name: ClassVar[str] = "bda"
    # A class constant, not a setting: calling this prior proper would skip the propriety check.
    proper: ClassVar[bool] = False

    def log_density(self, phi1: Any, phi2: Any, ops: MathOps = NUMPY_OPS) -> Any:
        # log(ab) - 5/2 log(a+b) with a = e^phi2 s, b = e^phi2 (1 - s).
        return ops.log_sigmoid(phi1) + ops.log_sigmoid(-phi1) - 0.5 * phi2

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, text, parameters, propriety."""
        return {"name": self.name, "text": str(self), "parameters": {}, "proper": self.proper}

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
    name: ClassVar[str] = "lognormal"
    proper: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for field in ("mean_alpha", "mean_beta", "scale"):
            object.__setattr__(self, field, check_positive(getattr(self, field), f"lognormal prior {field}"))
        object.__setattr__(self, "loc", check_real(self.loc, "lognormal prior loc"))

    def log_density(self, phi1: Any, phi2: Any, ops: MathOps = NUMPY_OPS) -> Any:
        from scipy.special import betaln  # here, not at import: the segments command never needs SciPy

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
        """Return a JSON-ready description: name, text, parameters, propriety."""
        return {"name": self.name, "text": str(self), "parameters": asdict(self), "proper": self.proper}

    def __str__(self) -> str:
        return (
            f"{self.name}: a/(a+b) ~ Beta({self.mean_alpha:g}, {self.mean_beta:g}), "
            f"log(a + b) ~ Normal({self.loc:g}, {self.scale:g})"
        )


VariantsPrior = BDAPrior | LogNormalPrior

VARIANTS_PRIORS: dict[str, type] = {"bda": BDAPrior, "lognormal": LogNormalPrior}


def prior_from_description(described: dict[str, Any]) -> VariantsPrior:
    """Rebuild a prior from its :meth:`describe` (as saved results store it)."""
    return VARIANTS_PRIORS[described["name"]](**described.get("parameters", {}))


def get_variants_prior(prior: str | VariantsPrior) -> VariantsPrior:
    """Return a variants-model hyperprior by name, or pass an instance through.

    Examples
    --------
    >>> get_variants_prior("bda").proper
    False
    >>> get_variants_prior("flat")
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: prior must be one of bda, lognormal (the variants model's priors), got 'flat'
    """
    if isinstance(prior, BDAPrior | LogNormalPrior):
        return prior
    key = prior.strip().lower() if isinstance(prior, str) else None
    if key not in VARIANTS_PRIORS:
        raise InvalidArgumentError(
            f"prior must be one of {', '.join(VARIANTS_PRIORS)} (the variants model's priors), got {prior!r}"
        )
    return VARIANTS_PRIORS[key]()


# --------------------------------------------------------------------------- the sensitivity panel
# Bracketing the pooling strength through the prior on log(a + b): around 10 the rates may differ by tens of
# points (little pooling); around 1,000 they are presumed within a point or two of each other (at a 10% rate the
# population's standard deviation is about 1 pp), which is how close A/B/n variants usually are.
WEAKER_POOLING = LogNormalPrior(loc=2.3, scale=1.0)
STRONGER_POOLING = LogNormalPrior(loc=6.9, scale=1.0)
_PANEL: dict[str, PanelEntry] = {
    "bda": PanelEntry(
        "bda",
        BDAPrior(),
        "the article's prior (BDA3 §5.3): flat on the population mean and on (a + b)^(-1/2), so the data decide "
        "how much to pool",
    ),
    "lognormal": PanelEntry(
        "lognormal",
        LogNormalPrior(),
        "proper and weakly informative: 95% of its concentration a + b lies between 0.3 and 36,000, anything "
        "from no pooling to very strong pooling",
    ),
    "weaker": PanelEntry(
        "weaker pooling",
        WEAKER_POOLING,
        "a + b around 10 (95% between 1.4 and 71): the population lets the rates differ by tens of points",
    ),
    "stronger": PanelEntry(
        "stronger pooling",
        STRONGER_POOLING,
        "a + b around 1,000 (95% between 140 and 7,000): rates presumed within a point or two of each other, "
        "as variants of one product usually are",
    ),
}


def variants_panel() -> list[PanelEntry]:
    """The variants model's panel of reasonable priors: bda, lognormal, weaker and stronger pooling.

    Examples
    --------
    >>> [entry.label for entry in variants_panel()]
    ['bda', 'lognormal', 'weaker pooling', 'stronger pooling']
    """
    return list(_PANEL.values())


def variants_panel_entry(item: str | VariantsPrior) -> PanelEntry:
    """A panel entry from a prior object, a panel name (``bda``, ``lognormal``, ``weaker``, ``stronger``) or a spec.

    A spec sets parameters of the lognormal prior (``mean_alpha``, ``mean_beta``,
    ``loc``, ``scale``) on a named start: ``lognormal:loc=4,scale=1``,
    ``stronger:loc=8``.

    Examples
    --------
    >>> variants_panel_entry("lognormal:loc=4,scale=1").prior
    LogNormalPrior(mean_alpha=1.0, mean_beta=1.0, loc=4.0, scale=1.0)
    >>> variants_panel_entry("lognormal:scale=-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: panel entry 'lognormal:scale=-1': ... scale must be greater than 0, got -1.0
    """
    return panel_entry(
        item,
        _PANEL,
        model="variants",
        kinds=(BDAPrior, LogNormalPrior),
        label=_label,
        # Only the lognormal family has parameters; a spec on bda can set none.
        parameters=lambda prior: tuple(asdict(prior)),
        build=lambda prior, given: LogNormalPrior(**{**asdict(prior), **given}),
    )


def _label(prior: VariantsPrior) -> str:
    if isinstance(prior, BDAPrior):
        return prior.name
    changed = {key: value for key, value in asdict(prior).items() if value != asdict(LogNormalPrior())[key]}
    return prior.name + "".join(f" {key}={value:g}" for key, value in changed.items())
