"""Reading, validating and aggregating experiment data with DuckDB.

Two long forms are accepted, auto-detected from the column names:

* **unit rows** — one row per user: an arm column, optional segment columns and
  a binary outcome (0/1 or true/false);
* **aggregated cells** — one row per (segment, arm): an arm column, optional
  segment columns, ``trials`` and ``successes``.

Files (CSV, TSV, Parquet, JSON) are read and aggregated by DuckDB in SQL, so a
file of ten million unit rows becomes a handful of cells without passing
through pandas. Every problem is reported as one :class:`InvalidDataError`
line naming the column, row and value at fault.

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

import contextlib
import difflib
import hashlib
import json
import numbers
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import duckdb
import numpy as np
import pandas as pd

from abpool.errors import InvalidArgumentError, InvalidDataError

ARM_NAMES = ("variant", "arm", "group", "treated", "treatment")
TRIALS_NAMES = ("trials", "n", "users", "visitors")
SUCCESSES_NAMES = ("successes", "conversions", "converted_users")
OUTCOME_NAMES = ("outcome", "success", "converted", "conversion")

# The row-number column abpool adds to the source; renamed when the data already has a column so named.
_ROW = "__abpool_row"
# Counts beyond this are refused: float64 represents every integer up to 2^53 ≈ 9.0e15 exactly, and
# the engines, the tests and the sums over cells stay exact below it.
MAX_COUNT = 10**15
# Joins the values of several segment columns into one label, for display.
SEGMENT_SEPARATOR = " / "
_DIGITS = re.compile(r"(\d+)")
# Characters that DuckDB's file readers take as a glob pattern.
_GLOB = set("*?[]{}")
_READERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".duckdb": "duckdb",
    ".ddb": "duckdb",
}

DataSource = Union[pd.DataFrame, str, Path, "Cells"]


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
        columns = list(self.segment_columns)
        if not columns:
            return [""] * len(self.table)
        keys = list(self.table[columns].astype(str).itertuples(index=False, name=None))
        plain = [SEGMENT_SEPARATOR.join(key) for key in keys]
        if len(set(plain)) == len(set(keys)):
            return plain
        return [SEGMENT_SEPARATOR.join(repr(value) for value in key) for key in keys]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the aggregated cells: equal for unit rows and cells that agree."""
        canonical = self.table.sort_values(list(self.table.columns[:-2])).to_dict("split")["data"]
        payload = json.dumps({"columns": list(self.table.columns), "data": canonical}, default=int)
        return hashlib.sha256(payload.encode()).hexdigest()

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
            "cells": len(self.table),
            "fingerprint": self.fingerprint,
        }


class _Source:
    """A DuckDB connection reading the source as the view ``abpool_scan``.

    Unit rows are aggregated straight from the view in one streaming pass.
    Only when a row must be named — a bad value was counted, or the source is
    aggregated cells, which are few — is the source copied into the table
    ``abpool_src`` with a 1-based row number (:meth:`numbered`).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.row = _ROW
        self.stack = contextlib.ExitStack()
        self.failure = "the source cannot be read ({detail})"
        self.shown: tuple[str, str] = ("", "")
        # Rows outside this SQL condition are not part of the data (one experiment of a batch, say).
        self.where = "TRUE"
        # In a DuckDB database file: the table to read, or the query whose rows are the data.
        self.table: str | None = None
        self.query: str | None = None
        self._numbered = False

    def execute(self, sql: str) -> duckdb.DuckDBPyConnection:
        try:
            return self.con.execute(sql)
        except duckdb.Error as exc:
            # A view reads the source lazily: a malformed file surfaces at the first query that scans it.
            if isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException | duckdb.IOException):
                first_line = str(exc).strip().splitlines()[0].replace(*self.shown)
                raise InvalidDataError(self.failure.format(detail=first_line)) from None
            raise

    def define(self, body: str, failure: str, shown: tuple[str, str] = ("", "")) -> None:
        """Make the rows of the SQL ``body`` the views ``abpool_all`` and ``abpool_scan`` (read lazily).

        ``failure`` is the one-line message of any error reading them, with
        ``{detail}`` for DuckDB's own first line; ``shown`` replaces a stand-in
        file name in that line with the user's.
        """
        self.failure, self.shown = failure, shown
        try:
            columns = [row[0] for row in self.con.execute(f"DESCRIBE {body}").fetchall()]
            self.choose_row_column(columns)
            self.con.execute(f"CREATE TEMP VIEW abpool_all AS {body}")
            self.con.execute(f"CREATE TEMP VIEW abpool_scan AS SELECT * FROM abpool_all WHERE {self.where}")
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0].replace(*shown)
            raise InvalidDataError(failure.format(detail=first_line)) from None

    def numbered(self) -> None:
        """Copy the source into ``abpool_src`` with its row numbers (once)."""
        if not self._numbered:
            # Numbered before the condition applies: a row number always counts rows of the whole source.
            self.execute(
                f"CREATE TEMP TABLE abpool_src AS SELECT * FROM (SELECT *, row_number() OVER () AS "
                f"{_quote(self.row)} FROM abpool_all) WHERE {self.where}"
            )
            self._numbered = True

    def choose_row_column(self, columns: Sequence[str]) -> str:
        """A row-number column name that is none of the user's columns."""
        taken = set(columns)
        name = _ROW
        while name in taken:
            name += "_"
        self.row = name
        return name


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _open(con: _Source, data: DataSource) -> str:
    """Make the source readable as the view ``abpool_scan`` (nothing is copied); return its name.

    A file name is a file name: characters that DuckDB would read as a glob
    pattern (``exp[1].csv``, ``star*.csv``) are read literally.
    """
    if isinstance(data, pd.DataFrame):
        if data.columns.duplicated().any():
            dup = data.columns[data.columns.duplicated()][0]
            raise InvalidDataError(f"column {dup!r} appears more than once in the DataFrame; rename it")
        frame = data.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        con.con.register("abpool_frame", frame)
        con.define(
            "SELECT * FROM abpool_frame", "the DataFrame cannot be read ({detail}); give each column a single type"
        )
        return "DataFrame"
    if not isinstance(data, str | Path):
        raise InvalidArgumentError(
            "data must be a pandas DataFrame or a path to a CSV, Parquet, JSON or DuckDB file, "
            f"got {type(data).__name__}"
        )
    path = Path(data)
    if not path.exists():
        raise InvalidDataError(f"{path}: no such file")
    if path.is_dir():
        raise InvalidDataError(f"{path}: is a directory, not a data file")
    if path.stat().st_size == 0:
        raise InvalidDataError(f"{path}: the file is empty")
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidDataError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .parquet, .json or .duckdb")
    if (con.table is not None or con.query is not None) and kind != "duckdb":
        raise InvalidArgumentError(f"table and query apply to a DuckDB database file (.duckdb), not to {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InvalidDataError(f"{path}: cannot be read ({exc.strerror})") from None
    if kind == "duckdb":
        return _open_database(con, path)
    reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json_auto"}[kind]
    options = ", header = true" if kind == "csv" else ""
    # The view reads the file at every query: a link standing in for the name lives as long as the connection.
    readable = con.stack.enter_context(_literal_path(path))
    con.define(
        f"SELECT * FROM {reader}({_literal(readable)}{options})",
        f"{_braces(path)}: cannot be read as {kind.upper()} ({{detail}})",
        (str(readable), str(path)),
    )
    return str(path)


def _open_database(con: _Source, path: Path) -> str:
    """A table of a DuckDB database file, or a query over it, as the view ``abpool_scan``; opened read-only."""
    if (con.table is None) == (con.query is None):
        raise InvalidArgumentError(
            f"{path} is a DuckDB database: name its table (--table NAME) or give a query (--query SQL), one of them"
        )
    readable = con.stack.enter_context(_literal_path(path))
    name = f"{path} ({f'table {con.table!r}' if con.table is not None else 'the query'})"
    hint = "check the table's name" if con.table is not None else "check the SQL"
    failure = f"{_braces(name)} cannot be read ({{detail}}); {hint}"
    try:
        con.con.execute(f"ATTACH {_literal(readable)} AS abpool_db (READ_ONLY)")
        # Unqualified names in the user's query are the database's tables.
        con.con.execute("USE abpool_db")
    except duckdb.Error as exc:
        raise InvalidDataError(failure.format(detail=str(exc).strip().splitlines()[0])) from None
    body = f"SELECT * FROM {_quote(con.table)}" if con.table is not None else str(con.query).strip().rstrip(";")
    con.define(body, failure, (str(readable), str(path)))
    return name


def _braces(text: Any) -> str:
    """``text`` made safe inside a ``str.format`` template (a file may be named ``{x}.csv``)."""
    return str(text).replace("{", "{{").replace("}", "}}")


@contextlib.contextmanager
def _literal_path(path: Path) -> Iterator[Path]:
    """``path`` under a name DuckDB cannot take for a glob pattern (a link in a private directory when needed)."""
    if not (_GLOB & set(str(path))):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="abpool-") as directory:
        link = Path(directory) / f"data{path.suffix.lower()}"
        link.symlink_to(path.resolve())
        yield link


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
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidDataError(
            f"{role} column {wanted!r} (given by {flag}) not found in {source}{hint} Columns are: {', '.join(columns)}"
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


def _fetchone(con: duckdb.DuckDBPyConnection, sql: str) -> tuple | None:
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else None


def _first_bad(con: duckdb.DuckDBPyConnection, condition: str, column: str) -> tuple[int, Any] | None:
    """Return (row, value) of the first source row matching ``condition``, if any."""
    row = _fetchone(
        con,
        f"SELECT {_quote(con.row)}, CAST({_quote(column)} AS VARCHAR) FROM abpool_src "
        f"WHERE {condition} ORDER BY {_quote(con.row)} LIMIT 1",
    )
    return None if row is None else (int(row[0]), row[1])


def _check_not_null(con, column: str, role: str, source: str) -> None:
    col = _quote(column)
    bad = _first_bad(con, f"{col} IS NULL", column)
    if bad is not None:
        raise InvalidDataError(
            f"{role} column {column!r} is empty at row {bad[0]} of {source}; fill it in or drop the row"
        )


def _column_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {row[0]: str(row[1]).upper() for row in con.execute("DESCRIBE abpool_scan").fetchall()}


_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "REAL",
)


_INTEGER = _NUMERIC[:9]


def _is_numeric(dtype: str) -> bool:
    return dtype.startswith(_NUMERIC) or dtype.startswith("DECIMAL")


def _outcome_expressions(con, outcome: str) -> tuple[str, str, str]:
    """SQL for an outcome: its 0/1 value per row, a per-group aggregate that is positive when some row of the
    group is not 0/1 or true/false, and the condition that picks such a row."""
    dtype = _column_types(con)[outcome]
    col = _quote(outcome)
    if dtype == "BOOLEAN":
        return f"CAST({col} AS INTEGER)", f"count(*) - count({col})", f"{col} IS NULL"
    if dtype.startswith(_INTEGER):
        # min and max stream as cheaply as the sum: a group holds only 0 and 1 when they stay within [0, 1].
        flag = f"count(*) - count({col}) + CASE WHEN min({col}) < 0 OR max({col}) > 1 THEN 1 ELSE 0 END"
        return col, flag, f"{col} IS NULL OR {col} NOT IN (0, 1)"
    if _is_numeric(dtype):
        number = f"CAST({col} AS DOUBLE)"
        invalid = f"{col} IS NULL OR {number} NOT IN (0, 1) OR isnan({number})"
        # Compared, never cast to an integer: a value such as 1e30 must be counted as bad, not overflow.
        return f"CASE WHEN {number} = 1 THEN 1 ELSE 0 END", f"count(*) FILTER (WHERE {invalid})", invalid
    if dtype == "VARCHAR":
        norm = f"lower(trim({col}))"
        invalid = f"{col} IS NULL OR {norm} NOT IN ('0', '1', 'true', 'false', '0.0', '1.0')"
        return (
            f"CASE WHEN {norm} IN ('1', 'true', '1.0') THEN 1 ELSE 0 END",
            f"count(*) FILTER (WHERE {invalid})",
            invalid,
        )
    raise InvalidDataError(f"outcome column {outcome!r} has type {dtype}; it must hold 0/1 or true/false")


def _aggregate_units(con, arm: str, segments: Sequence[str], outcome: str, source: str) -> pd.DataFrame:
    """Unit rows to cells in one streaming pass over the source, the validation counted in the same query.

    Only when that pass finds a problem (an empty arm or segment, an outcome
    that is not 0/1) is the source read again, with row numbers, to name the
    first row at fault.
    """
    value, flag, invalid = _outcome_expressions(con, outcome)
    keys = [*segments, arm]
    native = ", ".join(_quote(k) for k in keys)
    labels = ", ".join(f"CAST({_quote(k)} AS VARCHAR)" for k in keys)
    selected = ", ".join(f"CAST({_quote(k)} AS VARCHAR) AS {_quote(k)}" for k in keys)
    # Grouped on the columns' own types (no text per row), then labelled; the outer GROUP BY merges any two
    # values that print alike, so a label is never listed twice. Sums stay wide here: a bad value must be
    # reported as such, not overflow a cast.
    table = con.execute(
        f"SELECT {selected}, sum(trials) AS trials, sum(successes) AS successes, sum(bad) AS bad FROM ("
        f"SELECT {native}, count(*) AS trials, sum({value}) AS successes, {flag} AS bad "
        f"FROM abpool_scan GROUP BY {native}) GROUP BY {labels}"
    ).df()
    if table[keys].isna().any(axis=None) or (table["bad"] > 0).any():
        con.numbered()
        for col in keys:
            _check_not_null(con, col, "segment" if col in segments else "arm", source)
        bad = _first_bad(con, invalid, outcome)
        if bad is not None:
            shown = "an empty value" if bad[1] is None else repr(bad[1])
            raise InvalidDataError(
                f"outcome column {outcome!r} must be 0/1 or true/false, but row {bad[0]} of {source} has "
                f"{shown}; fix the value, or pass aggregated counts with --trials/--successes"
            )
    table["successes"] = table["successes"].fillna(0)
    return table.drop(columns="bad")


def _check_count_column(con, column: str, role: str, source: str) -> None:
    dtype = _column_types(con)[column]
    col = _quote(column)
    if not _is_numeric(dtype):
        bad = _first_bad(con, f"{col} IS NOT NULL AND TRY_CAST({col} AS DOUBLE) IS NULL", column)
        if bad is not None:
            raise InvalidDataError(
                f"{role} column {column!r} must hold whole numbers, but row {bad[0]} of {source} has {bad[1]!r}"
            )
    num = f"TRY_CAST({col} AS DOUBLE)"
    bad = _first_bad(con, f"{col} IS NULL OR isnan({num})", column)
    if bad is not None:
        raise InvalidDataError(
            f"{role} column {column!r} is empty or NaN at row {bad[0]} of {source}; every cell needs a count"
        )
    bad = _first_bad(con, f"{num} < 0", column)
    if bad is not None:
        raise InvalidDataError(f"{role} column {column!r} has a negative count {bad[1]} at row {bad[0]} of {source}")
    bad = _first_bad(con, f"isinf({num}) OR {num} <> floor({num})", column)
    if bad is not None:
        raise InvalidDataError(
            f"{role} column {column!r} must hold whole numbers, but row {bad[0]} of {source} has {bad[1]}"
        )
    bad = _first_bad(con, f"{num} > {MAX_COUNT}", column)
    if bad is not None:
        raise InvalidDataError(
            f"{role} column {column!r} has {bad[1]} at row {bad[0]} of {source}, beyond the largest count abpool "
            f"analyses exactly (10^15 per cell); check the value"
        )


def _aggregated_cells(con, arm: str, segments: Sequence[str], trials: str, successes: str, source: str) -> pd.DataFrame:
    _check_count_column(con, trials, "trials", source)
    _check_count_column(con, successes, "successes", source)
    t, s = _quote(trials), _quote(successes)
    row = _fetchone(
        con,
        f"SELECT {_quote(con.row)}, {s}, {t} FROM abpool_src WHERE CAST({s} AS DOUBLE) > CAST({t} AS DOUBLE) "
        f"ORDER BY {_quote(con.row)} LIMIT 1",
    )
    if row is not None:
        raise InvalidDataError(
            f"row {row[0]} of {source} has more successes ({row[1]}) than trials ({row[2]}); "
            f"check the {successes!r} and {trials!r} columns"
        )
    keys = [*segments, arm]
    key_sql = ", ".join(f"CAST({_quote(k)} AS VARCHAR)" for k in keys)
    dup = _fetchone(
        con,
        f"SELECT {key_sql}, list({_quote(con.row)} ORDER BY {_quote(con.row)}) AS rows FROM abpool_src "
        f"GROUP BY {key_sql} HAVING count(*) > 1 ORDER BY min({_quote(con.row)}) LIMIT 1",
    )
    if dup is not None:
        label = " / ".join(str(v) for v in dup[:-1])
        rows = ", ".join(str(r) for r in dup[-1][:5])
        raise InvalidDataError(
            f"cell {label!r} appears in more than one row of {source} (rows {rows}); "
            "give each cell once (sum the counts) or pass unit rows instead"
        )
    selected = ", ".join(f"CAST({_quote(k)} AS VARCHAR) AS {_quote(k)}" for k in keys)
    return con.execute(
        f"SELECT {selected}, CAST({t} AS BIGINT) AS trials, CAST({s} AS BIGINT) AS successes "
        f"FROM abpool_src ORDER BY {_quote(con.row)}"
    ).df()


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
    data : pandas.DataFrame, path or Cells
        A DataFrame, or a ``.csv``/``.tsv``/``.parquet``/``.json`` file; a
        :class:`Cells` (already read and validated) passes through.
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
        With a DuckDB database file (``.duckdb``): the table to read, or a SQL
        query over its tables whose rows are the data (one of the two). The
        database is opened read-only and the aggregation runs inside DuckDB.

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
        # Already read and validated (a simulation, a batch): only the requested roles are checked.
        wanted = [segment] if isinstance(segment, str) else list(segment or [])
        if wanted and wanted != list(data.segment_columns):
            raise InvalidArgumentError(f"segment must be {list(data.segment_columns)} for these cells, got {wanted!r}")
        if control is not None and str(control) not in data.arms:
            listed = ", ".join(repr(a) for a in data.arms[:20])
            raise InvalidDataError(f"control arm {str(control)!r} is not in these cells; arms are: {listed}")
        return data
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


def read_cells(
    data: DataSource, *, where: str | None = None, table: str | None = None, query: str | None = None, **columns: Any
) -> Cells:
    """:func:`load_cells` of the rows of ``data`` that meet the SQL condition ``where`` (all rows by default).

    Row numbers in messages still count rows of the whole source. This is how
    a batch reads one experiment of a table (:mod:`abpool.batch`).
    """
    with connection(where=where, table=table, query=query) as source:
        return _load(source, data, **columns)


@contextlib.contextmanager
def connection(*, where: str | None = None, table: str | None = None, query: str | None = None) -> Iterator[_Source]:
    """A private DuckDB connection for reading one source (see :class:`_Source`), closed on exit."""
    # DuckDB draws a progress bar on standard output during long scans: it would corrupt --json output.
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    source = _Source(con)
    source.where = "TRUE" if where is None else where
    source.table, source.query = table, query
    try:
        yield source
    finally:
        con.close()
        source.stack.close()


def _load(con, data, *, arm=None, outcome=None, trials=None, successes=None, segment=None, control=None) -> Cells:
    source = _open(con, data)
    columns = [c for c in _column_types(con) if c != con.row]
    if not columns:
        raise InvalidDataError(f"{source} has no columns")
    # LIMIT 1 stops the scan at the first row: no full pass just to know the source is not empty.
    if _fetchone(con, "SELECT 1 FROM abpool_scan LIMIT 1") is None:
        raise InvalidDataError(f"{source} has a header but no data rows")

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
    outcome_col = None
    if trials_col is not None and successes_col is not None:
        form: Literal["units", "cells"] = "cells"
        # Aggregated cells are few: copied with row numbers, every check can name its row.
        con.numbered()
        n_rows = int(_fetchone(con, "SELECT count(*) FROM abpool_src")[0])
        for col in [arm_col, *segment_cols]:
            _check_not_null(con, col, "segment" if col in segment_cols else "arm", source)
        table = _aggregated_cells(con, arm_col, segment_cols, trials_col, successes_col, source)
    else:
        outcome_col = _resolve(
            columns, outcome, OUTCOME_NAMES, "outcome", "--outcome", source, required=outcome is not None
        )
        if outcome_col is None:
            raise InvalidDataError(
                f"cannot tell the outcome in {source}: pass --outcome COL for unit rows (0/1 per user) "
                f"or --trials COL --successes COL for aggregated counts; columns are: {', '.join(columns)}"
            )
        form = "units"
        table = _aggregate_units(con, arm_col, segment_cols, outcome_col, source)
        n_rows = int(table["trials"].sum())

    table = table.rename(columns={arm_col: "arm"})
    if form == "units":
        # The order of users in a file means nothing: their cells come in sorted order, whatever the row order.
        table = _sorted_cells(table, segment_cols)
    table["trials"] = table["trials"].astype(np.int64)
    table["successes"] = table["successes"].astype(np.int64)
    for col in [*segment_cols, "arm"]:
        table[col] = table[col].astype(object).map(str)
    zero = table.index[table["trials"] == 0]
    if len(zero):
        label = " / ".join(str(v) for v in table.loc[zero[0], [*segment_cols, "arm"]])
        raise InvalidDataError(f"cell {label!r} has 0 trials in {source}; remove it or add its data")
    for col in [*segment_cols, "arm"]:
        _check_distinct_labels(table[col], arm_col if col == "arm" else col, source)
    arms = tuple(dict.fromkeys(table["arm"]))
    if len(arms) < 2:
        raise InvalidDataError(
            f"column {arm_col!r} in {source} has only one arm ({arms[0]!r}); "
            "an experiment needs at least two arms to compare"
        )
    if control is not None and str(control) not in arms:
        listed = ", ".join(repr(a) for a in arms[:20])
        raise InvalidDataError(f"control arm {str(control)!r} is not in column {arm_col!r}; arms are: {listed}")
    return Cells(
        table=table.reset_index(drop=True),
        segment_columns=tuple(segment_cols),
        arm_column=arm_col,
        form=form,
        source=source,
        input_rows=n_rows,
        outcome_column=outcome_col,
        trials_column=trials_col if form == "cells" else None,
        successes_column=successes_col if form == "cells" else None,
    )


def _natural_key(label: Any) -> tuple:
    """Sort key that orders ``B2`` before ``B10`` (digits compare as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(str(label)) if part)


def _sorted_cells(table: pd.DataFrame, segments: Sequence[str]) -> pd.DataFrame:
    """Cells in sorted order of segment, then arm (digits compared as numbers)."""
    keys = [*segments, "arm"]
    order = sorted(range(len(table)), key=lambda i: tuple(_natural_key(table[k].iat[i]) for k in keys))
    return table.iloc[order].reset_index(drop=True)


def _check_distinct_labels(labels: pd.Series, column: str, source: str) -> None:
    """Refuse labels that differ only by surrounding spaces or by case: they look like one arm (or segment)."""
    distinct = pd.Series(pd.unique(labels))
    folded = distinct.str.strip().str.casefold()
    clashing = folded[folded.duplicated(keep=False)]
    if len(clashing):
        group = distinct[folded == clashing.iloc[0]].tolist()
        raise InvalidDataError(
            f"column {column!r} in {source} has labels that differ only by spaces or case: "
            f"{', '.join(repr(label) for label in group)}; make them identical, or clearly different"
        )


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
