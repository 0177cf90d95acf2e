"""Files, DataFrames and DuckDB databases read and aggregated to cells inside DuckDB.

A file (CSV, TSV, Parquet, JSON, or a glob of many) or a DuckDB database is
read lazily as a view and unit rows are aggregated in one streaming pass, with
the validation counted in the same query; only when a row must be named is the
source read again with row numbers. Every problem is one
:class:`~abpool.errors.InvalidDataError` line naming the column, row and value.

Examples
--------
>>> import pandas as pd
>>> units = pd.DataFrame({"arm": ["A", "A", "B"], "converted": [1, 0, 1]})
>>> read_local(units).table.to_dict("list")
{'arm': ['A', 'B'], 'trials': [2, 1], 'successes': [1, 1]}
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from abpool.data.cells import MAX_COUNT, Cells, _natural_key, resolve_roles
from abpool.errors import InvalidArgumentError, InvalidDataError


@dataclass(frozen=True)
class NamedFrame:
    """A DataFrame read on behalf of another source (a database's rows), named as that source in messages.

    Attributes
    ----------
    frame : pandas.DataFrame
    name : str
        How messages name the source, e.g. ``postgresql://me@db/shop table 'events'``.
    """

    frame: pd.DataFrame
    name: str


LocalSource = pd.DataFrame | str | Path | NamedFrame

# The row-number column abpool adds to the source; renamed when the data already has a column so named.
_ROW = "__abpool_row"
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
                if self._condition_fails():
                    raise InvalidDataError(self._condition_failure(first_line)) from None
                raise InvalidDataError(self.failure.format(detail=first_line)) from None
            raise

    def _condition_fails(self) -> bool:
        """Whether the source reads whole but not through the user's condition (a cast of text to a number, say).

        Only asked after an error, so the two scans it may cost are never paid by good input.
        """
        if self.where == "TRUE":
            return False
        try:
            self.con.execute("SELECT count(*) FROM abpool_all").fetchall()
        except duckdb.Error:
            return False
        try:
            self.con.execute("SELECT count(*) FROM abpool_scan").fetchall()
        except duckdb.Error:
            return True
        return False

    def _condition_failure(self, detail: str) -> str:
        return f"the condition {self.where!r} (where) cannot be applied: {detail}; check it"

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
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0].replace(*shown)
            raise InvalidDataError(failure.format(detail=first_line)) from None
        try:
            self.con.execute(f"CREATE TEMP VIEW abpool_scan AS SELECT * FROM abpool_all WHERE {self.where}")
        except duckdb.Error as exc:
            # The source reads; the condition the user gave does not apply to it.
            first_line = str(exc).strip().splitlines()[0].replace(*shown)
            raise InvalidDataError(self._condition_failure(first_line)) from None

    def check_has_rows(self, name: str) -> None:
        """Refuse a source with no rows, or none meeting the condition, in one line naming which."""
        # LIMIT 1 stops the scan at the first row: no full pass just to know the source is not empty.
        if _fetchone(self, "SELECT 1 FROM abpool_scan LIMIT 1") is not None:
            return
        if self.where != "TRUE":
            raise InvalidDataError(f"no row of {name} meets the condition {self.where!r} (where); check it")
        raise InvalidDataError(f"{name} has a header but no data rows")

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


def _open(con: _Source, data: LocalSource) -> str:
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
    if isinstance(data, NamedFrame):
        con.con.register("abpool_frame", data.frame)
        con.define("SELECT * FROM abpool_frame", f"{_braces(data.name)} cannot be read ({{detail}})")
        return data.name
    if not isinstance(data, str | Path):
        raise InvalidArgumentError(
            "data must be a pandas DataFrame or a path to a CSV, Parquet, JSON or DuckDB file, "
            f"got {type(data).__name__}"
        )
    path = Path(data)
    if not path.exists() and _GLOB & set(str(path)):
        return _open_pattern(con, str(data))
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


def _open_pattern(con: _Source, pattern: str) -> str:
    """Every file a glob pattern matches (``data/*.parquet``, ``day=*/part-*.parquet``) read as one table.

    Files are read in sorted order of name and matched by column name, so a
    column added in later files is empty (NULL) in earlier ones.
    """
    files = sorted(name for name in glob.glob(pattern, recursive=True) if Path(name).is_file())
    if not files:
        raise InvalidDataError(f"{pattern}: no file matches the pattern")
    kinds = {_READERS.get(Path(name).suffix.lower()) for name in files}
    if len(kinds) > 1 or None in kinds or "duckdb" in kinds:
        shown = ", ".join(sorted({Path(name).suffix or "(none)" for name in files}))
        raise InvalidDataError(
            f"{pattern} matches files of several or unknown types ({shown}); match only .csv, .parquet or .json files"
        )
    if con.table is not None or con.query is not None:
        raise InvalidArgumentError(f"table and query apply to a DuckDB database file (.duckdb), not to {pattern}")
    empty = next((name for name in files if Path(name).stat().st_size == 0), None)
    if empty is not None:
        raise InvalidDataError(f"{empty} (matched by {pattern}): the file is empty")
    kind = kinds.pop()
    reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json_auto"}[kind]
    options = ", header = true, union_by_name = true" if kind == "csv" else ""
    if kind == "parquet":
        options = ", union_by_name = true"
    listed = "[" + ", ".join(_literal(name) for name in files) + "]"
    shown = f"{pattern} ({len(files):,} files)"
    con.define(
        f"SELECT * FROM {reader}({listed}{options})",
        f"{_braces(shown)}: cannot be read as {kind.upper()} ({{detail}})",
    )
    return shown


_ATTACHED = itertools.count()


def _detach(con: duckdb.DuckDBPyConnection, alias: str) -> None:
    with contextlib.suppress(duckdb.Error):
        con.execute("USE memory")
        con.execute(f"DETACH {alias}")


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
    # Attached databases belong to a DuckDB instance, not to one connection (see one_database): each read
    # attaches the file under a name of its own, and detaches it when done.
    alias = f"abpool_db_{next(_ATTACHED)}"
    try:
        con.con.execute(f"ATTACH {_literal(readable)} AS {alias} (READ_ONLY)")
        con.stack.callback(_detach, con.con, alias)
        # Unqualified names in the user's query are the database's tables.
        con.con.execute(f"USE {alias}")
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
    # Inner names that no column of the user's takes (a segment may well be called "bad").
    n, y, bad_count = (_private_name(con, stem) for stem in ("n", "y", "bad"))
    qn, qy, qbad = _quote(n), _quote(y), _quote(bad_count)
    table = con.execute(
        f"SELECT {selected}, sum({qn}) AS trials, sum({qy}) AS successes, sum({qbad}) AS {qbad} "
        f"FROM (SELECT {native}, count(*) AS {qn}, sum({value}) AS {qy}, {flag} AS {qbad} "
        f"FROM abpool_scan GROUP BY {native}) GROUP BY {labels}"
    ).df()
    if table[keys].isna().any(axis=None) or (table[bad_count] > 0).any():
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
    return table.drop(columns=bad_count)


def _private_name(con: _Source, stem: str) -> str:
    """A column name for abpool's own SQL that none of the source's columns has."""
    taken = set(_column_types(con))
    name = f"__abpool_{stem}"
    while name in taken:
        name += "_"
    return name


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


def read_local(
    data: LocalSource,
    *,
    where: str | None = None,
    table: str | None = None,
    query: str | None = None,
    **columns: Any,
) -> Cells:
    """:func:`abpool.data.load_cells` of a file, DataFrame or DuckDB database, for the rows meeting ``where``.

    ``where`` is a DuckDB SQL condition (all rows by default). Row numbers in
    messages still count rows of the whole source: this is how a batch reads
    one experiment of a table (:mod:`abpool.batch`).
    """
    with connection(where=where, table=table, query=query) as source:
        return _load(source, data, **columns)


def both_conditions(first: str | None, second: str | None) -> str | None:
    """Two SQL conditions joined by AND; either may be None (no condition).

    Examples
    --------
    >>> both_conditions("country = 'DE'", "day > 3")
    "(country = 'DE') AND (day > 3)"
    >>> both_conditions(None, "day > 3")
    'day > 3'
    >>> both_conditions("day > 3 -- the last week", "arm <> 'C'")
    "(day > 3 -- the last week\\n) AND (arm <> 'C')"
    """
    if first is None or second is None:
        return second if first is None else first
    return f"({_line_closed(first)}) AND ({_line_closed(second)})"


def _line_closed(condition: str) -> str:
    """``condition`` ended by a new line when it may end in a comment (``-- …``), which would swallow what follows."""
    return condition + "\n" if "--" in condition else condition


_SHARED = threading.local()


@contextlib.contextmanager
def one_database() -> Iterator[None]:
    """Let every read inside this block (in this thread) connect to one DuckDB instance, closed at its end.

    Starting an instance costs about 15 ms (its catalog of functions), a
    connection to a running one 0.1 ms: a loop reading many small tables (the
    experiments of a database, one by one) pays the start once. Each read
    still has its own connection, whose views, tables and registered frames
    go with it. Outside such a block every read starts and closes its own
    instance, so no DuckDB threads outlive a read (a fork copies none).

    Examples
    --------
    >>> import pandas as pd
    >>> from abpool.data import load_cells
    >>> frame = pd.DataFrame({"arm": ["A", "B"], "trials": [10, 10], "successes": [1, 2]})
    >>> with one_database():
    ...     sizes = [len(load_cells(frame).table) for _ in range(3)]
    >>> sizes
    [2, 2, 2]
    """
    if getattr(_SHARED, "database", None) is not None:
        yield
        return
    database = duckdb.connect()
    _SHARED.database = database
    try:
        yield
    finally:
        _SHARED.database = None
        database.close()


def _new_connection() -> duckdb.DuckDBPyConnection:
    """A connection of its own to the instance of :func:`one_database`, or to a new instance outside one."""
    database = getattr(_SHARED, "database", None)
    return duckdb.connect() if database is None else database.cursor()


@contextlib.contextmanager
def connection(*, where: str | None = None, table: str | None = None, query: str | None = None) -> Iterator[_Source]:
    """A private DuckDB connection for reading one source (see :class:`_Source`), closed on exit."""
    con = _new_connection()
    # DuckDB draws a progress bar on standard output during long scans: it would corrupt --json output.
    con.execute("SET enable_progress_bar = false")
    source = _Source(con)
    source.where = "TRUE" if where is None else where
    source.table, source.query = table, query
    try:
        yield source
    finally:
        source.stack.close()
        con.close()


def _load(con, data, *, arm=None, outcome=None, trials=None, successes=None, segment=None, control=None) -> Cells:
    source = _open(con, data)
    columns = [c for c in _column_types(con) if c != con.row]
    if not columns:
        raise InvalidDataError(f"{source} has no columns")
    con.check_has_rows(source)

    roles = resolve_roles(
        columns, source, arm=arm, outcome=outcome, trials=trials, successes=successes, segment=segment
    )
    arm_col, segment_cols = roles.arm, list(roles.segments)
    trials_col, successes_col = roles.trials, roles.successes
    outcome_col = None
    if roles.form == "cells":
        form: Literal["units", "cells"] = "cells"
        # Aggregated cells are few: copied with row numbers, every check can name its row.
        con.numbered()
        n_rows = int(_fetchone(con, "SELECT count(*) FROM abpool_src")[0])
        for col in [arm_col, *segment_cols]:
            _check_not_null(con, col, "segment" if col in segment_cols else "arm", source)
        table = _aggregated_cells(con, arm_col, segment_cols, trials_col, successes_col, source)
    else:
        outcome_col = roles.outcome
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
    check_labels_and_arms(table, segment_cols, arm_col, source, control)
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


def _sorted_cells(table: pd.DataFrame, segments: Sequence[str]) -> pd.DataFrame:
    """Cells in sorted order of segment, then arm (digits compared as numbers)."""
    keys = [*segments, "arm"]
    order = sorted(range(len(table)), key=lambda i: tuple(_natural_key(table[k].iat[i]) for k in keys))
    return table.iloc[order].reset_index(drop=True)


def check_labels_and_arms(
    table: pd.DataFrame, segment_cols: Sequence[str], arm_col: str, source: str, control: str | None
) -> None:
    """The checks every per-cell table passes: distinct labels, two arms at least, the control among them."""
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
