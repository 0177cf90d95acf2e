"""The one place that formats numbers for people: the terminal and the HTML report both use it.

Conventions: probabilities as percentages that never claim a false certainty
(``>99.9%``, not ``100.0%``); rates as decimals; differences of rates in signed
percentage points; p-values to four places; a missing value as an em dash.

Examples
--------
>>> pct(0.7462), pct(0.99991), pct(float("nan"))
('74.6%', '>99.9%', '—')
>>> points(0.2034), rate(0.48751), interval(0.046, 0.307, signed)
('+20.3 pp', '0.488', '+4.6 – +30.7')
>>> p_value(0.00001), p_value(0.0234), p_value(float("nan"))
('<0.0001', '0.0234', '—')
>>> relative(0.5852), relative(-0.0004), interval(-0.1, 0.3, relative)
('+58.5%', '0.0%', '-10.0% – +30.0%')
>>> chance(0.888), chance(0.994), chance(0.99991)
('an 88.8% chance', 'a 99.4% chance', 'a more than 99.9% chance')
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from typing import Any

DASH = "—"


def missing(value: Any) -> bool:
    """Whether ``value`` is absent: ``None`` or NaN."""
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def pct(value: float | None) -> str:
    """A probability as a percentage; the extremes say '>99.9%' rather than a false '100.0%'."""
    if missing(value):
        return DASH
    if value > 0.999:
        return ">99.9%"
    if value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"


def chance(probability: float) -> str:
    """``"an 88.8% chance"``, ``"a 99.4% chance"``, ``"a more than 99.9% chance"``."""
    if probability > 0.999:
        return "a more than 99.9% chance"
    if probability < 0.001:
        return "a less than 0.1% chance"
    text = f"{probability:.1%}"
    # Spoken "eight…", "eleven", "eighteen" take "an".
    return f"{'an' if text.startswith(('8', '11.', '18.')) else 'a'} {text} chance"


def rate(value: float | None, digits: int = 3) -> str:
    """A rate as a decimal."""
    return DASH if missing(value) else f"{float(value):.{digits}f}"


def _signed_zero_free(text: str) -> str:
    # "-0.0" and "+0.0" read as a direction that is not there.
    stripped = text.lstrip("+-")
    return stripped if stripped.strip("0.") == "" else text


def points(value: float | None) -> str:
    """A difference of rates in signed percentage points."""
    return DASH if missing(value) else _signed_zero_free(f"{100 * float(value):+.1f}") + " pp"


def signed(value: float | None) -> str:
    """A difference of rates in signed percentage points, without the unit (for intervals)."""
    return DASH if missing(value) else _signed_zero_free(f"{100 * float(value):+.1f}")


def relative(value: float | None) -> str:
    """A relative change as a signed percentage (``+58.5%``)."""
    return DASH if missing(value) else _signed_zero_free(f"{100 * float(value):+.1f}") + "%"


def loss(value: float | None) -> str:
    """An expected loss (never negative) in percentage points, two places; below 0.005 pp, '<0.01 pp'."""
    if missing(value):
        return DASH
    points_value = 100 * max(float(value), 0.0)
    return "<0.01 pp" if points_value < 0.005 else f"{points_value:.2f} pp"


def interval(low: float | None, high: float | None, fmt: Callable[[Any], str] = rate) -> str:
    """An interval as 'low – high'."""
    return DASH if missing(low) or missing(high) else f"{fmt(low)} – {fmt(high)}"


def number(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant figures."""
    return DASH if missing(value) else f"{float(value):.{digits}g}"


def fraction(value: float | None, digits: int = 2) -> str:
    """A share between 0 and 1 (pooling), as a decimal."""
    return DASH if missing(value) else f"{float(value):.{digits}f}"


def p_value(value: float | None) -> str:
    """A p-value to four places; below 0.0001 as '<0.0001'."""
    if missing(value):
        return DASH
    return "<0.0001" if value < 1e-4 else f"{float(value):.4f}"


def count(value: int | float | None) -> str:
    """A count with thousands separators."""
    return DASH if missing(value) else f"{int(value):,}"


def display(text: Any) -> str:
    r"""User text made safe to show: control and format characters become visible escapes.

    Escape sequences in an arm's name would otherwise reach the terminal raw
    (clearing the screen, retitling the window), and bidirectional overrides
    would reorder what the reader sees.

    Examples
    --------
    >>> display("A\x1b[2J"), display("B\u202eC"), display("naïve café")
    ('A\\x1b[2J', 'B\\u202eC', 'naïve café')
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        char if char == " " or unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp") else _escaped(char)
        for char in text
    )


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def names_list(names: list[str], limit: int = 8) -> str:
    """Up to ``limit`` names in full, else the first few and the count."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[: limit - 2])}, … ({len(names)} in all)"
