"""What a result's numbers measure — a rate or a mean — and how they are written for people.

Every model answers the same questions (see :mod:`abpool.result`), but a
conversion rate and revenue per user are written differently: a rate as a
decimal and its differences in percentage points, a mean in the metric's own
units with as many decimals as its standard errors support. A :class:`Metric`
says which, and the terminal, the report, the sentences and the figures ask it.

Examples
--------
>>> BINARY.value(0.1234), BINARY.difference(0.012), BINARY.loss(0.0004)
('0.123', '+1.2 pp', '0.04 pp')
>>> revenue = Metric.mean("revenue", std_errors=[0.05, 0.08])
>>> revenue.value(3.21456), revenue.difference(-0.1234), revenue.loss(0.00001)
('3.215', '-0.123', '<0.001')
>>> Metric.mean("order_value", std_errors=[12.0]).value(12345.6)
'12,346'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from abpool import _format as fmt

# A mean is shown to two significant figures of its smallest standard error: more digits are noise.
_SIGNIFICANT_SE_DIGITS = 2
_MAX_DECIMALS = 8


@dataclass(frozen=True)
class Metric:
    """The kind of quantity a result estimates per arm, and its notation.

    Attributes
    ----------
    kind : {"binary", "mean"}
        A success rate (variants and segments models) or the mean of a
        numeric metric (the means model).
    name : str or None
        The metric's column in the data, when there is one (``"revenue"``).
    decimals : int
        Decimals of a mean and its differences (unused for rates).
    """

    kind: Literal["binary", "mean"]
    name: str | None = None
    decimals: int = 3

    @classmethod
    def mean(cls, name: str | None, std_errors: Sequence[float]) -> Metric:
        """A mean metric whose decimals follow the smallest standard error of the arm means."""
        finite = [float(s) for s in std_errors if math.isfinite(float(s)) and float(s) > 0]
        if not finite:
            return cls("mean", name, 3)
        leading = math.floor(math.log10(min(finite)))
        decimals = min(max(_SIGNIFICANT_SE_DIGITS - 1 - leading, 0), _MAX_DECIMALS)
        return cls("mean", name, decimals)

    @property
    def noun(self) -> str:
        """``"rate"`` or ``"mean"``: what an arm's estimate is called in sentences and axis labels."""
        return "rate" if self.kind == "binary" else "mean"

    @property
    def label(self) -> str:
        """The quantity with its metric named: ``"rate"``, ``"mean revenue"``."""
        return self.noun if self.kind == "binary" or not self.name else f"mean {self.name}"

    @property
    def difference_unit(self) -> str:
        """Unit of an absolute lift as written in headers: ``"pp"`` for rates, none for means."""
        return "pp" if self.kind == "binary" else ""

    @property
    def difference_scale(self) -> float:
        """Factor from a lift to its figure on an axis (percentage points for rates)."""
        return 100.0 if self.kind == "binary" else 1.0

    def value(self, value: float | None) -> str:
        """An arm's rate or mean."""
        if self.kind == "binary":
            return fmt.rate(value)
        return fmt.DASH if fmt.missing(value) else f"{float(value):,.{self.decimals}f}"

    def signed(self, value: float | None) -> str:
        """A lift without its unit (interval ends)."""
        if self.kind == "binary":
            return fmt.signed(value)
        return fmt.DASH if fmt.missing(value) else _zero_free(f"{float(value):+,.{self.decimals}f}")

    def difference(self, value: float | None) -> str:
        """A lift with its unit."""
        if self.kind == "binary":
            return fmt.points(value)
        return self.signed(value)

    def loss(self, value: float | None) -> str:
        """An expected loss (never negative); below the last decimal shown, '<' that decimal."""
        if self.kind == "binary":
            return fmt.loss(value)
        if fmt.missing(value):
            return fmt.DASH
        smallest = 10.0**-self.decimals
        shown = max(float(value), 0.0)
        return f"<{smallest:.{self.decimals}f}" if shown < smallest / 2 else f"{shown:,.{self.decimals}f}"

    def amount(self, value: float) -> str:
        """A threshold or ROPE half-width as written in sentences (``0.1 pp``, ``0.05``)."""
        if self.kind == "binary":
            return f"{100 * value:g} pp"
        return f"{value:g}"

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: kind, name, the quantity's noun and the decimals of a mean."""
        return {"kind": self.kind, "name": self.name, "noun": self.noun, "decimals": self.decimals}

    @classmethod
    def from_description(cls, described: dict[str, Any] | None) -> Metric:
        """The metric :meth:`describe` wrote (a rate when there is none: results saved before metrics existed).

        Examples
        --------
        >>> Metric.from_description(Metric("mean", "revenue", 2).describe())
        Metric(kind='mean', name='revenue', decimals=2)
        """
        if not described:
            return BINARY
        return cls(described["kind"], described.get("name"), int(described.get("decimals", 3)))


def _zero_free(text: str) -> str:
    # "-0.000" reads as a direction that is not there.
    stripped = text.lstrip("+-")
    return stripped if stripped.replace(",", "").strip("0.") == "" else text


BINARY = Metric("binary")
