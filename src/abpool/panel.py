"""A panel of reasonable priors: its entries, and how a user names one.

Each model offers a default panel (see :func:`abpool.variants.priors.variants_panel`
and :func:`abpool.segments.priors.segments_panel`) and accepts the user's own
entries, written ``NAME`` or ``NAME:key=value,key=value`` on the command line
(``lognormal:loc=2.3,scale=1``, ``article:scale=2``) or given as prior objects
in Python. :mod:`abpool.sensitivity` refits a result under each entry.

Examples
--------
>>> parse_prior_spec("lognormal:loc=2.3,scale=1")
('lognormal', {'loc': 2.3, 'scale': 1.0})
>>> parse_prior_spec("article")
('article', {})
>>> parse_prior_spec("article:scale")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
abpool.errors.InvalidArgumentError: panel entry must be NAME or NAME:key=value,... (e.g. ...), got 'article:scale'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from abpool.errors import InvalidArgumentError

# The label of the limiting reference every panel ends with: each arm (cell) on its own.
NO_POOLING = "no pooling"
NO_POOLING_NAMES = frozenset({"none", "no pooling", "no-pooling", "nopooling", "independent"})
SPEC_HINT = "NAME or NAME:key=value,... (e.g. article:scale=2)"


@dataclass(frozen=True)
class PanelEntry:
    """One prior of a sensitivity panel.

    Attributes
    ----------
    label : str
        How tables and figures name it (``"weaker pooling"``).
    prior : object or None
        The model's prior object; None for the no-pooling reference, which is not a fit of the model.
    why : str
        Why it is a reasonable prior (or, for the reference, what it is).
    reference : bool
        Shown, but not counted in the verdict (the no-pooling reference).
    """

    label: str
    prior: Any
    why: str
    reference: bool = False

    @property
    def text(self) -> str:
        """The prior written out (the reference's description when there is no prior)."""
        return self.why if self.prior is None else str(self.prior)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: label, the prior (its description, or None), why, and whether it is counted."""
        return {
            "label": self.label,
            "prior": None if self.prior is None else self.prior.describe(),
            "text": self.text,
            "why": self.why,
            "counted": not self.reference,
        }


def no_pooling_entry(unit: str, how: str = "Beta(1 + successes, 1 + failures)") -> PanelEntry:
    """The limiting reference: every ``unit`` (arm, or segment × arm cell) estimated on its own, as ``how`` says."""
    return PanelEntry(
        NO_POOLING,
        None,
        f"each {unit} on its own, {how}: what pooling is compared against",
        reference=True,
    )


def is_no_pooling(item: Any) -> bool:
    """Whether ``item`` names the no-pooling reference."""
    return isinstance(item, str) and item.strip().lower() in NO_POOLING_NAMES


def parse_prior_spec(spec: str) -> tuple[str, dict[str, float]]:
    """Split ``NAME`` or ``NAME:key=value,...`` into the name (lower case) and its numeric parameters."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgumentError(f"panel entry must be {SPEC_HINT}, got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    parameters: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in rest.split(","))):
        key, equals, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not equals or not key.strip() or not math.isfinite(number):
            raise InvalidArgumentError(f"panel entry must be {SPEC_HINT}, got {spec!r}")
        parameters[key.strip().lower()] = number
    if (rest.strip() and not parameters) or not name.strip():
        raise InvalidArgumentError(f"panel entry must be {SPEC_HINT}, got {spec!r}")
    return name.strip().lower(), parameters


def check_parameters(spec: str, given: dict[str, float], allowed: tuple[str, ...]) -> None:
    """Refuse a parameter the prior does not have, naming the ones it has."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidArgumentError(
            f"panel entry {spec!r} sets {', '.join(unknown)}, which the prior does not have; it takes "
            f"{', '.join(allowed) if allowed else 'no parameters'}"
        )


def panel_entry(
    item: Any,
    panel: Mapping[str, PanelEntry],
    *,
    model: str,
    kinds: tuple[type, ...],
    label: Callable[[Any], str],
    parameters: Callable[[Any], tuple[str, ...]],
    build: Callable[[Any, dict[str, float]], Any],
) -> PanelEntry:
    """A model's panel entry from a prior object (``kinds``), a panel name, or a spec ``NAME:key=value,...``.

    Parameters
    ----------
    item : prior object or str
    panel : mapping of str to PanelEntry
        The model's panel by name.
    model : str
        The model's name, for messages.
    kinds : tuple of type
        The model's prior classes.
    label : callable
        How a prior object given by the user is labelled.
    parameters : callable
        The parameters a spec may set on a named prior.
    build : callable
        ``build(prior, parameters)``: the named prior with the spec's parameters set.
    """
    if isinstance(item, kinds):
        for entry in panel.values():
            if entry.prior == item:
                return entry
        return PanelEntry(label(item), item, "given by the user")
    if not isinstance(item, str):
        raise InvalidArgumentError(
            f"panel entry must be a {model} prior or a name such as {', '.join(panel)}, got {item!r}"
        )
    name, given = parse_prior_spec(item)
    if name not in panel:
        raise InvalidArgumentError(
            f"panel entry must name one of {', '.join(panel)} (the {model} model's panel), got {item!r}"
        )
    entry = panel[name]
    if not given:
        return entry
    check_parameters(item, given, parameters(entry.prior))
    try:
        prior = build(entry.prior, given)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"panel entry {item!r}: {exc}") from None
    return PanelEntry(item.strip(), prior, "given by the user")
