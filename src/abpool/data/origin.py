"""Where a result's data was read from, precisely enough to read it again: the reproduce command's source.

A source's display name (``shop.duckdb (table 'orders')``) is for people; an
:class:`Origin` keeps the parts a command line needs: the file or connection
string as given (never a password), the database table or query, the SQL
condition that chose the rows, and the experiment they belong to when a batch
read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class Origin:
    """How to read a result's data again.

    Attributes
    ----------
    location : str or None
        The file, glob pattern, DuckDB database or connection string (without its password); None for a
        DataFrame or an Ibis table, which no command line can name.
    table, query : str or None
        The database table, or the query run there.
    where : str or None
        The SQL condition that kept the rows (one experiment of a batch, one metric of a long table).
    experiment : str or None
        The experiment the rows belong to, when a batch read them.
    """

    location: str | None = None
    table: str | None = None
    query: str | None = None
    where: str | None = None
    experiment: str | None = None

    def command_source(self) -> list[str]:
        """The source's part of a command line: the location, then ``--table``/``--query`` and ``--where``.

        A database server takes no ``--where`` (it filters where the data lives), so there the condition
        becomes part of the query it runs.

        Examples
        --------
        >>> Origin("shop.duckdb", table="orders", where="country = 'DE'").command_source()
        ['shop.duckdb', '--table', 'orders', '--where', "country = 'DE'"]
        >>> Origin("postgresql://analyst@db/shop", table="analytics.orders", where="x = 1").command_source()
        ['postgresql://analyst@db/shop', '--query', 'SELECT * FROM "analytics"."orders" WHERE x = 1']
        """
        parts = [self.location or "DATA"]
        if self.where is not None and is_database_url(self.location):
            if self.table is not None:
                # A schema-qualified table (analytics.events) is quoted part by part, as the server names it.
                rows = ".".join('"' + part.replace('"', '""') + '"' for part in self.table.split("."))
            else:
                rows = f"({self.query}) AS abpool_rows"
            return [*parts, "--query", f"SELECT * FROM {rows} WHERE {self.where}"]
        if self.table is not None:
            parts += ["--table", self.table]
        if self.query is not None:
            parts += ["--query", self.query]
        if self.where is not None:
            parts += ["--where", self.where]
        return parts

    def to_record(self) -> dict[str, str | None]:
        """The origin as JSON-ready data (read back by :meth:`from_record`)."""
        return {
            "location": self.location,
            "table": self.table,
            "query": self.query,
            "where": self.where,
            "experiment": self.experiment,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Origin | None:
        """An origin from :meth:`to_record`'s data; None for data saved without one."""
        if not record:
            return None
        return cls(**{key: record.get(key) for key in ("location", "table", "query", "where", "experiment")})


def is_database_url(data: Any) -> bool:
    """Whether ``data`` is a PostgreSQL connection string.

    Examples
    --------
    >>> is_database_url("postgresql://me@db.example.com/shop"), is_database_url("events.csv")
    (True, False)
    """
    return isinstance(data, str) and data.strip().lower().startswith(POSTGRES_SCHEMES)
