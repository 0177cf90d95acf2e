"""``abpool.analyze``: analyse an experiment with the model its data call for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abpool._validation import check_applicable
from abpool.data import DataSource
from abpool.result import Result, model_entry


def choose_model(*, segment: str | Sequence[str] | None = None) -> str:
    """The model ``analyze`` fits: ``"segments"`` when segment columns are given, else ``"variants"``.

    Examples
    --------
    >>> choose_model(segment="country"), choose_model()
    ('segments', 'variants')
    """
    return "segments" if segment else "variants"


def analyze(
    data: DataSource,
    *,
    arm: str | None = None,
    segment: str | Sequence[str] | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    control: str | None = None,
    **options: Any,
) -> Result:
    """Analyse an experiment, choosing the model from the data's shape.

    With ``segment`` this is :func:`abpool.analyze_segments`; without,
    :func:`abpool.analyze_variants`. ``options`` are that model's keyword
    options; one that does not apply to it is refused, never ignored.

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
    name = choose_model(segment=segment)
    entry = model_entry(name)
    check_applicable(options, entry.options, name)
    columns = {"arm": arm, "outcome": outcome, "trials": trials, "successes": successes, "control": control}
    if segment:
        columns["segment"] = segment
    return entry.fit(data, **columns, **options)
