"""Number formatting shared by report sections (the terminal's conventions, in HTML).

Examples
--------
>>> pct(0.7462), pct(0.99991), pct(float("nan"))
('74.6%', '>99.9%', '—')
>>> points(0.2034), rate(0.48751), interval(0.046, 0.307, signed)
('+20.3 pp', '0.488', '+4.6 – +30.7')
"""

from __future__ import annotations

import math

DASH = "—"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: float | None) -> str:
    """A probability as a percentage; the extremes say '>99.9%' rather than a false '100.0%'."""
    if _missing(value):
        return DASH
    if value > 0.999:
        return ">99.9%"
    if value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"


def rate(value: float | None, digits: int = 3) -> str:
    """A rate as a decimal."""
    return DASH if _missing(value) else f"{value:.{digits}f}"


def points(value: float | None) -> str:
    """A difference of rates in signed percentage points."""
    return DASH if _missing(value) else f"{100 * value:+.1f} pp"


def signed(value: float | None) -> str:
    """A difference of rates in signed percentage points, without the unit (for intervals)."""
    return DASH if _missing(value) else f"{100 * value:+.1f}"


def interval(low: float | None, high: float | None, fmt=rate) -> str:
    """An interval as 'low – high'."""
    return DASH if _missing(low) or _missing(high) else f"{fmt(low)} – {fmt(high)}"


def number(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant figures."""
    return DASH if _missing(value) else f"{value:.{digits}g}"
