"""The one place that checks arguments: every message follows one template.

``<name> must be <requirement><hint>, got <value>``: the parameter, what it
needs, and the value it was given. Numbers may be Python or numpy scalars
(``np.float32(0.01)`` is as good as ``0.01``); booleans are never numbers.

Examples
--------
>>> check_level(0.9, "ci")
0.9
>>> check_int(0, "draws", minimum=1)
Traceback (most recent call last):
...
abpool.errors.InvalidArgumentError: draws must be an integer of at least 1, got 0
>>> check_choice("gibbs", "engine", ("exact", "mcmc"))
Traceback (most recent call last):
...
abpool.errors.InvalidArgumentError: engine must be one of exact, mcmc, got 'gibbs'
"""

from __future__ import annotations

import math
import numbers
import secrets
from collections.abc import Callable, Collection, Iterable
from typing import Any

from abpool.errors import InvalidArgumentError


def _shown(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
        return f"{float(value)!r}"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    return repr(value)


def invalid(name: str, requirement: str, value: Any, hint: str = "") -> InvalidArgumentError:
    """The error for a bad argument, in the one template (returned, for the caller to raise)."""
    return InvalidArgumentError(f"{name} must be {requirement}{hint}, got {_shown(value)}")


def check_int(value: Any, name: str, *, minimum: int | None = None, hint: str = "") -> int:
    """An integer (Python or numpy), at least ``minimum``; returned as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        requirement = "an integer" if minimum is None else f"an integer of at least {minimum}"
        raise invalid(name, requirement, value, hint)
    if minimum is not None and int(value) < minimum:
        raise invalid(name, f"an integer of at least {minimum}", value, hint)
    return int(value)


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """A finite real number (Python or numpy) within the given bounds; returned as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise invalid(name, "a finite number", value, hint)
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise invalid(name, _range_text(low, high, low_open, high_open), value, hint)
    return number


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        if low_open and high_open:
            return f"strictly between {low:g} and {high:g}"
        return f"between {low:g} and {high:g}" + (" (exclusive)" if low_open or high_open else "")
    if low is not None:
        return f"{'greater than' if low_open else 'at least'} {low:g}"
    return f"{'less than' if high_open else 'at most'} {high:g}"


def check_positive(value: Any, name: str, *, hint: str = "") -> float:
    """A finite number greater than zero."""
    return check_real(value, name, low=0.0, low_open=True, hint=hint)


def check_probability(value: Any, name: str, example: str = "0.5") -> float:
    """A number strictly between 0 and 1."""
    return check_real(value, name, low=0.0, high=1.0, low_open=True, high_open=True, hint=f" (e.g. {example})")


def check_level(value: Any, name: str = "ci") -> float:
    """A credible level strictly between 0 and 1."""
    return check_probability(value, name, "0.95")


def check_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """One of ``choices`` (exact spelling)."""
    if not isinstance(value, str) or value not in choices:
        raise invalid(name, f"one of {', '.join(choices)}", value)
    return value


def check_bool(value: Any, name: str) -> bool:
    """``True`` or ``False`` (numpy booleans too)."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":
        return bool(value)
    raise invalid(name, "True or False", value)


# Settings too small to support the numbers shown are refused: below 1,000 independent draws a
# probability's Monte Carlo error exceeds ±3 points; R-hat needs two chains and the ESS check
# (100 per chain) cannot pass with fewer than 100 draws per chain.
MIN_EXACT_DRAWS = 1_000
MIN_DRAWS_PER_CHAIN = 100
MIN_CHAINS = 2


def check_exact_draws(value: Any) -> int:
    """Independent draws of an exact engine: at least :data:`MIN_EXACT_DRAWS`."""
    return check_int(value, "draws", minimum=MIN_EXACT_DRAWS, hint=" (fewer cannot support the probabilities shown)")


def check_draws_per_chain(value: Any) -> int:
    """MCMC draws per chain: at least :data:`MIN_DRAWS_PER_CHAIN`."""
    return check_int(value, "draws", minimum=MIN_DRAWS_PER_CHAIN, hint=" per chain")


def check_chains(value: Any) -> int:
    """MCMC chains: at least :data:`MIN_CHAINS`, since R-hat compares chains."""
    return check_int(value, "chains", minimum=MIN_CHAINS, hint=" (R-hat compares chains)")


def check_seed(value: Any) -> int:
    """A non-negative integer seed; a fresh one (recorded by the caller) when ``None``."""
    if value is None:
        return secrets.randbits(31)
    return check_int(value, "seed", minimum=0)


def check_optional(value: Any, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``None`` passes through; anything else goes through ``check``."""
    return None if value is None else check(value, *args, **kwargs)


def flag(name: str) -> str:
    """The command-line spelling of a keyword argument: ``prior_scale`` → ``--prior-scale``."""
    return "--" + name.replace("_", "-")


def check_applicable(
    given: Iterable[str], allowed: Collection[str], model: str, *, spell: Callable[[str], str] = str
) -> None:
    """Refuse options that do not apply to ``model`` rather than ignore them.

    Examples
    --------
    >>> check_applicable(["rope", "engine"], {"rope", "draws"}, "segments", spell=flag)
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: --engine does not apply to the segments model; leave it out
    """
    extra = [name for name in given if name not in allowed]
    if extra:
        names = ", ".join(spell(name) for name in extra)
        verb = "does" if len(extra) == 1 else "do"
        raise InvalidArgumentError(
            f"{names} {verb} not apply to the {model} model; leave {'it' if len(extra) == 1 else 'them'} out"
        )


def check_split(split: Any, arms: tuple[str, ...] | list[str]) -> tuple[float, ...] | None:
    """The intended split as positive weights in the order of ``arms`` (``None``: equal shares).

    ``split`` is a mapping ``{arm: weight}`` naming every arm, or a sequence of
    weights in the order of ``arms``. Weights need not sum to anything.

    Examples
    --------
    >>> check_split({"B": 1, "A": 3}, ["A", "B"])
    (3.0, 1.0)
    >>> check_split([50, 50, 50], ["A", "B"])
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: split must be one weight per arm (A, B), got [50, 50, 50]
    """
    if split is None:
        return None
    if isinstance(split, dict):
        unknown = [str(k) for k in split if str(k) not in arms]
        if unknown or len(split) != len(arms):
            raise invalid("split", f"a weight for each arm ({', '.join(arms)})", split)
        weights = [split[next(k for k in split if str(k) == arm)] for arm in arms]
    elif isinstance(split, str) or not hasattr(split, "__len__") or len(split) != len(arms):
        raise invalid("split", f"one weight per arm ({', '.join(arms)})", split)
    else:
        weights = list(split)
    return tuple(check_positive(weight, "split weight") for weight in weights)
