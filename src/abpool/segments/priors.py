"""Priors of the varying-intercept, varying-slope logistic regression, by name and scale.

Examples
--------
>>> print(get_segments_prior("article"))
article: mu_a, mu_b ~ StudentT(3, 0, 1); sigma_a, sigma_b ~ HalfNormal(1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abpool._validation import check_positive
from abpool.errors import InvalidArgumentError
from abpool.panel import PanelEntry, panel_entry


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
            label = "prior scale" if field == "scale" else f"segments prior {field}"
            object.__setattr__(self, field, check_positive(getattr(self, field), label))

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, text, parameters."""
        parameters = {
            "nu": self.nu,
            "location_scale": self.location_scale,
            "scale": self.scale,
            "lkj_eta": self.lkj_eta,
        }
        return {"name": self.name, "text": str(self), "parameters": parameters, "proper": True}

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> SegmentsPrior:
        """Rebuild a prior from its :meth:`describe` (as saved results store it)."""
        return cls(name=str(described["name"]), **described["parameters"])

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
    abpool.errors.InvalidArgumentError: prior must be one of article, flat, conservative (the segments model's ...
    """
    if isinstance(prior, SegmentsPrior):
        base = prior
    else:
        key = prior.strip().lower() if isinstance(prior, str) else None
        if key not in SEGMENTS_PRIORS:
            raise InvalidArgumentError(
                f"prior must be one of {', '.join(SEGMENTS_PRIORS)} (the segments model's priors), got {prior!r}"
            )
        base = SegmentsPrior(name=key, **SEGMENTS_PRIORS[key])
    if scale is None:
        return base
    return SegmentsPrior(
        name=base.name, nu=base.nu, location_scale=base.location_scale, scale=scale, lkj_eta=base.lkj_eta
    )


# --------------------------------------------------------------------------- the sensitivity panel
_PANEL: dict[str, PanelEntry] = {
    "article": PanelEntry(
        "article",
        SegmentsPrior(name="article"),
        "the article's priors: StudentT(3, 0, 1) locations and HalfNormal(1) scales, conservative with few segments",
    ),
    "flat": PanelEntry(
        "flat",
        SegmentsPrior(name="flat", **SEGMENTS_PRIORS["flat"]),
        "flatter locations and scales (2.5): segments may differ more before they are pooled",
    ),
    "conservative": PanelEntry(
        "conservative",
        SegmentsPrior(name="conservative", **SEGMENTS_PRIORS["conservative"]),
        "the HalfNormal scale halved (0.5): segments pooled harder, as the article advises for small effects",
    ),
    "doubled": PanelEntry(
        "scale doubled",
        SegmentsPrior(name="article", scale=2.0),
        "the HalfNormal scale doubled (2): segment effects of a logit or more are plausible a priori",
    ),
}
_PARAMETERS = ("nu", "location_scale", "scale", "lkj_eta")


def segments_panel() -> list[PanelEntry]:
    """The segments model's panel of reasonable priors: article, flat, conservative (scale halved), scale doubled.

    Examples
    --------
    >>> [entry.label for entry in segments_panel()]
    ['article', 'flat', 'conservative', 'scale doubled']
    """
    return list(_PANEL.values())


def segments_panel_entry(item: str | SegmentsPrior) -> PanelEntry:
    """A panel entry from a prior object, a panel name (``article``, ``flat``, ``conservative``, ``doubled``) or a spec.

    A spec changes parameters of a named start (``nu``, ``location_scale``,
    ``scale``, ``lkj_eta``): ``article:scale=3``, ``flat:location_scale=5``.

    Examples
    --------
    >>> print(segments_panel_entry("article:scale=3").prior)
    article: mu_a, mu_b ~ StudentT(3, 0, 1); sigma_a, sigma_b ~ HalfNormal(3)
    >>> segments_panel_entry("wide")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: panel entry must name one of article, flat, conservative, doubled ...'wide'
    """
    return panel_entry(
        item,
        _PANEL,
        model="segments",
        kinds=(SegmentsPrior,),
        label=_label,
        parameters=lambda prior: _PARAMETERS,
        build=lambda prior, given: SegmentsPrior(
            name=prior.name, **{**{key: getattr(prior, key) for key in _PARAMETERS}, **given}
        ),
    )


def _label(prior: SegmentsPrior) -> str:
    base = SegmentsPrior(name=prior.name, **SEGMENTS_PRIORS.get(prior.name, {}))
    changed = {key: getattr(prior, key) for key in _PARAMETERS if getattr(prior, key) != getattr(base, key)}
    return prior.name + "".join(f" {key}={value:g}" for key, value in changed.items())
