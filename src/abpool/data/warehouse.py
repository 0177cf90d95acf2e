"""Experiment data in PostgreSQL, or in any warehouse Ibis reaches, aggregated where it lives.

A database is never copied out: one ``GROUP BY`` runs inside it and only the
cells come back (a few rows per experiment), together with the count of rows
whose outcome is not 0/1, so validation costs no second pass unless a problem
was found. The query is an `Ibis <https://ibis-project.org>`_ expression,
which is why Ibis is the connector: the expression that runs on PostgreSQL
compiles to BigQuery, Snowflake, Databricks and every other dialect Ibis
knows (:func:`sufficient_statistics_sql`), so a team can run it in its own
warehouse, or hand abpool an Ibis table on that warehouse directly.

Sources
-------
* a PostgreSQL connection string, ``postgresql://user@host:5432/db``, with
  ``table`` (``events`` or ``schema.events``) or ``query`` (SQL the server
  runs). What the string leaves out comes from libpq's environment
  (``PGHOST``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE`` …) or
  ``~/.pgpass``. The password never appears in messages, results or reports:
  the source is shown as ``postgresql://user@host:5432/db``.
* an Ibis table expression on any backend, such as
  ``ibis.snowflake.connect(...).table("events")``.

Both need the ``postgres`` extra (``pip install 'abpool[postgres]'``: Ibis and
psycopg); nothing else in abpool imports them.

Examples
--------
>>> sql = sufficient_statistics_sql("events", experiment="test_id", arm="variant", outcome="converted",
...                                 dialect="bigquery")
>>> "GROUP BY" in sql and "`events`" in sql
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abpool.data.cells import Cells, Roles, _natural_key, _resolve, resolve_roles
from abpool.data.local import NamedFrame, _sorted_cells, read_local
from abpool.data.origin import Origin, is_database_url
from abpool.errors import InvalidArgumentError, InvalidDataError

# The columns of the sufficient-statistics table the aggregation returns, beside the key columns.
TRIALS, SUCCESSES, BAD = "trials", "successes", "bad_outcomes"
OUTCOME_TYPES = ("integer", "boolean", "float", "string")
_INSTALL = "pip install 'abpool[postgres]'"
_TRUE = ("1", "true", "1.0")
_FALSE = ("0", "false", "0.0")


def is_ibis_table(data: Any) -> bool:
    """Whether ``data`` is an Ibis table expression (checked without importing Ibis)."""
    return type(data).__module__.startswith("ibis.") and hasattr(data, "group_by") and hasattr(data, "schema")


def is_warehouse(data: Any) -> bool:
    """Whether ``data`` is read by this module (a connection string or an Ibis table) rather than by DuckDB."""
    return is_database_url(data) or is_ibis_table(data)


def _ibis() -> Any:
    try:
        import ibis
    except ImportError:
        raise InvalidArgumentError(f"reading a database needs Ibis and psycopg: {_INSTALL}") from None
    return ibis


def origin_of(data: Any, *, table: str | None = None, query: str | None = None, where: str | None = None) -> Origin:
    """The origin of data read from ``data`` (a path or connection string; anything else has no location).

    A file's path is made absolute, so that the reproduce command it becomes reads
    the same file from any directory.

    Examples
    --------
    >>> origin_of("postgresql://analyst:s3cret@db.example.com/shop", table="orders").location
    'postgresql://analyst@db.example.com/shop'
    >>> origin = origin_of("events.csv", where="day > 3")
    >>> origin.location == os.path.abspath("events.csv"), origin.where
    (True, 'day > 3')
    """
    location = None
    if is_database_url(data):
        location = shown_url(data)
    elif isinstance(data, Path) or (isinstance(data, str) and "://" not in data):
        location = os.path.abspath(data)
    elif isinstance(data, str):
        location = data
    return Origin(location, table, query, where)


def shown_url(url: str) -> str:
    """The connection string as abpool shows it: user, host, port and database, never the password.

    Examples
    --------
    >>> shown_url("postgresql://analyst:s3cret@db.example.com:5432/shop?sslmode=require")
    'postgresql://analyst@db.example.com:5432/shop'
    """
    parts = _conninfo(url)
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def _conninfo(url: str) -> dict[str, str]:
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise InvalidArgumentError(f"reading PostgreSQL needs psycopg: {_INSTALL}") from None
    try:
        return {key: str(value) for key, value in conninfo_to_dict(url.strip()).items()}
    except Exception:
        # The parser's message may quote the string, password included: it is not shown.
        raise InvalidArgumentError(
            "the PostgreSQL connection string cannot be parsed; write it as postgresql://USER@HOST:PORT/DATABASE "
            "and give the password in PGPASSWORD or ~/.pgpass"
        ) from None


def _first_line(exc: BaseException) -> str:
    """An error's first line, or its type's name when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def without_secrets(url: str, text: str) -> str:
    """``text`` with the connection's password (from the string or ``PGPASSWORD``) replaced by ``***``.

    Examples
    --------
    >>> without_secrets("postgresql://me:hunter2@db/shop", "login hunter2 refused")
    'login *** refused'
    """
    for secret in (_conninfo(url).get("password"), os.environ.get("PGPASSWORD")):
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class _Database:
    """An open source: its Ibis table, how messages name it, and the secrets they must never show."""

    table: Any
    name: str
    secrets: tuple[str, ...] = ()
    hint: str = "check the source"

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def run(self, expression: Any) -> pd.DataFrame:
        """Execute an Ibis expression in the database; a failure is one line, secrets removed."""
        try:
            return expression.to_pandas()
        except Exception as exc:  # each backend raises its own driver's errors
            detail = self.scrub(_first_line(exc))
            raise InvalidDataError(f"{self.name} cannot be read ({detail}); {self.hint}") from None


@contextlib.contextmanager
def _opened(data: Any, table: str | None, query: str | None) -> Iterator[_Database]:
    if is_ibis_table(data):
        if table is not None or query is not None:
            raise InvalidArgumentError(
                "table and query apply to a connection string; with an Ibis table, select or filter it with Ibis"
            )
        yield _Database(data, _ibis_name(data))
        return
    ibis = _ibis()
    import psycopg

    url = str(data).strip()
    shown = shown_url(url)
    if (table is None) == (query is None):
        raise InvalidArgumentError(
            f"{shown} is a database: name its table (--table NAME) or give a query (--query SQL), one of them"
        )
    secrets = tuple(s for s in (_conninfo(url).get("password"), os.environ.get("PGPASSWORD")) if s)
    name = f"{shown} ({f'table {table!r}' if table is not None else 'the query'})"
    database = _Database(None, name, secrets, "check the table's name" if table is not None else "check the SQL")
    try:
        # Read-only: a query given as the source cannot change the database, whatever it says.
        connection = psycopg.connect(url, connect_timeout=15, options="-c default_transaction_read_only=on")
    except psycopg.Error as exc:
        detail = database.scrub(" ".join(str(exc).split()))
        raise InvalidDataError(
            f"cannot connect to {shown} ({detail}); check the host, port, user and password "
            "(in the connection string, PGPASSWORD or ~/.pgpass)"
        ) from None
    try:
        backend = ibis.postgres.from_connection(connection)
        try:
            if table is not None:
                schema, _, bare = table.rpartition(".")
                database.table = backend.table(bare, database=schema or None)
            else:
                sql = str(query).strip().rstrip(";")
                # Given its schema, Ibis runs the query as a subquery instead of creating a view of it.
                database.table = backend.sql(sql, schema=_query_schema(connection, sql))
        except Exception as exc:
            detail = database.scrub(_first_line(exc))
            raise InvalidDataError(f"{name} cannot be read ({detail}); {database.hint}") from None
        yield database
    finally:
        connection.close()


def _query_schema(connection: Any, sql: str) -> Any:
    """The columns of a query and their types, asked of the server (the query runs with ``LIMIT 0``).

    Run as a subquery, a query of several statements is a syntax error rather than a way to run them.
    """
    ibis = _ibis()
    from ibis.backends.sql.datatypes import PostgresType

    cursor = connection.execute(f"SELECT * FROM ({sql}) AS abpool_query LIMIT 0")
    connection.rollback()
    schema = {}
    for column in cursor.description or []:
        info = connection.adapters.types.get(column.type_code)
        if info is None:
            dtype = ibis.dtype("string")
        elif info.array_oid == column.type_code:
            dtype = ibis.dtype("array<string>")
        else:
            try:
                dtype = PostgresType.from_string(info.name)
            except Exception:  # a type Ibis does not know (an enum, a domain): read as text
                dtype = ibis.dtype("string")
        schema[column.name] = dtype
    return ibis.schema(schema)


def _ibis_name(table: Any) -> str:
    try:
        return f"Ibis table {table.get_name()!r}"
    except Exception:  # an expression (a filter, a join) has no name of its own
        return "the Ibis table expression"


def _outcome_parts(table: Any, outcome: str) -> tuple[Any, Any]:
    """An outcome's 0/1 value per row and the condition that marks a row whose outcome is not 0/1 or true/false."""
    column = table[outcome]
    dtype = column.type()
    if dtype.is_boolean():
        return column.ifelse(1, 0), column.isnull()
    if dtype.is_integer():
        return column, column.isnull() | ~column.isin([0, 1])
    if dtype.is_floating() or dtype.is_decimal():
        return (column == 1).ifelse(1, 0), column.isnull() | ~column.isin([0, 1])
    if dtype.is_string():
        folded = column.strip().lower()
        return folded.isin(_TRUE).ifelse(1, 0), column.isnull() | ~folded.isin(_TRUE + _FALSE)
    raise InvalidDataError(f"outcome column {outcome!r} has type {dtype}; it must hold 0/1 or true/false")


def aggregation(table: Any, roles: Roles, keys: Sequence[str]) -> Any:
    """The Ibis expression that reduces ``table`` to its sufficient statistics, run where the table lives.

    Unit rows are grouped by ``keys`` (experiment, segments, arm) into
    ``trials``, ``successes`` and ``bad_outcomes`` (rows whose outcome is not
    0/1 or true/false). Keys are grouped on their own types, then labelled as
    text; labels that read alike are merged. Aggregated cells are selected as
    they are, keys as text, in key order.
    """
    taken = {TRIALS, SUCCESSES, BAD} & set(keys)
    if taken and roles.form == "units":
        raise InvalidArgumentError(
            f"column {sorted(taken)[0]!r} cannot be a key column: abpool names its counts so; rename it in a query"
        )
    labels = [table[k].cast("string").name(k) for k in keys]
    if roles.form == "cells":
        return table.select(*labels, table[roles.trials], table[roles.successes]).order_by(list(keys))
    value, bad = _outcome_parts(table, str(roles.outcome))
    grouped = table.group_by(list(keys)).aggregate(
        **{TRIALS: table.count(), SUCCESSES: value.sum(), BAD: table.count(where=bad)}
    )
    labelled = grouped.select(*[grouped[k].cast("string").name(k) for k in keys], TRIALS, SUCCESSES, BAD)
    return labelled.group_by(list(keys)).aggregate(**{name: labelled[name].sum() for name in (TRIALS, SUCCESSES, BAD)})


def sufficient_statistics_sql(
    table: str,
    *,
    arm: str,
    outcome: str,
    experiment: str | None = None,
    segment: str | Sequence[str] | None = None,
    outcome_type: str = "integer",
    dialect: str = "postgres",
) -> str:
    """The SQL that reduces a table of unit rows to abpool's sufficient-statistics table, in a warehouse's dialect.

    Run it where the data lives (or as a dbt model) and give abpool its result:
    one row per experiment × segment × arm with ``trials``, ``successes`` and
    ``bad_outcomes`` (rows whose outcome is not 0/1 or true/false, which
    should be 0).

    Parameters
    ----------
    table : str
        The table of unit rows (``schema.table`` is allowed).
    arm, outcome : str
        Its arm column and its 0/1 outcome column.
    experiment : str, optional
        Its experiment column, for many experiments at once.
    segment : str or sequence of str, optional
        Segment columns.
    outcome_type : {"integer", "boolean", "float", "string"}
        The outcome column's type in the warehouse (the 0/1 test depends on it).
    dialect : str
        Any SQL dialect Ibis compiles to: ``postgres``, ``bigquery``,
        ``snowflake``, ``databricks``, ``duckdb``, ``trino`` …

    Examples
    --------
    >>> print(sufficient_statistics_sql("events", arm="variant", outcome="converted", dialect="duckdb"))
    ... # doctest: +ELLIPSIS
    SELECT
      "t2"."variant",
      SUM("t2"."trials") AS "trials",
    ...
    """
    ibis = _ibis()
    if outcome_type not in OUTCOME_TYPES:
        raise InvalidArgumentError(
            f"the outcome type (--outcome-type) must be one of {', '.join(OUTCOME_TYPES)}, got {outcome_type!r}"
        )
    segments = [segment] if isinstance(segment, str) else list(segment or [])
    keys = ([experiment] if experiment else []) + segments + [arm]
    if len(set(keys)) < len(keys) or outcome in keys:
        raise InvalidArgumentError(f"each column may play one part, got keys {keys!r} and outcome {outcome!r}")
    types = {"integer": "int64", "boolean": "boolean", "float": "float64", "string": "string"}
    schema = {key: "string" for key in keys} | {outcome: types[outcome_type]}
    catalog, _, name = table.rpartition(".")
    unbound = ibis.table(schema, name=name, database=catalog or None)
    expression = aggregation(unbound, Roles(arm, tuple(segments), "units", outcome=outcome), keys)
    try:
        return str(ibis.to_sql(expression, dialect=dialect))
    except Exception as exc:  # an unknown dialect or one Ibis cannot compile this for
        raise InvalidArgumentError(
            f"cannot write the SQL in dialect {dialect!r} ({str(exc).strip().splitlines()[0]}); "
            "try postgres, bigquery, snowflake, databricks, duckdb or trino"
        ) from None


@dataclass(frozen=True)
class WarehouseCells:
    """A database's data reduced to cells in the database, for :func:`abpool.data.local.read_local` to check.

    Attributes
    ----------
    frame : NamedFrame
        The cells (aggregated unit rows, or the rows of an aggregated table),
        keys as text, named as the source; experiments refused are left out.
    roles : Roles
        The source's columns.
    experiment : str or None
        The experiment column, when many experiments are read.
    refused : dict
        Experiment name (``""`` without an experiment column) → its one-line reason.
    """

    frame: NamedFrame
    roles: Roles
    experiment: str | None = None
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def count_columns(self) -> dict[str, str]:
        """The count columns of :attr:`frame`, as ``trials``/``successes`` arguments."""
        if self.roles.form == "cells":
            return {"trials": str(self.roles.trials), "successes": str(self.roles.successes)}
        return {"trials": TRIALS, "successes": SUCCESSES}

    def finish(self, cells: Cells) -> Cells:
        """Cells read from :attr:`frame`, described as what the source held (unit rows: sorted, their outcome)."""
        if self.roles.form == "cells":
            return cells
        table = _sorted_cells(cells.table, cells.segment_columns)
        return dataclasses.replace(
            cells,
            table=table,
            form="units",
            outcome_column=self.roles.outcome,
            trials_column=None,
            successes_column=None,
            input_rows=int(table["trials"].sum()),
        )


def read_warehouse(
    data: Any,
    *,
    table: str | None = None,
    query: str | None = None,
    experiment: str | None = None,
    experiment_names: Sequence[str] = (),
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    segment: str | Sequence[str] | None = None,
) -> WarehouseCells:
    """Aggregate a database's rows to cells inside the database and find what is wrong with them.

    With ``experiment`` (or a column named as in ``experiment_names``), an
    experiment whose rows are at fault is refused with its reason and the
    others are kept; without, any fault is an error.
    """
    many = experiment is not None or bool(experiment_names)
    with _opened(data, table, query) as database:
        columns = [str(c) for c in database.table.columns]
        experiment_column = (
            _resolve(columns, experiment, experiment_names, "experiment", "--experiment", database.name)
            if many
            else None
        )
        roles = resolve_roles(
            [c for c in columns if c != experiment_column],
            database.name,
            arm=arm,
            outcome=outcome,
            trials=trials,
            successes=successes,
            segment=segment,
        )
        keys = ([experiment_column] if experiment_column else []) + [*roles.segments, roles.arm]
        frame = database.run(aggregation(database.table, roles, keys))
        if frame.empty:
            raise InvalidDataError(f"{database.name} has no data rows")
        refused: dict[str, str] = {}
        if experiment_column is not None and frame[experiment_column].isna().any():
            empty = frame[experiment_column].isna()
            rows = int(frame.loc[empty, TRIALS].sum()) if roles.form == "units" else int(empty.sum())
            raise InvalidDataError(
                f"experiment column {experiment_column!r} is empty in {rows:,} rows of {database.name}; "
                "every row needs its experiment"
            )
        if roles.form == "units":
            refused = _faults(database, roles, keys, experiment_column, frame)
            if experiment_column is not None:
                frame = frame[~frame[experiment_column].isin(list(refused))]
            frame = frame.drop(columns=BAD)
            frame[SUCCESSES] = frame[SUCCESSES].fillna(0)
        return WarehouseCells(
            NamedFrame(frame.reset_index(drop=True), database.name), roles, experiment_column, refused
        )


def _faults(
    database: _Database, roles: Roles, keys: list[str], experiment: str | None, frame: pd.DataFrame
) -> dict[str, str]:
    """Each experiment with an empty key or a bad outcome, and its reason (one more query per such experiment)."""
    refused: dict[str, str] = {}
    at_fault = frame[frame[keys].isna().any(axis=1) | (frame[BAD] > 0)]
    for _, line in at_fault.iterrows():
        name = "" if experiment is None else str(line[experiment])
        if name in refused:
            continue
        mine = frame if experiment is None else frame[frame[experiment] == line[experiment]]
        reason = _reason(database, roles, keys, experiment, name, mine)
        refused[name] = reason if experiment is None else f"experiment {name!r}: {reason}"
    return refused


def _reason(
    database: _Database, roles: Roles, keys: list[str], experiment: str | None, name: str, mine: pd.DataFrame
) -> str:
    for key in keys:
        empty = mine[key].isna()
        if key != experiment and empty.any():
            role = "arm" if key == roles.arm else "segment"
            return (
                f"{role} column {key!r} is empty in {int(mine.loc[empty, TRIALS].sum()):,} rows of {database.name}; "
                "fill it in or drop the rows"
            )
    table = database.table
    _, bad = _outcome_parts(table, str(roles.outcome))
    if experiment is not None:
        bad = bad & (table[experiment].cast("string") == name)
    example = database.run(table.filter(bad).select(table[str(roles.outcome)].cast("string").name("value")).limit(1))
    value = example["value"].iloc[0] if len(example) else None
    shown = "an empty value" if value is None or pd.isna(value) else repr(value)
    return (
        f"outcome column {roles.outcome!r} must be 0/1 or true/false, but {int(mine[BAD].sum()):,} rows of "
        f"{database.name} are not (one has {shown}); fix the values, or pass aggregated counts with "
        "--trials/--successes"
    )


def read_warehouse_cells(
    data: Any, *, table: str | None = None, query: str | None = None, control: str | None = None, **columns: Any
) -> Cells:
    """:func:`abpool.data.load_cells` of a database: aggregated inside it, then checked like any cells."""
    read = read_warehouse(data, table=table, query=query, **columns)
    if read.refused:
        raise InvalidDataError(next(iter(read.refused.values())))
    cells = read_local(
        read.frame,
        arm=read.roles.arm,
        segment=list(read.roles.segments) or None,
        control=control,
        **read.count_columns,
    )
    return read.finish(cells)


def binary_facts_in_database(
    data: Any, column: str, *, table: str | None, query: str | None
) -> tuple[str, list[str], str | None, int | None]:
    """What :func:`abpool.data.metrics.is_binary` needs of a database's column, asked of the database.

    The source's name, its columns, the column's kind (``"boolean"``, ``"numeric"``, another type's
    name, or None when there is no such column) and, for numbers, how many are neither 0 nor 1
    (one aggregate; NULLs not counted, as in the file path's ``NOT IN``).
    """
    with _opened(data, table, query) as database:
        source = database.table
        columns = [str(c) for c in source.columns]
        if column not in columns:
            return database.name, columns, None, None
        kind = source[column].type()
        if kind.is_boolean() or not kind.is_numeric():
            return database.name, columns, "boolean" if kind.is_boolean() else str(kind).lower(), None
        found = database.run(source.aggregate(others=source.count(where=source[column].notin([0, 1]))))
    return database.name, columns, "numeric", int(found["others"].iloc[0])


def experiment_names(
    data: Any, *, table: str | None, query: str | None, experiment: str | None, names: Sequence[str]
) -> tuple[list[str], str, str]:
    """The distinct experiments of a database's rows (as text, sorted as a file's are), the source's name
    and the experiment column.

    One ``SELECT DISTINCT`` in the database; an empty experiment makes the table unusable, as in a file.
    """
    with _opened(data, table, query) as database:
        return _experiment_names_in(database, experiment, names)


def _experiment_names_in(
    database: _Database, experiment: str | None, names: Sequence[str]
) -> tuple[list[str], str, str]:
    columns = [str(c) for c in database.table.columns]
    column = str(_resolve(columns, experiment, names, "experiment", "--experiment", database.name))
    found = database.run(database.table.select(e=database.table[column].cast("string")).distinct())
    values = found["e"].tolist()
    if not values:
        raise InvalidDataError(f"{database.name} has no data rows")
    if any(value is None or (isinstance(value, float) and math.isnan(value)) for value in values):
        raise InvalidDataError(
            f"experiment column {column!r} is empty in some rows of {database.name}; every row needs its experiment"
        )
    return sorted((str(value) for value in values), key=_natural_key), database.name, column


def read_warehouse_experiment_moments(
    data: Any,
    *,
    table: str | None,
    query: str | None,
    experiment: str | None,
    names: Sequence[str],
    arm: str | None,
    value: str | None,
    cap: float | None,
) -> tuple[list[tuple[str, Any, str | None]], str, str]:
    """Every experiment of a database's rows reduced to per-arm moments inside it, over one connection.

    Returns ``(name, moments, None)``, or ``(name, None, reason)`` for an
    experiment whose rows are at fault, for each experiment; the source's
    name; and the experiment column. Each experiment is its own ``GROUP BY``
    with its own cap (:func:`read_warehouse_moments` with ``experiment``).
    """
    with _opened(data, table, query) as database:
        found, source, column = _experiment_names_in(database, experiment, names)
        read: list[tuple[str, Any, str | None]] = []
        for name in found:
            try:
                moments = _moments_in(
                    database, arm=arm, value=value, segment=None, control=None, cap=cap, experiment=(column, name)
                )
                read.append((name, moments, None))
            except InvalidDataError as exc:
                read.append((name, None, str(exc)))
    return read, source, column


def read_warehouse_moments(
    data: Any,
    *,
    table: str | None = None,
    query: str | None = None,
    arm: str | None = None,
    value: str | None = None,
    segment: str | Sequence[str] | None = None,
    control: str | None = None,
    cap: float | None = None,
    experiment: tuple[str, str] | None = None,
) -> Any:
    """:func:`abpool.data.load_moments` of a database: unit values reduced to per-arm moments inside it.

    ``experiment``, a column and a name, keeps only that experiment's rows (compared as text,
    as :func:`experiment_names` lists them): one experiment of a batch, its cap its own.

    One ``GROUP BY`` returns each cell's ``n``, the sums of ``d = x − c`` and
    ``d²`` around a shift ``c`` (the median of up to a thousand values, asked
    first, as the file path does), the database's own ``var_samp`` and the count
    of NULL, NaN or infinite values. ``M2 = Σd² − (Σd)²/n`` keeps its digits
    when ``c`` is near the cell's values (values of ``1e6 + N(0, 30²)``: about
    1e-15, where ``var_samp`` loses three more); a cell far from ``c`` takes
    ``var_samp``. The sums are the database's plain sums, not compensated as
    DuckDB's are, so the moments agree with the file path's to about 1e-14,
    not to the last bit. ``cap`` is the database's ``percentile_cont`` over
    the whole experiment. Skewness is not computed in the database, so
    Cochran's rule is not applied (the small-sample rule is).
    """
    with _opened(data, table, query) as database:
        return _moments_in(
            database, arm=arm, value=value, segment=segment, control=control, cap=cap, experiment=experiment
        )


def _moments_in(
    database: _Database,
    *,
    arm: str | None,
    value: str | None,
    segment: str | Sequence[str] | None,
    control: str | None,
    cap: float | None,
    experiment: tuple[str, str] | None,
) -> Any:
    """:func:`read_warehouse_moments` of an opened database."""
    from abpool.data.cells import ARM_NAMES
    from abpool.data.moments import _SHIFT_CANCELLATION, _SHIFT_ROWS, VALUE_NAMES, load_moments

    ibis = _ibis()
    source = database.table
    columns = [str(c) for c in source.columns]
    if experiment is not None:
        column, name = experiment
        source = source.filter(source[column].cast("string") == name)
        columns.remove(column)
    arm_column = _resolve(columns, arm, ARM_NAMES, "arm", "--arm", database.name)
    value_column = _resolve(columns, value, VALUE_NAMES, "value", "--value", database.name)
    wanted = [segment] if isinstance(segment, str) else list(segment or [])
    segments = [str(_resolve(columns, name, (), "segment", "--segment", database.name)) for name in wanted]
    keys = [*segments, arm_column]
    if not source[value_column].type().is_numeric():
        raise InvalidDataError(
            f"value column {value_column!r} of {database.name} is {source[value_column].type()}, not numbers; "
            "a continuous metric needs one number per user"
        )
    values = source[value_column].cast("float64")
    bad = values.isnull() | values.isnan() | values.isinf()
    cap_value = None
    if cap is not None:
        found = database.run(source.aggregate(cap=values.quantile(cap, where=~bad)))
        cap_value = float(found["cap"].iloc[0])
    kept = values if cap_value is None else ibis.least(values, cap_value)
    sample = source.filter(~bad).select(v=values).limit(_SHIFT_ROWS)
    found = database.run(sample.aggregate(c=sample.v.median()))["c"].iloc[0]
    shift = 0.0 if pd.isna(found) else float(found)
    d = kept - shift
    grouped = source.group_by(keys).aggregate(
        n=source.count(where=~bad),
        s1=d.sum(where=~bad),
        s2=(d * d).sum(where=~bad),
        variance=kept.var(how="sample", where=~bad),
        bad=source.count(where=bad),
        capped=source.count(where=~bad & (values > (math.inf if cap_value is None else cap_value))),
    )
    statistics = [grouped[name] for name in ("n", "s1", "s2", "variance", "bad", "capped")]
    frame = database.run(grouped.select(*[grouped[k].cast("string").name(k) for k in keys], *statistics))
    if frame.empty:
        raise InvalidDataError(f"{database.name} has no data rows")
    faults = int(frame["bad"].sum())
    if faults:
        raise InvalidDataError(
            f"value column {value_column!r} has {faults:,} NULL, NaN or infinite values in {database.name}; "
            "filter them out in a --query, or fill them in"
        )
    # Sorted as the file path sorts the cells of unit rows: the same data give the same order wherever they live.
    ordered = _sorted_cells(frame.rename(columns={arm_column: "arm"}), segments).rename(columns={"arm": arm_column})
    n = ordered["n"].to_numpy(dtype=float)
    s1, s2 = ordered["s1"].to_numpy(dtype=float), ordered["s2"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = s2 - s1 * s1 / n
        m2 = np.where(shifted >= _SHIFT_CANCELLATION * s2, shifted, ordered["variance"].to_numpy(dtype=float) * (n - 1))
        statistics = ordered.assign(mean=shift + s1 / n, sd=np.sqrt(np.maximum(m2, 0.0) / (n - 1)))
    statistics = statistics.drop(columns=["s1", "s2", "variance", "bad"])
    read = load_moments(
        NamedFrame(statistics.drop(columns="capped"), database.name),
        arm=arm_column,
        segment=segments or None,
        n="n",
        mean="mean",
        sd="sd",
        control=control,
    )
    capped = None
    table = read.table
    if cap_value is not None:
        capped = {"quantile": cap, "value": cap_value, "scope": "experiment", "capped": int(frame["capped"].sum())}
        table = table.assign(capped=ordered["capped"].astype("int64").to_numpy())
    return dataclasses.replace(
        read,
        form="units",
        input_rows=int(frame["n"].sum()),
        value_column=value_column,
        statistics_columns=None,
        cap=capped,
        source=database.name,
        table=table,
    )
