"""Several metrics of one experiment: which rows and column hold each, which model it needs, and their data.

A metric is a column of unit values (the wide layout: one column per metric)
or the rows of a long table whose metric column names it (``metric_column``,
their values in ``value``). A column holding only 0/1 or true/false is a
conversion, read as counts (:class:`~abpool.data.Cells`) for the variants
model; any other numeric column is a continuous metric, read as per-arm
moments (:class:`~abpool.data.moments.ArmMoments`) for the means model.
:class:`MetricsData` holds one experiment's metrics together, with one
fingerprint over all of them.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"arm": ["A", "A", "B", "B"], "converted": [0, 1, 1, 1],
...                      "revenue": [0.0, 9.5, 4.0, 12.0]})
>>> data = read_metrics(rows, ["converted", "revenue"])
>>> {name: data.kind(name) for name in data.names}
{'converted': 'binary', 'revenue': 'mean'}
>>> data.arms
('A', 'B')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from abpool import _format as fmt
from abpool.data import Cells, DataSource, check_where_applies, read_cells, read_moments
from abpool.data.moments import ArmMoments
from abpool.data.warehouse import is_warehouse
from abpool.errors import InvalidArgumentError, InvalidDataError

BINARY, MEAN = "binary", "mean"


@dataclass(frozen=True)
class MetricPlace:
    """Where one metric's values are: a column, and a DuckDB SQL condition on the rows (None: every row)."""

    name: str
    column: str
    where: str | None = None

    @property
    def role(self) -> str:
        """How messages name the column: ``metric`` (its own column) or ``value`` (a long table's)."""
        return "metric" if self.where is None else "value"


@dataclass(frozen=True)
class MetricsData:
    """One experiment's metrics, each as its model reads it, in the order given.

    Attributes
    ----------
    metrics : dict of str to Cells or ArmMoments
        Counts of a conversion, or per-arm moments of a continuous metric.
    """

    metrics: dict[str, Cells | ArmMoments]

    def __post_init__(self) -> None:
        arms = {name: tuple(sorted(data.arms)) for name, data in self.metrics.items()}
        if len(set(arms.values())) > 1:
            raise InvalidDataError(
                "the metrics do not cover the same arms ("
                + "; ".join(f"{name}: {', '.join(a)}" for name, a in arms.items())
                + "); every metric needs a value for every arm"
            )

    @property
    def names(self) -> list[str]:
        """The metrics' names, in order."""
        return list(self.metrics)

    @property
    def arms(self) -> tuple[str, ...]:
        """The arms, as the first metric has them."""
        return next(iter(self.metrics.values())).arms

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """None: a scorecard compares arms on the whole experiment."""
        return ()

    def kind(self, name: str) -> str:
        """``binary`` (counts, the variants model) or ``mean`` (moments, the means model)."""
        return MEAN if isinstance(self.metrics[name], ArmMoments) else BINARY

    @property
    def fingerprint(self) -> str:
        """SHA-256 over every metric's name and data fingerprint: any change to any metric changes it."""
        payload = json.dumps([[name, data.fingerprint] for name, data in self.metrics.items()])
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_record(self) -> dict[str, Any]:
        """JSON-ready data, read back by :meth:`from_record`.

        Examples
        --------
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"arm": ["A", "A", "B", "B"], "converted": [0, 1, 1, 1], "spend": [0, 2.5, 1, 4]})
        >>> data = read_metrics(rows, ["converted", "spend"])
        >>> MetricsData.from_record(data.to_record()).fingerprint == data.fingerprint
        True
        """
        return {"kind": "metrics", "metrics": [[name, data.to_record()] for name, data in self.metrics.items()]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MetricsData:
        """Metrics rebuilt from :meth:`to_record`'s data."""
        return cls(
            {
                str(name): (ArmMoments if data.get("kind") == "moments" else Cells).from_record(data)
                for name, data in record["metrics"]
            }
        )


def metric_places(
    data: DataSource,
    metrics: Sequence[str],
    *,
    metric_column: str | None = None,
    value: str | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> list[MetricPlace]:
    """Where each metric's values are: its own column, or a long table's rows with its name.

    ``where`` (the rows to read, a DuckDB SQL condition) is where a long table's metrics are looked for;
    it is not part of the places, which the reader combines with it.

    Raises
    ------
    InvalidArgumentError
        For an empty or repeated list of metrics, or ``value`` without ``metric_column``.
    InvalidDataError
        For a long table's missing column, or a metric with no rows (listing the metrics it has).
    """
    names = _metric_names(metrics)
    if is_warehouse(data) and metric_column is not None:
        raise InvalidArgumentError(
            "a long table's metrics (metric_column) are read from files, DataFrames and DuckDB databases; from a "
            "database server, give each metric its own column (one row per user), or analyse each metric with "
            "abpool variants or abpool means and a query choosing its rows"
        )
    if value is not None and metric_column is None:
        raise InvalidArgumentError("value names the value column of a long table; give metric_column too")
    if metric_column is None:
        return [MetricPlace(name, name) for name in names]
    return [_long_form(data, metric_column, value, name, table=table, query=query, where=where) for name in names]


def _metric_names(metrics: Sequence[str]) -> list[str]:
    names = [str(name) for name in metrics] if not isinstance(metrics, str) else []
    if not names:
        raise InvalidArgumentError(f"metrics must be a list of one or more column names, got {metrics!r}")
    if len(set(names)) < len(names):
        raise InvalidArgumentError(f"metrics must name each column once, got {', '.join(names)}")
    return names


def is_binary(
    data: DataSource,
    column: str,
    *,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
    role: str = "metric",
) -> bool:
    """Whether ``column`` holds only 0/1 or true/false (a conversion), asked of DuckDB in one aggregate.

    ``where`` keeps only the rows meeting a DuckDB SQL condition (one metric of a long table); ``role``
    names the column in messages.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"converted": [0, 1, 1], "orders": [0, 2, 1]})
    >>> is_binary(rows, "converted"), is_binary(rows, "orders")
    (True, False)
    """
    check_where_applies(data, where)
    if is_warehouse(data):
        from abpool.data.warehouse import binary_facts_in_database

        source, columns, kind, others = binary_facts_in_database(data, column, table=table, query=query)
    else:
        source, columns, kind, others = _binary_facts(data, column, table=table, query=query, where=where)
    if kind is None:
        raise InvalidDataError(f"{role} column {column!r} not found in {source}; columns are: {', '.join(columns)}")
    if kind == "boolean":
        return True
    if kind != "numeric":
        raise InvalidDataError(
            f"{role} column {column!r} of {source} is {kind}, not numbers; a metric is a 0/1 outcome "
            "or a numeric value per user"
        )
    return others == 0


def _binary_facts(
    data: DataSource, column: str, *, table: str | None, query: str | None, where: str | None
) -> tuple[str, list[str], str | None, int | None]:
    """:func:`abpool.data.warehouse.binary_facts_in_database` of a file, DataFrame or DuckDB database."""
    from abpool.data.local import _column_types, _fetchone, _is_numeric, _open, _quote, connection

    with connection(table=table, query=query, where=where) as con:
        source = _open(con, data)
        types = _column_types(con.con)
        columns = [name for name in types if name != con.row]
        if column not in types:
            return source, columns, None, None
        kind = types[column]
        if kind == "BOOLEAN" or not _is_numeric(kind):
            return source, columns, "boolean" if kind == "BOOLEAN" else kind.lower(), None
        (others,) = _fetchone(con, f"SELECT count(*) FROM abpool_scan WHERE {_quote(column)} NOT IN (0, 1)")
        return source, columns, "numeric", int(others)


def read_metrics(
    data: DataSource,
    metrics: Sequence[str],
    *,
    metric_column: str | None = None,
    value: str | None = None,
    arm: str | None = None,
    control: str | None = None,
    cap: float | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> MetricsData:
    """Read several metrics of one experiment, each for its model (see the module's description).

    ``cap`` winsorises continuous metrics at that quantile; conversions are not capped. ``where`` keeps
    only the rows meeting a DuckDB SQL condition, for every metric.
    """
    from abpool.data.local import both_conditions

    found: dict[str, Cells | ArmMoments] = {}
    source = {"table": table, "query": query}
    for place in metric_places(data, metrics, metric_column=metric_column, value=value, where=where, **source):
        rows = both_conditions(where, place.where)
        if is_binary(data, place.column, where=rows, role=place.role, **source):
            found[place.name] = read_cells(data, arm=arm, outcome=place.column, control=control, where=rows, **source)
        else:
            found[place.name] = read_moments(
                data, arm=arm, value=place.column, control=control, cap=cap, where=rows, **source
            )
    return MetricsData(found)


def _long_form(
    data: DataSource,
    metric_column: str,
    value: str | None,
    name: str,
    *,
    table: str | None,
    query: str | None,
    where: str | None = None,
) -> MetricPlace:
    """The value column and the SQL condition that select one metric's rows of a long table (among ``where``'s)."""
    from abpool.data.cells import _resolve
    from abpool.data.local import _column_types, _fetchone, _literal, _open, _quote, connection
    from abpool.data.moments import VALUE_NAMES

    with connection(table=table, query=query, where=where) as con:
        shown = _open(con, data)
        columns = [c for c in _column_types(con.con) if c != con.row]
        metric_column = str(_resolve(columns, metric_column, (), "metric", "--metric-column", shown))
        column = str(_resolve(columns, value, VALUE_NAMES, "value", "--value", shown))
        where = f"CAST({_quote(metric_column)} AS VARCHAR) = {_literal(name)}"
        if _fetchone(con, f"SELECT 1 FROM abpool_scan WHERE {where} LIMIT 1") is None:
            found = [
                str(row[0])
                for row in con.execute(
                    f"SELECT DISTINCT CAST({_quote(metric_column)} AS VARCHAR) FROM abpool_scan ORDER BY 1 LIMIT 21"
                ).fetchall()
            ]
            raise InvalidDataError(
                f"metric {name!r} has no rows in column {metric_column!r} of {shown}; its metrics are: "
                f"{fmt.names_list([repr(m) for m in found], 20)}"
            )
    return MetricPlace(name, column, where)


__all__ = ["BINARY", "MEAN", "MetricPlace", "MetricsData", "is_binary", "metric_places", "read_metrics"]
