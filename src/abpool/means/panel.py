"""The means model's panel of reasonable priors on tau, for the prior-sensitivity check."""

from __future__ import annotations

from dataclasses import asdict

from abpool.continuous.priors import ContinuousPrior, FlatPrior, HalfCauchyPrior, HalfNormalPrior
from abpool.panel import PanelEntry, panel_entry

_PANEL: dict[str, PanelEntry] = {
    "flat": PanelEntry(
        "flat",
        FlatPrior(),
        "BDA3's default (§5.4): flat on mu and tau, so the data decide how much to pool (needs three arms)",
    ),
    "half-cauchy": PanelEntry(
        "half-cauchy",
        HalfCauchyPrior(),
        "proper and weakly informative: tau around the arms' standard errors, with a heavy tail that lets the "
        "arms differ by much more",
    ),
    "half-normal": PanelEntry(
        "half-normal",
        HalfNormalPrior(),
        "tau presumed about the size of the arms' standard errors, with a light tail: stronger pooling",
    ),
}


def means_panel() -> list[PanelEntry]:
    """The means model's panel: flat, half-Cauchy and half-normal priors on tau.

    Examples
    --------
    >>> [entry.label for entry in means_panel()]
    ['flat', 'half-cauchy', 'half-normal']
    """
    return list(_PANEL.values())


def means_panel_entry(item: str | ContinuousPrior) -> PanelEntry:
    """A panel entry from a prior object, a panel name, or a spec such as ``half-normal:scale=2``.

    Examples
    --------
    >>> means_panel_entry("half-normal:scale=2").prior
    HalfNormalPrior(scale=2.0)
    """
    return panel_entry(
        item,
        _PANEL,
        model="means",
        kinds=(FlatPrior, HalfCauchyPrior, HalfNormalPrior),
        label=lambda prior: str(prior),
        parameters=lambda prior: tuple(asdict(prior)),
        build=lambda prior, given: type(prior)(**{**asdict(prior), **given}),
    )
