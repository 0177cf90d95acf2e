"""Continuous metrics (revenue per user, latency…) read and reduced to per-arm moments inside DuckDB.

Two long forms are accepted, auto-detected from the column names:

* **unit rows** — one row per user: an arm column, optional segment columns and
  a numeric ``value`` (default names ``value``, ``metric``, ``revenue``,
  ``amount``), reduced per (segment, arm) to the count ``n``, the ``mean``, the
  sum of squared deviations ``m2`` and the sample ``skewness`` in one
  streaming pass, the validation counted in the same query;
* **sufficient statistics** — one row per (segment, arm): ``n`` with either
  ``mean`` and ``sd``, ``mean`` and ``std_error``, or ``sum`` and ``sum_sq``.

Sources are those of :func:`abpool.data.load_cells` that DuckDB reads: CSV,
TSV, Parquet and JSON files, glob patterns, DataFrames and DuckDB databases
(``table=``/``query=``). Every problem is one
:class:`~abpool.errors.InvalidDataError` line naming the column, row and value.

Numerics. ``m2 = Σx² − n·mean²`` is never formed: it subtracts two numbers of
size ``n·mean²`` and loses every digit of the variance when the mean is large
relative to the spread (values ``1e9 + N(0, 1)``). The pass sums ``d = x − c``
with Kahan compensation (DuckDB's ``fsum``) around a shift ``c``, the median of
the first thousand values, which for a real metric lies within a few standard
deviations of every cell's mean; ``m2 = Σd² − (Σd)²/n`` is then accurate to
about ``1e-15``. A cell whose mean is far from ``c`` (segments on wholly
different scales) would lose digits in that difference: its ``m2`` comes
instead from DuckDB's ``var_pop`` (Welford's streaming update, merged across
threads by Chan's formula), which never cancels and is accurate to about
``1e-8`` at ``1e9 + N(0, 1)``. The mean is the compensated sum of the values
over ``n``, whatever the shift. DuckDB's own ``skewness`` sums raw powers
``Σx, Σx², Σx³`` and is useless at such offsets: the third central moment comes
from the shifted sums, and DuckDB's aggregate (the same G1 definition) serves
only for a cell far from the shift whose mean is small beside its spread.

Examples
--------
>>> import pandas as pd
>>> units = pd.DataFrame({"arm": ["A", "A", "A", "B", "B"], "revenue": [1.0, 2.0, 6.0, 4.0, 6.0]})
>>> moments = load_moments(units)
>>> moments.table[["arm", "n", "mean", "m2"]].to_dict("list")
{'arm': ['A', 'B'], 'n': [3, 2], 'mean': [3.0, 5.0], 'm2': [14.0, 2.0]}
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool.continuous.stats import Moments, combine_moments, moments_from_sums
from abpool.data.cells import (
    SEGMENT_SEPARATOR,
    _resolve,
    already_read,
    from_record_parts,
    joined_labels,
    resolve_roles,
    text_labels,
)
from abpool.data.local import (
    LocalSource,
    _check_count_column,
    _check_not_null,
    _column_types,
    _fetchone,
    _first_bad,
    _is_numeric,
    _open,
    _quote,
    _sorted_cells,
    check_labels_and_arms,
    connection,
)
from abpool.data.origin import Origin
from abpool.errors import InvalidArgumentError, InvalidDataError

# Default column names of each role, looked up case-insensitively in this order.
VALUE_NAMES = ("value", "metric", "revenue", "amount")
N_NAMES = ("n", "users", "count", "visitors")
SUM_NAMES = ("sum", "total")
SUM_SQ_NAMES = ("sum_sq", "sum_squares", "sum_of_squares", "sumsq")
MEAN_NAMES = ("mean", "average", "avg")
SD_NAMES = ("sd", "std", "stddev", "std_dev")
STD_ERROR_NAMES = ("std_error", "se", "sem", "standard_error")

# Means and M2 enter the fingerprint rounded to this many significant digits: unit rows and the same data
# given as sums, or as a mean and a standard deviation, agree to about 1e-14, not to the last bit.
FINGERPRINT_DIGITS = 12
# Below this many users the standard error itself is too uncertain to treat as known (the model does).
MIN_UNITS = 30
# Cochran's rule (Sampling Techniques, 1977, §2.15): the mean is close to normal once n > 25·G1².
COCHRAN_FACTOR = 25

# Rows read to choose the shift of the sums: a LIMIT stops the scan there, so it costs no pass.
_SHIFT_ROWS = 1000
# The shifted sums give M2 when at most this fraction of Σd² cancels (≤ 4 of ~16 digits lost).
_SHIFT_CANCELLATION = 1e-4

_ROLE_NAMES = {
    "n": N_NAMES,
    "sum": SUM_NAMES,
    "sum_sq": SUM_SQ_NAMES,
    "mean": MEAN_NAMES,
    "sd": SD_NAMES,
    "std_error": STD_ERROR_NAMES,
}
_FLAGS = {role: "--" + role.replace("_", "-") for role in _ROLE_NAMES}
# The complete sets of statistics, in the order they are looked for when no column is named.
_STATISTICS = (("mean", "sd"), ("mean", "std_error"), ("sum", "sum_sq"))
_TABLE_COLUMNS = ("arm", "n", "mean", "m2", "skewness", "capped")


@dataclass(frozen=True)
class ArmMoments:
    """A continuous metric reduced to one row per (segment, arm).

    Attributes
    ----------
    table : pandas.DataFrame
        Columns: one per segment column (as strings), then ``arm`` (string),
        ``n`` (int64), ``mean`` and ``m2`` (float64, the sum of squared
        deviations from the mean), ``skewness`` (float64, the adjusted sample
        skewness G1 of unit rows; NaN for sufficient statistics, for cells of
        fewer than 3 values or of equal values, and for a cell whose third
        moment cannot be computed without cancellation) and, when the values
        were capped, ``capped`` (int64, how many values of the cell were
        lowered to the cap). Cells of unit rows come in sorted order (digits
        compared as numbers); sufficient statistics keep the source's order.
    segment_columns : tuple of str
        Names of the segment columns in the source.
    arm_column : str
        Name of the arm column in the source.
    form : {"units", "moments"}
        Unit rows, or per-cell sufficient statistics.
    source : str
        Where the data came from (a path or ``"DataFrame"``).
    input_rows : int
        Rows read from the source.
    value_column : str or None
        The source's column of values (unit rows).
    statistics_columns : dict or None
        The source's columns of statistics, by role (``n``, ``mean``, ``sd``,
        ``std_error``, ``sum``, ``sum_sq``).
    cap : dict or None
        ``{"quantile", "value", "scope", "capped"}`` when unit values were
        winsorised: the quantile asked for, the cap it gave (one value for the
        whole experiment), and how many values were lowered to it.
    origin : Origin or None
        How to read the data again (the reproduce command's source); None when it was not read from a source.
    """

    table: pd.DataFrame
    segment_columns: tuple[str, ...]
    arm_column: str
    form: Literal["units", "moments"]
    source: str
    input_rows: int
    value_column: str | None = None
    statistics_columns: dict[str, str] | None = None
    cap: dict[str, Any] | None = None
    origin: Origin | None = None

    @property
    def arms(self) -> tuple[str, ...]:
        """Arm labels in order of first appearance."""
        return tuple(dict.fromkeys(self.table["arm"]))

    @property
    def moments(self) -> Moments:
        """The cells as :class:`~abpool.continuous.stats.Moments` arrays, the model's input."""
        return Moments(
            self.table["n"].to_numpy(dtype=float),
            self.table["mean"].to_numpy(dtype=float),
            self.table["m2"].to_numpy(dtype=float),
        )

    def cell_labels(self) -> list[str]:
        """One label per row of :attr:`table`: its segment values and arm joined by ``" / "`` (one-to-one)."""
        return joined_labels(self.table, [*self.segment_columns, "arm"])

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the cells' ``n``, ``mean`` and ``m2``: equal for unit rows and statistics that agree.

        Means and M2 are rounded to :data:`FINGERPRINT_DIGITS` significant
        digits first; skewness and cap counts are left out, since sufficient
        statistics do not have them.
        """
        keys = [*self.segment_columns, "arm"]
        ordered = self.table.sort_values(keys)
        rows = [
            [*(str(v) for v in key), int(n), _rounded(mean), _rounded(m2)]
            for *key, n, mean, m2 in ordered[[*keys, "n", "mean", "m2"]].itertuples(index=False, name=None)
        ]
        payload = json.dumps({"kind": "moments", "columns": [*keys, "n", "mean", "m2"], "data": rows})
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def sds(self) -> NDArray[np.float64]:
        """Sample standard deviation of each cell (divisor ``n − 1``)."""
        n = self.table["n"].to_numpy(dtype=float)
        return np.sqrt(self.table["m2"].to_numpy(dtype=float) / (n - 1.0))

    @property
    def std_errors(self) -> NDArray[np.float64]:
        """Standard error of each cell's mean, ``sd / √n`` (the model's known ``sigma_j``)."""
        return self.sds / np.sqrt(self.table["n"].to_numpy(dtype=float))

    @property
    def grand_mean(self) -> float:
        """Every unit's value averaged, all cells together."""
        n = self.table["n"].to_numpy(dtype=float)
        return float(np.sum(n * self.table["mean"].to_numpy(dtype=float)) / n.sum())

    def column_options(self) -> list[tuple[str, str]]:
        """The command-line options naming the source's value or statistics columns (``[("--value", "revenue")]``)."""
        if self.value_column is not None:
            return [("--value", self.value_column)]
        return [(_FLAGS[role], column) for role, column in (self.statistics_columns or {}).items()]

    def to_record(self) -> dict[str, Any]:
        """The cells as JSON-ready data: :meth:`describe` and the table (read back by :meth:`from_record`).

        Examples
        --------
        >>> import pandas as pd
        >>> stats = pd.DataFrame({"arm": ["A", "B"], "n": [40, 50], "mean": [2.0, 2.5], "sd": [1.0, 1.5]})
        >>> moments = load_moments(stats)
        >>> ArmMoments.from_record(moments.to_record()).fingerprint == moments.fingerprint
        True
        """
        return {**self.describe(), "kind": "moments", "table": self.table.to_dict("list")}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ArmMoments:
        """Cells rebuilt from :meth:`to_record`'s data (a saved run)."""
        table, fields = from_record_parts(data, integer=("n", "capped"), floating=("mean", "m2", "skewness"))
        return cls(
            table=table,
            **fields,
            value_column=data.get("value_column"),
            statistics_columns=data.get("statistics_columns"),
            cap=data.get("cap"),
            origin=Origin.from_record(data.get("origin")),
        )

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description of the data (provenance).

        Examples
        --------
        >>> import pandas as pd
        >>> stats = pd.DataFrame({"arm": ["A", "B"], "n": [40, 50], "mean": [2.0, 2.5], "sd": [1.0, 1.5]})
        >>> info = load_moments(stats).describe()
        >>> info["form"], info["statistics_columns"], info["cells"]
        ('moments', {'n': 'n', 'mean': 'mean', 'sd': 'sd'}, 2)
        """
        return {
            "source": self.source,
            "form": self.form,
            "input_rows": self.input_rows,
            "arm_column": self.arm_column,
            "segment_columns": list(self.segment_columns),
            "value_column": self.value_column,
            "statistics_columns": None if self.statistics_columns is None else dict(self.statistics_columns),
            "cap": None if self.cap is None else dict(self.cap),
            "origin": None if self.origin is None else self.origin.to_record(),
            "cells": len(self.table),
            "fingerprint": self.fingerprint,
        }


def _rounded(value: float) -> str:
    # Adding 0.0 turns -0.0 into 0.0: a zero mean prints one way whichever side it was reached from.
    return f"{float(value) + 0.0:.{FINGERPRINT_DIGITS - 1}e}"


def load_moments(
    data: LocalSource | ArmMoments,
    *,
    arm: str | None = None,
    value: str | None = None,
    segment: str | Sequence[str] | None = None,
    n: str | None = None,
    sum: str | None = None,  # the role's name, as --sum: the builtin is not used below
    sum_sq: str | None = None,
    mean: str | None = None,
    sd: str | None = None,
    std_error: str | None = None,
    control: str | None = None,
    cap: float | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> ArmMoments:
    """Read a continuous metric and reduce it to per-(segment, arm) moments, validating everything.

    Parameters
    ----------
    data : pandas.DataFrame, path or ArmMoments
        A DataFrame; a ``.csv``/``.tsv``/``.parquet``/``.json`` file or a glob
        pattern matching many; a DuckDB database file (with ``table`` or
        ``query``). An :class:`ArmMoments` (already read) passes through.
    arm : str, optional
        Arm column; default: the first of ``variant``, ``arm``, ``group``,
        ``treated``, ``treatment`` present.
    value : str, optional
        Numeric column of unit rows (one value per user); default: ``value``,
        ``metric``, ``revenue`` or ``amount``. Any finite number is accepted,
        0/1 included (its mean is a rate); NULL, NaN, infinite and non-numeric
        values are refused, naming the first row.
    segment : str or sequence of str, optional
        Segment column(s); several columns combine into one segment.
    n, sum, sum_sq, mean, sd, std_error : str, optional
        Columns of sufficient statistics, one row per (segment, arm): ``n``
        (default names ``n``, ``users``, ``count``, ``visitors``) with either
        ``mean`` and ``sd`` (sample standard deviation, divisor ``n − 1``),
        ``mean`` and ``std_error`` (of the mean, ``sd / √n``), or ``sum`` and
        ``sum_sq`` (``Σx`` and ``Σx²``, refused when they have cancelled; see
        :func:`abpool.continuous.stats.moments_from_sums`). Naming any of them
        chooses this form; without names, a complete set found under the
        default names does.
    control : str, optional
        Control arm label; checked to exist.
    cap : float, optional
        A quantile in (0, 1), e.g. 0.99: unit values above that quantile of
        all the experiment's values (every arm and segment together, as
        GrowthBook caps a metric) are lowered to it before the moments are
        taken. One cap for all arms keeps them comparable: a cap per arm would
        cut the arm with the longer tail harder and shrink the very difference
        being measured. The quantile is DuckDB's ``quantile_cont`` (linear
        interpolation, numpy's default method). Only unit rows can be capped.
    table, query : str, optional
        With a DuckDB database file: the table to read, or a SQL query over
        its tables whose rows are the data (one of the two).
    where : str, optional
        A DuckDB SQL condition: only the rows meeting it are the data (one
        metric of a long table, say); rows are still numbered in the whole
        source.

    Returns
    -------
    ArmMoments

    Raises
    ------
    InvalidDataError
        With a one-line message naming the column, row or value at fault.
    InvalidArgumentError
        When the options contradict each other (``cap`` with statistics, both
        ``sd`` and ``std_error``…).

    Examples
    --------
    >>> import pandas as pd
    >>> units = pd.DataFrame({"variant": ["B", "A", "B", "A"], "value": [3.0, 1.0, 5.0, 2.0]})
    >>> load_moments(units).table[["arm", "n", "mean", "m2"]].to_dict("list")
    {'arm': ['A', 'B'], 'n': [2, 2], 'mean': [1.5, 4.0], 'm2': [0.5, 2.0]}
    >>> stats = pd.DataFrame({"variant": ["A", "B"], "n": [2, 2], "sum": [3.0, 8.0], "sum_sq": [5.0, 34.0]})
    >>> load_moments(stats).fingerprint == load_moments(units).fingerprint
    True
    >>> load_moments(units, control="C")
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: control arm 'C' is not in column 'variant'; arms are: 'A', 'B'
    """
    statistics = {
        role: column
        for role, column in (
            ("n", n),
            ("sum", sum),
            ("sum_sq", sum_sq),
            ("mean", mean),
            ("sd", sd),
            ("std_error", std_error),
        )
        if column is not None
    }
    for role, column in [("value", value), *statistics.items()]:
        if column is not None and not isinstance(column, str):
            raise InvalidArgumentError(f"{role} must be a column name (a string), got {column!r}")
    quantile = _check_cap(cap)
    if isinstance(data, ArmMoments):
        return already_read(data, segment, control, "moments")
    with connection(table=table, query=query, where=where) as con:
        return _load_moments(con, data, arm, value, segment, statistics, control, quantile)


def normal_approximation_warnings(moments: ArmMoments) -> list[str]:
    """Cells whose mean is too small or too skewed a sample for the normal approximation the model makes.

    The model takes each cell's mean as normal with a known standard error.
    Three rules, one warning per cell at most:

    * all values equal (``m2 = 0``): the standard error is 0, the mean is
      treated as exact;
    * ``n < 30`` (:data:`MIN_UNITS`): the standard deviation itself is too
      uncertain to be taken as known;
    * Cochran's rule, ``n ≤ 25·G1²`` (:data:`COCHRAN_FACTOR`), with ``G1`` the
      adjusted sample skewness of the cell: the sampling distribution of the
      mean keeps a visible skew. A skewness of 3, common for revenue, needs
      more than 225 users. Sufficient statistics carry no skewness: only the
      first two rules apply to them.

    Parameters
    ----------
    moments : ArmMoments

    Returns
    -------
    list of str
        One line per cell at fault (empty when all cells pass).

    Examples
    --------
    >>> import pandas as pd
    >>> stats = pd.DataFrame({"arm": ["A", "B"], "n": [12, 400], "mean": [2.0, 2.5], "sd": [1.0, 1.5]})
    >>> normal_approximation_warnings(load_moments(stats))  # doctest: +NORMALIZE_WHITESPACE
    ["arm 'A' has 12 users, fewer than 30: too few to treat its standard error as known; read its
      interval with care or collect more data"]
    """
    warnings = []
    table = moments.table
    # Without segments a cell is an arm, and the reader knows it by that name.
    noun = "cell" if moments.segment_columns else "arm"
    for label, n, m2, skew in zip(moments.cell_labels(), table["n"], table["m2"], table["skewness"], strict=True):
        if m2 == 0:
            warnings.append(
                f"{noun} {label!r}: all its {n} values are equal, so its standard error is 0 and its mean is taken "
                "as exact; check the metric"
            )
        elif n < MIN_UNITS:
            warnings.append(
                f"{noun} {label!r} has {n} users, fewer than {MIN_UNITS}: too few to treat its standard error as "
                "known; read its interval with care or collect more data"
            )
        elif np.isfinite(skew) and n <= COCHRAN_FACTOR * skew**2:
            needed = math.floor(COCHRAN_FACTOR * skew**2) + 1
            warnings.append(
                f"{noun} {label!r} is skewed (skewness {skew:.3g}): its mean is close to normal from about "
                f"{needed:,} users (n > {COCHRAN_FACTOR}·skewness²) and it has {n:,}; cap the metric "
                "(e.g. --cap 0.99) or collect more data"
            )
    return warnings


def _check_cap(cap: Any) -> float | None:
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, int | float | np.floating | np.integer) or not 0 < cap < 1:
        raise InvalidArgumentError(f"cap must be a quantile between 0 and 1 (e.g. 0.99), got {cap!r}")
    return float(cap)


def _load_moments(
    con: Any,
    data: LocalSource,
    arm: str | None,
    value: str | None,
    segment: str | Sequence[str] | None,
    statistics: dict[str, str],
    control: str | None,
    quantile: float | None,
) -> ArmMoments:
    source = _open(con, data)
    columns = [c for c in _column_types(con) if c != con.row]
    if not columns:
        raise InvalidDataError(f"{source} has no columns")
    con.check_has_rows(source)
    # resolve_roles checks the arm and segment names (and their messages); the outcome it also needs is
    # irrelevant here, so any existing column stands in for it.
    keys = resolve_roles(columns, source, arm=arm, segment=segment, outcome=columns[0])
    arm_col, segment_cols = keys.arm, list(keys.segments)
    for col in segment_cols:
        if col in _TABLE_COLUMNS:
            raise InvalidArgumentError(
                f"segment column {col!r} has the name of a column of the moments table; rename it in the source"
            )
    if value is not None and statistics:
        raise InvalidArgumentError(
            "value (one number per user) and n/mean/sd/std_error/sum/sum_sq (statistics per cell) describe "
            "different forms; give one of them"
        )
    found = None if value is not None else _statistics_columns(columns, source, statistics)
    cap_info = None
    if found is not None:
        if quantile is not None:
            raise InvalidArgumentError(
                "cap applies to unit rows (one value per user); sufficient statistics cannot be capped without "
                "their rows"
            )
        form: Literal["units", "moments"] = "moments"
        value_col = None
        con.numbered()
        n_rows = int(_fetchone(con, "SELECT count(*) FROM abpool_src")[0])
        for col in [arm_col, *segment_cols]:
            _check_not_null(con, col, "segment" if col in segment_cols else "arm", source)
        table = _statistics_cells(con, arm_col, segment_cols, found, source)
    else:
        value_col = _resolve(columns, value, VALUE_NAMES, "value", "--value", source, required=False)
        if value_col is None:
            raise InvalidDataError(
                f"cannot tell the metric in {source}: pass --value COL for unit rows (one number per user), or "
                f"--n COL with --mean COL and --sd COL (or --std-error COL, or --sum COL and --sum-sq COL) for "
                f"statistics per cell; columns are: {', '.join(columns)}"
            )
        if value_col == arm_col or value_col in segment_cols:
            raise InvalidArgumentError(f"column {value_col!r} cannot be both the value and the arm or a segment")
        form = "units"
        table, n_rows, cap_info = _aggregate_values(con, arm_col, segment_cols, value_col, source, quantile)

    if form == "units":
        # The order of users in a file means nothing: their cells come in sorted order, whatever the row order.
        table = _sorted_cells(table, segment_cols)
    text_labels(table, [*segment_cols, "arm"])
    check_labels_and_arms(table, segment_cols, arm_col, source, control)
    return ArmMoments(
        table=table.reset_index(drop=True),
        segment_columns=tuple(segment_cols),
        arm_column=arm_col,
        form=form,
        source=source,
        input_rows=n_rows,
        value_column=value_col,
        statistics_columns=found,
        cap=cap_info,
    )


def _statistics_columns(columns: Sequence[str], source: str, given: dict[str, str]) -> dict[str, str] | None:
    """The columns of one complete set of statistics, or None when none is named and none is found."""
    if "sd" in given and "std_error" in given:
        raise InvalidArgumentError("give the spread once: sd or std_error, not both")
    if given.keys() & {"sum", "sum_sq"} and given.keys() & {"mean", "sd", "std_error"}:
        raise InvalidArgumentError("give either sum and sum_sq, or mean with sd or std_error, not a mix")
    named = set(given) - {"n"}
    candidates = [roles for roles in _STATISTICS if named <= set(roles)]
    for roles in candidates:
        found = {
            role: _resolve(columns, given.get(role), _ROLE_NAMES[role], role, _FLAGS[role], source, required=False)
            for role in ("n", *roles)
        }
        if all(found.values()):
            return found
    if not given:
        return None
    # Named but incomplete: the first missing role of the likeliest set says what to add.
    for role in ("n", *candidates[0]):
        _resolve(columns, given.get(role), _ROLE_NAMES[role], role, _FLAGS[role], source)
    raise AssertionError("unreachable: a complete set was found above")  # pragma: no cover


def _double(value: float) -> str:
    # A quoted literal cast to DOUBLE reads back the very float (a bare 0.1 would be a DECIMAL).
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _aggregate_values(
    con: Any, arm: str, segments: Sequence[str], column: str, source: str, quantile: float | None
) -> tuple[pd.DataFrame, int, dict[str, Any] | None]:
    """Unit values to per-cell moments and the rows read, in one pass that also counts the bad values.

    A cap costs one more pass, before it: the quantile of all values. Only
    when a problem is counted is the source read again, with row numbers, to
    name the first row at fault.
    """
    dtype = _column_types(con)[column]
    if dtype == "BOOLEAN":
        raise InvalidDataError(
            f"value column {column!r} in {source} holds true/false: a conversion, for the binary model "
            "(abpool.data.load_cells); cast it to 0/1 to analyse it as a mean"
        )
    if not (_is_numeric(dtype) or dtype == "VARCHAR"):
        raise InvalidDataError(f"value column {column!r} in {source} has type {dtype}; it must hold numbers")
    col = _quote(column)
    number = f"TRY_CAST({col} AS DOUBLE)"
    # NULL for an empty, non-numeric, NaN or infinite value: aggregates skip it, and count(*) - count(value) counts it.
    valid = f"CASE WHEN isfinite({number}) THEN {number} END"

    first = _fetchone(
        con,
        f"SELECT median(v) FROM (SELECT {valid} AS v FROM abpool_scan WHERE {valid} IS NOT NULL LIMIT {_SHIFT_ROWS})",
    )
    shift = 0.0 if first is None or first[0] is None else float(first[0])
    cap_value = None
    if quantile is not None:
        # No valid value at all leaves no cap: the pass below then names the first bad row.
        found = _fetchone(con, f"SELECT quantile_cont({valid}, {_double(quantile)}) FROM abpool_scan")
        cap_value = None if found is None or found[0] is None else float(found[0])
    # Names no key column can take: the keys are selected alongside them.
    raw, y = "abpool_raw", "abpool_y"
    capped_y = raw if cap_value is None else f"least({raw}, {_double(cap_value)})"
    capped = "" if cap_value is None else f", count(*) FILTER (WHERE {raw} > {_double(cap_value)}) AS capped"

    native, selected, keys = _key_sql([*segments, arm])
    d = f"({y} - {_double(shift)})"
    # Grouped on the columns' own types (no text per row), then labelled; two values that print alike are
    # merged below, so a label is never listed twice.
    parts = con.execute(
        f"SELECT {selected}, count(*) AS rows, count({y}) AS n, fsum({d}) AS s1, fsum({d} * {d}) AS s2, "
        f"fsum({d} * {d} * {d}) AS s3, var_pop({y}) AS var, fsum({y}) AS total, skewness({y}) AS skew{capped} "
        f"FROM (SELECT {native}, {raw}, {capped_y} AS {y} FROM (SELECT {native}, {valid} AS {raw} FROM abpool_scan)) "
        f"GROUP BY {native}"
    ).df()
    names = dict(zip(keys, [*segments, "arm"], strict=True))

    if parts[keys].isna().any(axis=None) or (parts["rows"] > parts["n"]).any():
        con.numbered()
        for key in [*segments, arm]:
            _check_not_null(con, key, "segment" if key in segments else "arm", source)
        bad = _first_bad(con, f"{valid} IS NULL", column)
        if bad is not None:
            raise InvalidDataError(
                f"value column {column!r} must hold a finite number per user, but row {bad[0]} of {source} "
                f"{_describe_bad(bad[1])}; fix or drop the row"
            )

    table = _merge_parts(parts, keys)
    few = table.index[table["n"] < 2]
    if len(few):
        label = SEGMENT_SEPARATOR.join(str(v) for v in table.loc[few[0], keys])
        raise InvalidDataError(
            f"cell {label!r} has a single value in {source}; an arm needs at least 2 users to estimate its "
            "spread: add data, merge the cell with another, or drop it"
        )
    broken = table.index[~(np.isfinite(table["mean"]) & np.isfinite(table["m2"]))]
    if len(broken):
        label = SEGMENT_SEPARATOR.join(str(v) for v in table.loc[broken[0], keys])
        raise InvalidDataError(
            f"the values of cell {label!r} in column {column!r} of {source} are too large to square in double "
            "precision; rescale the metric (e.g. to thousands)"
        )
    cap_info = None
    if cap_value is not None:
        cap_info = {
            "quantile": quantile,
            "value": cap_value,
            "scope": "experiment",
            "capped": int(table["capped"].sum()),
        }
    n_rows = int(table.pop("rows").sum())
    return table.rename(columns=names), n_rows, cap_info


def _key_sql(columns: Sequence[str]) -> tuple[str, str, list[str]]:
    """The key columns as SQL: natively, and as text under aliases no source column can clash with."""
    aliases = [f"key_{i}" for i in range(len(columns))]
    native = ", ".join(_quote(c) for c in columns)
    selected = ", ".join(f"CAST({_quote(c)} AS VARCHAR) AS {a}" for c, a in zip(columns, aliases, strict=True))
    return native, selected, aliases


def _describe_bad(shown: str | None) -> str:
    """How a bad value reads in a message: empty, NaN, infinite or not a number."""
    if shown is None:
        return "is empty"
    try:
        number = float(shown)
    except ValueError:
        return f"has {shown!r}, which is not a number"
    return f"has {shown}" + (" (not a number)" if math.isnan(number) else " (infinite)")


def _merge_parts(parts: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per-cell n, mean, M2 and skewness from the aggregates of each group of the pass.

    Groups whose keys print alike (``1`` and ``1.0`` in a DOUBLE column) form one cell.
    """
    n = parts["n"].to_numpy(dtype=float)
    s1, s2, s3 = (parts[c].to_numpy(dtype=float) for c in ("s1", "s2", "s3"))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # A compensated sum of the values themselves: no shift to lose the digits of a cell far from it.
        mean = parts["total"].to_numpy(dtype=float) / n
        from_shift = s2 - s1 * s1 / n
        # The shifted sums serve when they keep most of their digits; otherwise Welford's update does.
        m2 = np.where(_kept_digits(from_shift, s2), from_shift, parts["var"].to_numpy(dtype=float) * n)
    m2 = np.maximum(m2, 0.0)

    codes, labels = pd.factorize(pd.Series(list(parts[list(keys)].itertuples(index=False, name=None))))
    cells = pd.DataFrame(list(labels), columns=list(keys))

    def total(values: Any) -> np.ndarray:
        return np.bincount(codes, weights=np.asarray(values, dtype=float), minlength=len(cells))

    _, merged = combine_moments(codes, Moments(n, mean, m2))
    count = total(n)
    cells["rows"] = total(parts["rows"]).astype(np.int64)
    cells["n"] = count.astype(np.int64)
    cells["mean"] = merged.mean
    cells["m2"] = merged.m2
    sums = total(s1), total(s2), total(s3)
    skewness = _skewness(count, merged.m2, *sums)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        shifted_ok = _kept_digits(sums[1] - sums[0] * sums[0] / count, sums[1])
        # DuckDB's skewness sums raw powers of x: sound where the mean is small beside the spread, which is
        # where a cell far from the shift usually is (a segment on another scale). It cannot merge groups.
        raw_ok = _kept_digits(merged.m2, merged.m2 + count * merged.mean**2) & (total(np.ones(len(parts))) == 1)
    duck = np.full(len(cells), np.nan)
    duck[codes] = parts["skew"].to_numpy(dtype=float)
    cells["skewness"] = np.where(shifted_ok, skewness, np.where(raw_ok, duck, np.nan))
    if "capped" in parts:
        cells["capped"] = total(parts["capped"]).astype(np.int64)
    return cells


def _kept_digits(difference: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Whether ``difference``, taken between terms of size ``scale``, kept all but a few of its digits."""
    return (difference >= _SHIFT_CANCELLATION * scale) | (scale == 0)


def _skewness(n: np.ndarray, m2: np.ndarray, s1: np.ndarray, s2: np.ndarray, s3: np.ndarray) -> np.ndarray:
    """Adjusted sample skewness G1 (DuckDB's ``skewness``, scipy's ``skew(bias=False)``) from shifted sums.

    ``M3 = Σ(d − δ)³ = S3 − 3δ·S2 + 2n·δ³`` with ``δ = S1 / n``: the cubes cancel
    only as far as the shift is from the mean, in units of the spread.
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        delta = s1 / n
        m3 = s3 - 3.0 * delta * s2 + 2.0 * n * delta**3
        g1 = (m3 / n) / (m2 / n) ** 1.5
        adjusted = g1 * np.sqrt(n * (n - 1.0)) / (n - 2.0)
    return np.where((n >= 3) & (m2 > 0) & np.isfinite(adjusted), adjusted, np.nan)


def _check_statistic_column(con: Any, column: str, role: str, source: str, *, signed: bool) -> None:
    """A statistic is a finite number in every row, and not negative unless ``signed``."""
    col = _quote(column)
    if not _is_numeric(_column_types(con)[column]):
        bad = _first_bad(con, f"{col} IS NOT NULL AND TRY_CAST({col} AS DOUBLE) IS NULL", column)
        if bad is not None:
            raise InvalidDataError(
                f"{role} column {column!r} must hold numbers, but row {bad[0]} of {source} has {bad[1]!r}"
            )
    number = f"TRY_CAST({col} AS DOUBLE)"
    bad = _first_bad(con, f"{col} IS NULL OR isnan({number})", column)
    if bad is not None:
        raise InvalidDataError(
            f"{role} column {column!r} is empty or NaN at row {bad[0]} of {source}; every cell needs its {role}"
        )
    bad = _first_bad(con, f"isinf({number})", column)
    if bad is not None:
        raise InvalidDataError(f"{role} column {column!r} is infinite ({bad[1]}) at row {bad[0]} of {source}; check it")
    if not signed:
        bad = _first_bad(con, f"{number} < 0", column)
        if bad is not None:
            raise InvalidDataError(
                f"{role} column {column!r} has a negative value {bad[1]} at row {bad[0]} of {source}; "
                f"{'a sum of squares' if role == 'sum_sq' else 'a spread'} cannot be negative"
            )


def _statistics_cells(
    con: Any, arm: str, segments: Sequence[str], columns: dict[str, str], source: str
) -> pd.DataFrame:
    """Sufficient statistics, one row per cell, checked row by row (they are few) and turned into moments."""
    _check_count_column(con, columns["n"], "n", source)
    for role, column in columns.items():
        if role != "n":
            _check_statistic_column(con, column, role, source, signed=role in ("sum", "mean"))
    row = _quote(con.row)
    n_col = _quote(columns["n"])
    keys = [*segments, arm]
    key_sql = ", ".join(f"CAST({_quote(k)} AS VARCHAR)" for k in keys)
    few = _fetchone(
        con,
        f"SELECT {row}, CAST({n_col} AS BIGINT), {key_sql} FROM abpool_src WHERE CAST({n_col} AS DOUBLE) < 2 "
        f"ORDER BY {row} LIMIT 1",
    )
    if few is not None:
        label = SEGMENT_SEPARATOR.join(str(v) for v in few[2:])
        if few[1] == 0:
            raise InvalidDataError(f"cell {label!r} has n = 0 at row {few[0]} of {source}; remove it or add its data")
        raise InvalidDataError(
            f"cell {label!r} has n = 1 at row {few[0]} of {source}; an arm needs at least 2 users to estimate "
            "its spread: merge the cell with another or drop it"
        )
    dup = _fetchone(
        con,
        f"SELECT {key_sql}, list({row} ORDER BY {row}) AS rows FROM abpool_src "
        f"GROUP BY {key_sql} HAVING count(*) > 1 ORDER BY min({row}) LIMIT 1",
    )
    if dup is not None:
        label = SEGMENT_SEPARATOR.join(str(v) for v in dup[:-1])
        rows = ", ".join(str(r) for r in dup[-1][:5])
        raise InvalidDataError(
            f"cell {label!r} appears in more than one row of {source} (rows {rows}); "
            "give each cell once (merge its statistics) or pass unit rows instead"
        )
    _, selected, aliases = _key_sql(keys)
    stats = ", ".join(f"CAST({_quote(c)} AS DOUBLE) AS {_quote(role)}" for role, c in columns.items() if role != "n")
    table = con.execute(
        f"SELECT {selected}, {row} AS row, CAST({n_col} AS BIGINT) AS n, {stats} FROM abpool_src ORDER BY {row}"
    ).df()
    n = table["n"].to_numpy(dtype=float)
    if "sum" in columns:
        mean, m2 = _moments_from_sum_columns(table, aliases, columns, source)
    else:
        mean = table["mean"].to_numpy(dtype=float)
        sd = table["sd"].to_numpy(dtype=float) if "sd" in columns else table["std_error"].to_numpy() * np.sqrt(n)
        m2 = sd * sd * (n - 1.0)
    with np.errstate(over="ignore"):
        huge = np.flatnonzero(~np.isfinite(m2))
    if huge.size:
        spread = "sd" if "sd" in columns else "std_error"
        raise InvalidDataError(
            f"row {table['row'].iat[huge[0]]} of {source} has a {spread} too large to square in double precision; "
            "rescale the metric (e.g. to thousands)"
        )
    out = table[aliases].set_axis([*segments, "arm"], axis=1)
    out["n"] = table["n"].astype(np.int64)
    out["mean"] = mean
    out["m2"] = m2
    out["skewness"] = np.nan
    return out


def _moments_from_sum_columns(
    table: pd.DataFrame, keys: Sequence[str], columns: dict[str, str], source: str
) -> tuple[np.ndarray, np.ndarray]:
    means, m2s = [], []
    for i in range(len(table)):
        n, total, total_sq = (float(table[c].iat[i]) for c in ("n", "sum", "sum_sq"))
        where = f"row {table['row'].iat[i]} of {source} (cell {SEGMENT_SEPARATOR.join(table[keys].iloc[i])!r})"
        if total_sq < total * total / n * (1.0 - 1e-12):
            raise InvalidDataError(
                f"{where} has {columns['sum_sq']!r} = {total_sq:g} below {columns['sum']!r}^2 / n = "
                f"{total * total / n:g}, which no data can give; check the two columns"
            )
        try:
            moments = moments_from_sums(n, total, total_sq)
        except InvalidDataError:
            raise InvalidDataError(
                f"{where}: the variance cannot be recovered from {columns['sum']!r} and {columns['sum_sq']!r} "
                "(they cancel when the mean is large relative to the spread); pass mean and sd columns instead"
            ) from None
        means.append(float(moments.mean[0]))
        m2s.append(float(moments.m2[0]))
    return np.array(means), np.array(m2s)


__all__ = [
    "COCHRAN_FACTOR",
    "FINGERPRINT_DIGITS",
    "MEAN_NAMES",
    "MIN_UNITS",
    "N_NAMES",
    "SD_NAMES",
    "STD_ERROR_NAMES",
    "SUM_NAMES",
    "SUM_SQ_NAMES",
    "VALUE_NAMES",
    "ArmMoments",
    "load_moments",
    "normal_approximation_warnings",
]
