"""Experiment data aggregated to cells: the :class:`Cells` every model fits, and the column roles.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"arm": ["A", "B"], "trials": [10, 10], "successes": [1, 2]})
>>> Cells(table, (), "arm", "cells", "DataFrame", 2).arms
('A', 'B')
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import pandas as pd

from abpool.data.origin import Origin
from abpool.errors import InvalidArgumentError, InvalidDataError

ARM_NAMES = ("variant", "arm", "group", "treated", "treatment")
TRIALS_NAMES = ("trials", "n", "users", "visitors")
SUCCESSES_NAMES = ("successes", "conversions", "converted_users")
OUTCOME_NAMES = ("outcome", "success", "converted", "conversion")
# The columns of a cells table besides the segments: a segment column cannot be named so.
CELL_COLUMNS = ("arm", "trials", "successes")
# Counts beyond this are refused: float64 represents every integer up to 2^53 ≈ 9.0e15 exactly, and
# the engines, the tests and the sums over cells stay exact below it.
MAX_COUNT = 10**15
# Joins the values of several segment columns into one label, for display.
SEGMENT_SEPARATOR = " / "
_DIGITS = re.compile(r"(\d+)")


def joined_labels(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """One label per row: the values of ``columns`` joined by ``" / "``, quoted when plain joins would clash.

    Examples
    --------
    >>> import pandas as pd
    >>> joined_labels(pd.DataFrame({"x": ["A / B", "A"], "y": ["C", "B / C"]}), ["x", "y"])
    ["'A / B' / 'C'", "'A' / 'B / C'"]
    >>> joined_labels(pd.DataFrame({"x": ["DE", "FR"], "arm": ["B", "B"]}), ["x", "arm"])
    ['DE / B', 'FR / B']
    """
    if not columns:
        return [""] * len(table)
    keys = list(table[list(columns)].astype(str).itertuples(index=False, name=None))
    plain = [SEGMENT_SEPARATOR.join(key) for key in keys]
    if len(set(plain)) == len(set(keys)):
        return plain
    return [SEGMENT_SEPARATOR.join(repr(value) for value in key) for key in keys]


@dataclass(frozen=True)
class Cells:
    """Experiment data aggregated to one row per (segment, arm).

    Attributes
    ----------
    table : pandas.DataFrame
        Columns: one per segment column (as strings), then ``arm`` (string),
        ``trials`` and ``successes`` (int64), in order of first appearance.
    segment_columns : tuple of str
        Names of the segment columns in the source (empty for a plain A/B/n test).
    arm_column : str
        Name of the arm column in the source.
    form : {"units", "cells"}
        Which long form the source was in.
    source : str
        Where the data came from (a path or ``"DataFrame"``).
    input_rows : int
        Rows read from the source.
    outcome_column, trials_column, successes_column : str or None
        The source's columns read as the outcome (unit rows) or as the counts (cells).
    origin : Origin or None
        How to read the data again (the reproduce command's source); None when it was not read from a source.
    """

    table: pd.DataFrame
    segment_columns: tuple[str, ...]
    arm_column: str
    form: Literal["units", "cells"]
    source: str
    input_rows: int
    outcome_column: str | None = None
    trials_column: str | None = None
    successes_column: str | None = None
    origin: Origin | None = None

    @property
    def arms(self) -> tuple[str, ...]:
        """Arm labels in order of first appearance."""
        return tuple(dict.fromkeys(self.table["arm"]))

    def segment_labels(self) -> list[str]:
        """One label per row of :attr:`table`: its segment values joined by ``" / "``.

        The join is for display, and it stays one-to-one: when two different
        segments would read alike (``('A / B', 'C')`` and ``('A', 'B / C')``),
        every value is quoted instead (``'A / B' / 'C'``).

        Examples
        --------
        >>> import pandas as pd
        >>> table = pd.DataFrame({"x": ["A / B", "A"], "y": ["C", "B / C"], "arm": ["t", "t"],
        ...                       "trials": [1, 1], "successes": [0, 0]})
        >>> Cells(table, ("x", "y"), "arm", "cells", "DataFrame", 2).segment_labels()
        ["'A / B' / 'C'", "'A' / 'B / C'"]
        """
        return joined_labels(self.table, self.segment_columns)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the aggregated cells: equal for unit rows and cells that agree.

        Computed once per object: cells are never changed in place (a changed
        table is a new object, as :func:`dataclasses.replace` makes).
        """
        # The rows sorted by their labels, as plain values: what sort_values(...).to_dict("split") gives, without
        # pandas' per-call cost, which a batch of a thousand experiments pays a thousand times.
        columns = list(self.table.columns)
        rows = zip(*(self.table[column].tolist() for column in columns), strict=True)
        canonical = [list(row) for row in sorted(rows, key=lambda row: row[:-2])]
        payload = json.dumps({"columns": columns, "data": canonical}, default=int)
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_record(self) -> dict[str, Any]:
        """The cells as JSON-ready data: :meth:`describe` and the table (read back by :meth:`from_record`).

        Examples
        --------
        >>> import pandas as pd
        >>> cells = Cells(pd.DataFrame({"arm": ["A", "B"], "trials": [9, 9], "successes": [1, 2]}), (), "arm",
        ...               "cells", "t.csv", 2)
        >>> Cells.from_record(cells.to_record()).fingerprint == cells.fingerprint
        True
        """
        return {**self.describe(), "table": self.table.to_dict("list")}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Cells:
        """Cells rebuilt from :meth:`to_record`'s data (a saved run, a batch record)."""
        table, fields = from_record_parts(data, integer=("trials", "successes"))
        return cls(
            table=table,
            **fields,
            outcome_column=data.get("outcome_column"),
            trials_column=data.get("trials_column"),
            successes_column=data.get("successes_column"),
            origin=Origin.from_record(data.get("origin")),
        )

    def column_options(self) -> list[tuple[str, str]]:
        """The command-line options naming the source's outcome or count columns (``[("--trials", "n"), …]``)."""
        named = (
            ("--outcome", self.outcome_column),
            ("--trials", self.trials_column),
            ("--successes", self.successes_column),
        )
        return [(option, column) for option, column in named if column is not None]

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description of the data (provenance)."""
        return {
            "source": self.source,
            "form": self.form,
            "input_rows": self.input_rows,
            "arm_column": self.arm_column,
            "segment_columns": list(self.segment_columns),
            "outcome_column": self.outcome_column,
            "trials_column": self.trials_column,
            "successes_column": self.successes_column,
            "origin": None if self.origin is None else self.origin.to_record(),
            "cells": len(self.table),
            "fingerprint": self.fingerprint,
        }


def text_labels(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``table`` with its label ``columns`` as Python strings, in place (records and sources store them as read)."""
    for column in columns:
        table[column] = table[column].astype(object).map(str)
    return table


def from_record_parts(
    data: dict[str, Any], integer: Sequence[str] = (), floating: Sequence[str] = ()
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """What every kind of cells rebuilds alike from its record: the table and the fields describing its source.

    The table's labels become strings again, the named ``integer`` and
    ``floating`` columns (those present) get their types back, and the fields
    are ``segment_columns``, ``arm_column``, ``form``, ``source`` and ``input_rows``.

    Examples
    --------
    >>> record = {"table": {"arm": [0, 1], "trials": [9.0, 9.0]}, "segment_columns": [], "arm_column": "variant",
    ...           "form": "cells", "source": "t.csv", "input_rows": 2}
    >>> table, fields = from_record_parts(record, integer=["trials"])
    >>> table["arm"].tolist(), table["trials"].dtype.name, fields["segment_columns"]
    (['0', '1'], 'int64', ())
    """
    table = text_labels(pd.DataFrame(data["table"]), [*data["segment_columns"], "arm"])
    for columns, dtype in ((integer, "int64"), (floating, "float64")):
        for column in columns:
            if column in table:
                table[column] = table[column].astype(dtype)
    fields = {
        "segment_columns": tuple(data["segment_columns"]),
        "arm_column": str(data["arm_column"]),
        "form": data["form"],
        "source": str(data["source"]),
        "input_rows": int(data["input_rows"]),
    }
    return table, fields


def already_read(data: Any, segment: Any, control: str | None, noun: str) -> Any:
    """Data read and validated before (cells or moments): only the roles asked for now are checked."""
    wanted = [segment] if isinstance(segment, str) else list(segment or [])
    if wanted and wanted != list(data.segment_columns):
        raise InvalidArgumentError(f"segment must be {list(data.segment_columns)} for these {noun}, got {wanted!r}")
    if control is not None and str(control) not in data.arms:
        listed = ", ".join(repr(a) for a in data.arms[:20])
        raise InvalidDataError(f"control arm {str(control)!r} is not in these {noun}; arms are: {listed}")
    return data


def _resolve(
    columns: Sequence[str],
    wanted: str | None,
    defaults: Sequence[str],
    role: str,
    flag: str,
    source: str,
    required: bool = True,
) -> str | None:
    """Find the column for one role: the user's name, else a default name."""
    if wanted is not None:
        if wanted in columns:
            return wanted
        folded = [c for c in columns if c.lower() == wanted.lower()]
        if len(folded) == 1:
            return folded[0]
        close = difflib.get_close_matches(wanted, columns, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidDataError(
            f"{role} column {wanted!r} (given by {flag}) not found in {source}; {hint}columns are: {', '.join(columns)}"
        )
    lowered = {c.lower(): c for c in columns}
    for name in defaults:
        if name in lowered:
            return lowered[name]
    if required:
        raise InvalidDataError(
            f"no {role} column in {source}: name it with {flag} "
            f"(looked for {', '.join(defaults)}; columns are: {', '.join(columns)})"
        )
    return None


def _natural_key(label: Any) -> tuple:
    """Sort key that orders ``B2`` before ``B10`` (digits compare as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(str(label)) if part)


@dataclass(frozen=True)
class Roles:
    """Which source columns play which part: the arm, the segments, and the outcome or the two counts."""

    arm: str
    segments: tuple[str, ...]
    form: Literal["units", "cells"]
    outcome: str | None = None
    trials: str | None = None
    successes: str | None = None


def resolve_roles(
    columns: Sequence[str],
    source: str,
    *,
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    segment: str | Sequence[str] | None = None,
) -> Roles:
    """Find each role's column among ``columns``: the names given, else the default names.

    The form follows: count columns (given, or found by their default names
    when no outcome is given) make aggregated cells, else an outcome makes
    unit rows.

    Examples
    --------
    >>> resolve_roles(["variant", "converted"], "events.csv")
    Roles(arm='variant', segments=(), form='units', outcome='converted', trials=None, successes=None)
    >>> resolve_roles(["variant", "y"], "t.csv", arm="grp")
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: arm column 'grp' (given by --arm) not found in t.csv; columns are: variant, y
    """
    for name, value in (("arm", arm), ("outcome", outcome), ("trials", trials), ("successes", successes)):
        if value is not None and not isinstance(value, str):
            raise InvalidArgumentError(f"{name} must be a column name (a string), got {value!r}")
    if segment is None or isinstance(segment, str):
        segments_wanted = [] if segment is None else [segment]
    elif isinstance(segment, Sequence) and all(isinstance(s, str) for s in segment):
        segments_wanted = list(segment)
    else:
        raise InvalidArgumentError(f"segment must be a column name or a list of column names, got {segment!r}")
    if len(set(segments_wanted)) < len(segments_wanted):
        raise InvalidArgumentError(f"segment must name each column once, got {segments_wanted!r}")
    segment_cols = [_resolve(columns, s, (), "segment", "--segment", source) for s in segments_wanted]
    arm_col = _resolve(columns, arm, ARM_NAMES, "arm", "--arm", source)
    if arm_col in segment_cols:
        raise InvalidArgumentError(f"column {arm_col!r} cannot be both the arm and a segment")
    taken = next((c for c in segment_cols if c.lower() in CELL_COLUMNS), None)
    if taken is not None:
        raise InvalidArgumentError(
            f"segment column {taken!r} has a name abpool's cells use for their own columns "
            f"({', '.join(CELL_COLUMNS)}); rename it (in SQL: SELECT {taken} AS {taken}_group ...)"
        )

    cells_form = trials is not None or successes is not None
    if cells_form or outcome is None:
        trials_col = _resolve(columns, trials, TRIALS_NAMES, "trials", "--trials", source, required=cells_form)
        successes_col = _resolve(
            columns, successes, SUCCESSES_NAMES, "successes", "--successes", source, required=cells_form
        )
        if trials_col is not None and successes_col is None:
            successes_col = _resolve(columns, None, SUCCESSES_NAMES, "successes", "--successes", source)
        if successes_col is not None and trials_col is None:
            trials_col = _resolve(columns, None, TRIALS_NAMES, "trials", "--trials", source)
    else:
        trials_col = successes_col = None
    if trials_col is not None and successes_col is not None:
        return Roles(arm_col, tuple(segment_cols), "cells", trials=trials_col, successes=successes_col)
    outcome_col = _resolve(
        columns, outcome, OUTCOME_NAMES, "outcome", "--outcome", source, required=outcome is not None
    )
    if outcome_col is None:
        raise InvalidDataError(
            f"cannot tell the outcome in {source}: pass --outcome COL for unit rows (0/1 per user) "
            f"or --trials COL --successes COL for aggregated counts; columns are: {', '.join(columns)}"
        )
    return Roles(arm_col, tuple(segment_cols), "units", outcome=outcome_col)
