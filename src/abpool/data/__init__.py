"""Reading, validating and aggregating experiment data: files with DuckDB, databases where they live.

Two long forms are accepted, auto-detected from the column names:

* **unit rows** — one row per user: an arm column, optional segment columns and
  a binary outcome (0/1 or true/false);
* **aggregated cells** — one row per (segment, arm): an arm column, optional
  segment columns, ``trials`` and ``successes``.

Files (CSV, TSV, Parquet, JSON, globs of many), DataFrames and DuckDB
databases are read and aggregated by DuckDB in SQL (:mod:`abpool.data.local`),
so a file of ten million unit rows becomes a handful of cells without passing
through pandas. PostgreSQL, and any warehouse through an Ibis table, aggregate
inside the database (:mod:`abpool.data.warehouse`). Every problem is reported
as one :class:`InvalidDataError` line naming the column, row and value at fault.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"variant": ["A", "B"], "trials": [100, 100], "successes": [30, 50]})
>>> cells = load_cells(frame)
>>> cells.arms
('A', 'B')
>>> cells.table[["arm", "trials", "successes"]].to_dict("list")
{'arm': ['A', 'B'], 'trials': [100, 100], 'successes': [30, 50]}
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abpool.data.cells import (
    ARM_NAMES,
    MAX_COUNT,
    OUTCOME_NAMES,
    SEGMENT_SEPARATOR,
    SUCCESSES_NAMES,
    TRIALS_NAMES,
    Cells,
    already_read,
)
from abpool.data.local import read_local
from abpool.data.warehouse import is_warehouse, origin_of, read_warehouse_cells
from abpool.errors import InvalidArgumentError

# A DataFrame; a path, a glob pattern or a PostgreSQL connection string; validated Cells; or an Ibis table.
DataSource = pd.DataFrame | str | Path | Cells | Any


def load_cells(
    data: DataSource,
    *,
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    segment: str | Sequence[str] | None = None,
    control: str | None = None,
    table: str | None = None,
    query: str | None = None,
) -> Cells:
    """Read experiment data and aggregate it to cells, validating everything.

    Parameters
    ----------
    data : pandas.DataFrame, path, connection string, Ibis table or Cells
        A DataFrame; a ``.csv``/``.tsv``/``.parquet``/``.json`` file or a glob
        pattern matching many (``days/*.parquet``); a DuckDB database file; a
        PostgreSQL connection string (``postgresql://user@host/db``); an Ibis
        table on any warehouse. A :class:`Cells` (already read and validated)
        passes through.
    arm : str, optional
        Arm column; default: the first of ``variant``, ``arm``, ``group``,
        ``treated``, ``treatment`` present.
    outcome : str, optional
        Binary outcome column of unit rows; default: ``outcome``, ``success``,
        ``converted`` or ``conversion``.
    trials, successes : str, optional
        Count columns of aggregated cells; defaults ``trials``/``n`` and
        ``successes``/``conversions``.
    segment : str or sequence of str, optional
        Segment column(s); several columns combine into one segment.
    control : str, optional
        Control arm label; checked to exist.
    table, query : str, optional
        With a DuckDB database file (``.duckdb``) or a PostgreSQL connection
        string: the table to read, or a SQL query over its tables whose rows are
        the data (one of the two). The aggregation runs inside the database
        (a DuckDB file is opened read-only; see :mod:`abpool.data.warehouse`).

    Returns
    -------
    Cells

    Raises
    ------
    InvalidDataError
        With a one-line message naming the column, row or value at fault.

    Examples
    --------
    >>> import pandas as pd
    >>> units = pd.DataFrame({"arm": ["A", "A", "B", "B"], "converted": [1, 0, 1, 1]})
    >>> load_cells(units).table.to_dict("list")
    {'arm': ['A', 'B'], 'trials': [2, 2], 'successes': [1, 2]}
    >>> load_cells(units, control="C")
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidDataError: control arm 'C' is not in column 'arm'; arms are: 'A', 'B'
    """
    if isinstance(data, Cells):
        # Already read and validated (a simulation, a batch).
        return already_read(data, segment, control, "cells")
    return read_cells(
        data,
        table=table,
        query=query,
        arm=arm,
        outcome=outcome,
        trials=trials,
        successes=successes,
        segment=segment,
        control=control,
    )


# A database server filters where the data lives: the rows are chosen by the query it runs.
SERVER_WHERE = (
    "where applies to files and DuckDB databases, not to a database server: choose the rows with "
    "query (--query 'SELECT * FROM events WHERE ...')"
)


def check_where_applies(data: Any, where: str | None) -> None:
    """Refuse a row condition (``where``) for a database server in one line: there the query chooses the rows.

    Examples
    --------
    >>> check_where_applies("events.csv", "day > 3")
    >>> check_where_applies("postgresql://me@db/shop", None)
    """
    if where is not None and is_warehouse(data):
        raise InvalidArgumentError(SERVER_WHERE)


def read_cells(
    data: DataSource, *, where: str | None = None, table: str | None = None, query: str | None = None, **columns: Any
) -> Cells:
    """:func:`load_cells` of any source; for a file, DataFrame or DuckDB database, of the rows meeting ``where``.

    ``where`` is a DuckDB SQL condition (see :func:`abpool.data.local.read_local`).
    """
    check_where_applies(data, where)
    if is_warehouse(data):
        cells = read_warehouse_cells(data, table=table, query=query, **columns)
    else:
        cells = read_local(data, where=where, table=table, query=query, **columns)
    return _with_origin(cells, data, table=table, query=query, where=where)


def read_moments(
    data: Any,
    *,
    where: str | None = None,
    table: str | None = None,
    query: str | None = None,
    value: str | None = None,
    cap: float | None = None,
    **columns: Any,
) -> Any:
    """:func:`abpool.data.moments.load_moments` of any source: a database server reduces the values inside it.

    A PostgreSQL connection string or an Ibis table gives unit rows with a
    ``value`` column, reduced to per-arm moments where they live
    (:func:`abpool.data.warehouse.read_warehouse_moments`); every other source
    is read by DuckDB, ``where`` keeping the rows meeting a SQL condition.
    """
    from abpool.data.moments import load_moments

    check_where_applies(data, where)
    if is_warehouse(data):
        statistics = sorted(role for role in ("n", "sum", "sum_sq", "mean", "sd", "std_error") if columns.get(role))
        if statistics:
            raise InvalidArgumentError(
                "from a database, give unit rows with --value: per-arm statistics are read from files and DataFrames"
            )
        from abpool.data.warehouse import read_warehouse_moments

        wanted = {key: columns.get(key) for key in ("arm", "segment", "control")}
        moments = read_warehouse_moments(data, table=table, query=query, value=value, cap=cap, **wanted)
    else:
        moments = load_moments(data, where=where, table=table, query=query, value=value, cap=cap, **columns)
    return _with_origin(moments, data, table=table, query=query, where=where)


def _with_origin(read: Any, data: Any, **place: str | None) -> Any:
    """``read`` (cells or moments) with where it came from: the source's, or, for data read before, its own."""
    origin = data.origin if hasattr(data, "origin") else origin_of(data, **place)
    return read if read.origin == origin else dataclasses.replace(read, origin=origin)


def cells_from_counts(
    successes: Sequence[int] | np.ndarray,
    trials: Sequence[int] | np.ndarray,
    names: Sequence[str] | None = None,
) -> Cells:
    """Build validated cells from per-variant count arrays.

    Examples
    --------
    >>> cells_from_counts([30, 50], [100, 100]).arms
    ('A', 'B')
    """
    successes = _count_array(successes, "successes")
    trials = _count_array(trials, "trials")
    if len(successes) != len(trials):
        raise InvalidArgumentError(
            f"successes has {len(successes)} values but trials has {len(trials)}; give one of each per variant"
        )
    if names is None:
        names = [_default_name(i) for i in range(len(trials))]
    if isinstance(names, str) or not all(isinstance(n, str | int | np.integer) for n in names):
        raise InvalidArgumentError(f"names must be a list of labels, one per variant, got {names!r}")
    names = [str(n) for n in names]
    if len(names) != len(trials):
        raise InvalidArgumentError(f"names has {len(names)} values but there are {len(trials)} variants")
    frame = pd.DataFrame({"variant": names, "trials": trials, "successes": successes})
    return load_cells(frame)


def _count_array(values: Any, name: str) -> list[int]:
    """A flat sequence of whole, non-negative counts up to ``MAX_COUNT``, as Python ints."""
    array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be a flat sequence of counts, one per variant, got an array of shape {array.shape}"
        )
    counts = []
    for value in array:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
            raise InvalidArgumentError(f"{name} must hold whole numbers, got {value!r}")
        count = int(value)
        if not 0 <= count <= MAX_COUNT:
            raise InvalidArgumentError(f"{name} must hold counts between 0 and 10^15, got {count}")
        counts.append(count)
    return counts


def _default_name(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


__all__ = [
    "ARM_NAMES",
    "MAX_COUNT",
    "OUTCOME_NAMES",
    "SEGMENT_SEPARATOR",
    "SERVER_WHERE",
    "SUCCESSES_NAMES",
    "TRIALS_NAMES",
    "Cells",
    "DataSource",
    "cells_from_counts",
    "check_where_applies",
    "load_cells",
    "read_cells",
    "read_moments",
]
