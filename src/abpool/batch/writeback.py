"""The results table written back into the database the experiments came from (DuckDB or PostgreSQL).

Dashboards and dbt models then read abpool's results where they read the
data. The table is replaced in one transaction (readers see the old table or
the new one, never half of it), and only a table abpool wrote before, which
has an ``abpool_version`` column, is ever replaced: any other table of that
name is the user's, and is left alone with a one-line refusal.

Examples
--------
>>> import duckdb, tempfile, pandas as pd
>>> path = tempfile.mkdtemp() + "/shop.duckdb"
>>> duckdb.connect(path).execute("CREATE TABLE events AS SELECT 1 AS x").close()
>>> check_target(path, "abpool_results")
>>> write_results(path, "abpool_results", pd.DataFrame({"experiment": ["e1"], "abpool_version": ["0.1.0"]}))
"shop.duckdb table 'abpool_results'"
>>> write_results(path, "events", pd.DataFrame({"experiment": ["e1"], "abpool_version": ["0.1.0"]}))
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
abpool.errors.InvalidArgumentError: table 'events' in shop.duckdb is not one abpool wrote ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from abpool.data.local import _READERS
from abpool.data.warehouse import is_database_url, shown_url, without_secrets
from abpool.errors import InvalidArgumentError, InvalidDataError

MARKER = "abpool_version"


def _quoted(name: str) -> str:
    """A possibly schema-qualified table name, each part quoted."""
    parts = name.split(".")
    if not all(parts) or len(parts) > 2:
        raise InvalidArgumentError(f"--results-table must be NAME or SCHEMA.NAME, got {name!r}")
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def check_target(data: Any, name: str) -> None:
    """Refuse, before any fit, a results table the source cannot hold (a file) or must not replace (the user's)."""
    _quoted(name)
    if is_database_url(data):
        _refuse_foreign(name, shown_url(str(data)), _postgres_columns(str(data), name))
        return
    if isinstance(data, str | Path) and _READERS.get(Path(data).suffix.lower()) == "duckdb":
        import duckdb

        try:
            with duckdb.connect(str(data), read_only=True) as con:
                columns = _duckdb_columns(con, name)
        except duckdb.Error as exc:
            raise InvalidDataError(f"cannot open {data} ({str(exc).splitlines()[0]})") from None
        _refuse_foreign(name, Path(data).name, columns)
        return
    raise InvalidArgumentError(
        "--results-table writes into the source database (a DuckDB file or PostgreSQL); this source is not one: "
        "read results.parquet instead"
    )


def _duckdb_columns(con: Any, name: str) -> list[str]:
    schema, _, bare = name.rpartition(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = ?",
        [bare, schema or "main"],
    ).fetchall()
    return [row[0] for row in rows]


def _postgres_columns(url: str, name: str, con: Any = None) -> list[str]:
    import psycopg

    schema, _, bare = name.rpartition(".")
    sql = (
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = COALESCE(NULLIF(%s, ''), current_schema())"
    )
    if con is not None:
        return [row[0] for row in con.execute(sql, [bare, schema]).fetchall()]
    try:
        with psycopg.connect(url, connect_timeout=15) as fresh:
            return [row[0] for row in fresh.execute(sql, [bare, schema]).fetchall()]
    except psycopg.Error as exc:
        detail = without_secrets(url, " ".join(str(exc).split()))
        raise InvalidDataError(f"cannot connect to {shown_url(url)} ({detail})") from None


def write_results(data: Any, name: str, table: pd.DataFrame) -> str:
    """Replace (or create) the table ``name`` in the source database with ``table``; return where it went."""
    check_target(data, name)
    if is_database_url(data):
        return _write_postgres(str(data), name, table)
    return _write_duckdb(Path(data), name, table)


def _write_duckdb(path: Path, name: str, table: pd.DataFrame) -> str:
    import duckdb

    shown = f"{path.name} table {name!r}"
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise InvalidDataError(f"cannot open {path} to write the results ({str(exc).splitlines()[0]})") from None
    try:
        _refuse_foreign(name, path.name, _duckdb_columns(con, name))
        con.register("abpool_results_frame", table)
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE {_quoted(name)} AS SELECT * FROM abpool_results_frame")
        con.execute("COMMIT")
    finally:
        con.close()
    return shown


def _refuse_foreign(name: str, where: str, columns: list[str]) -> None:
    if columns and MARKER not in columns:
        raise InvalidArgumentError(
            f"table {name!r} in {where} is not one abpool wrote (it has no {MARKER} column); "
            "choose another --results-table"
        )


_POSTGRES_TYPES = {"integer": "BIGINT", "floating": "DOUBLE PRECISION", "boolean": "BOOLEAN"}


def _write_postgres(url: str, name: str, table: pd.DataFrame) -> str:
    import psycopg

    shown = f"{shown_url(url)} table {name!r}"
    types = {
        column: _POSTGRES_TYPES.get(pd.api.types.infer_dtype(table[column], skipna=True), "TEXT")
        for column in table.columns
    }
    try:
        with psycopg.connect(url, connect_timeout=15) as con, con.transaction():
            _refuse_foreign(name, shown_url(url), _postgres_columns(url, name, con))
            target = _quoted(name)
            con.execute(f"DROP TABLE IF EXISTS {target}")
            declared = ", ".join(f"{_quoted(column)} {kind}" for column, kind in types.items())
            con.execute(f"CREATE TABLE {target} ({declared})")
            with con.cursor().copy(f"COPY {target} FROM STDIN") as copy:
                for row in table.itertuples(index=False):
                    copy.write_row(
                        [_plain(value, types[column]) for value, column in zip(row, table.columns, strict=True)]
                    )
    except psycopg.Error as exc:
        detail = without_secrets(url, " ".join(str(exc).split()))
        raise InvalidDataError(f"cannot write the results to {shown} ({detail})") from None
    return shown


def _plain(value: Any, kind: str) -> Any:
    """A cell as COPY takes it: None for missing, Python scalars, text for anything in a TEXT column."""
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if kind == "TEXT":
        return str(value)
    return value.item() if hasattr(value, "item") else value
