"""``abpool.analyze``: analyse an experiment with the model its data call for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abpool._validation import check_applicable
from abpool.data import DataSource
from abpool.errors import InvalidArgumentError
from abpool.result import Result, model_entry


def choose_model(*, segment: str | Sequence[str] | None = None, value: str | None = None) -> str:
    """The model ``analyze`` fits: ``"means"`` for a ``value`` column, ``"segments"`` with segments, else variants.

    Examples
    --------
    >>> choose_model(segment="country"), choose_model(), choose_model(value="revenue")
    ('segments', 'variants', 'means')
    """
    if value is not None:
        if segment:
            raise InvalidArgumentError(
                "segments of a continuous metric are not modelled yet; analyse each segment's rows on its own"
            )
        return "means"
    return "segments" if segment else "variants"


def analyze(
    data: DataSource,
    *,
    arm: str | None = None,
    segment: str | Sequence[str] | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    value: str | None = None,
    control: str | None = None,
    **options: Any,
) -> Result:
    """Analyse an experiment, choosing the model from the data's shape.

    With ``value`` (a continuous metric's column) this is
    :func:`abpool.analyze_means`; with ``segment``,
    :func:`abpool.analyze_segments`; otherwise :func:`abpool.analyze_variants`.
    ``options`` are that model's keyword options; one that does not apply to
    it is refused, never ignored.

    Examples
    --------
    >>> import pandas as pd, abpool
    >>> frame = pd.DataFrame({"variant": ["A", "B"], "trials": [100, 100], "successes": [30, 60]})
    >>> abpool.analyze(frame, seed=1).model
    'variants'
    >>> abpool.analyze(frame, correlated=True)
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: correlated does not apply to the variants model; leave it out
    """
    name = choose_model(segment=segment, value=value)
    entry = model_entry(name)
    check_applicable(options, entry.options, name)
    if name == "means":
        counts = [role for role, given in (("outcome", outcome), ("trials", trials), ("successes", successes)) if given]
        if counts:
            raise InvalidArgumentError(f"{', '.join(counts)} names counts; a continuous value is fitted alone")
        return entry.fit(data, arm=arm, value=value, control=control, **options)
    columns = {"arm": arm, "outcome": outcome, "trials": trials, "successes": successes, "control": control}
    if segment:
        columns["segment"] = segment
    return entry.fit(data, **columns, **options)
