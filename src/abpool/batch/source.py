"""A table of many experiments, read into one validated set of cells per experiment.

The table is any source :func:`abpool.data.load_cells` reads (unit rows or
aggregated cells) with one more column naming the experiment. Everything is
aggregated in one DuckDB pass; an experiment whose rows are at fault is
refused with its own one-line reason, naming the source's row, and the others
go on. Only a table that cannot be read at all (no such file, a missing
column, an empty experiment name) stops the batch.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"experiment": ["e1", "e1", "e2", "e2"], "arm": ["A", "B", "A", "A"],
...                       "trials": [100, 100, 50, 60], "successes": [10, 12, 5, 6]})
>>> found = read_experiments(table, experiment="experiment")
>>> [(e.name, e.cells is not None) for e in found.experiments]
[('e1', True), ('e2', False)]
>>> found.experiments[1].refused  # doctest: +ELLIPSIS
"experiment 'e2': cell 'A' appears in more than one row of DataFrame (rows 3, 4); ..."
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from abpool.data import Cells, DataSource, check_where_applies, read_cells
from abpool.data.cells import _natural_key, _resolve
from abpool.data.local import _fetchone, _literal, _open, _quote, both_conditions, connection, one_database
from abpool.data.warehouse import is_warehouse, origin_of, read_warehouse
from abpool.errors import InvalidArgumentError, InvalidDataError

EXPERIMENT_NAMES = ("experiment", "experiment_id", "test", "test_id")


@dataclass(frozen=True)
class Experiment:
    """One experiment of a batch: its validated cells, or why it was refused."""

    name: str
    # Cells of counts, or an ArmMoments of a continuous metric.
    cells: Cells | Any | None
    refused: str | None = None


@dataclass(frozen=True)
class ExperimentsRead:
    """Every experiment of a table, in sorted order, and where they came from."""

    experiments: list[Experiment]
    source: str
    experiment_column: str


def _experiment_names(
    data: DataSource, experiment: str | None, place: dict[str, str | None], where: str | None = None
) -> tuple[list[str], str, str]:
    """The distinct experiment names (sorted) of the rows meeting ``where``, the source's name and the column."""
    with connection(table=place["table"], query=place["query"], where=where) as source:
        name = _open(source, data)
        columns = [row[0] for row in source.execute("DESCRIBE abpool_scan").fetchall()]
        column = _resolve(columns, experiment, EXPERIMENT_NAMES, "experiment", "--experiment", name)
        col = _quote(column)
        values = [
            row[0] for row in source.execute(f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM abpool_scan").fetchall()
        ]
        if any(value is None for value in values):
            source.numbered()
            first = f"SELECT {_quote(source.row)} FROM abpool_src WHERE {col} IS NULL ORDER BY 1 LIMIT 1"
            raise InvalidDataError(
                f"experiment column {column!r} is empty at row {_fetchone(source, first)[0]} of {name}; every row "
                "needs its experiment"
            )
        names = [str(value) for value in values]
        if not names:
            source.check_has_rows(name)
        return sorted(names, key=_natural_key), name, column


# Every read of the batch connects to one DuckDB instance: a loop over experiments starts it once.
@one_database()
def read_experiments(
    data: DataSource,
    *,
    experiment: str | None = None,
    segment: str | Sequence[str] | None = None,
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> ExperimentsRead:
    """Read a table of experiments: one :class:`Experiment` per distinct value of the experiment column.

    Parameters
    ----------
    data : DataFrame or path
        Unit rows or aggregated cells, with an experiment column.
    experiment : str, optional
        The experiment column (default: ``experiment``, ``experiment_id``, ``test`` or ``test_id``).
    segment, arm, outcome, trials, successes, table, query
        As for :func:`abpool.data.load_cells`, the same for every experiment.
    where : str, optional
        Only the rows meeting this DuckDB SQL condition (files and DuckDB databases).

    Raises
    ------
    InvalidDataError
        When the table itself is unusable; an experiment's own fault refuses that experiment only.
    """
    if experiment is not None and not isinstance(experiment, str):
        raise InvalidArgumentError(f"experiment must be a column name (a string), got {experiment!r}")
    place: dict[str, str | None] = {"table": table, "query": query}
    columns: dict[str, Any] = {"arm": arm, "outcome": outcome, "trials": trials, "successes": successes, **place}
    check_where_applies(data, where)
    if is_warehouse(data):
        return _read_warehouse(data, experiment=experiment, segment=segment, **columns)
    names, source, column = _experiment_names(data, experiment, place, where)
    segments = [segment] if isinstance(segment, str) else list(segment or [])
    if column in segments:
        raise InvalidArgumentError(f"column {column!r} cannot be both the experiment and a segment")
    found: dict[str, Experiment] = {}

    def read(group: list[str]) -> None:
        # The whole group in one pass, the experiment as one more segment column; when some experiment of the
        # group is at fault, each half is read on its own: a few bad experiments cost a few passes, not one each.
        chosen = None
        if len(group) < len(names):
            chosen = f"CAST({_quote(column)} AS VARCHAR) IN ({', '.join(_literal(name) for name in group)})"
        try:
            together = read_cells(data, where=both_conditions(where, chosen), segment=[column, *segments], **columns)
        except InvalidDataError:
            if len(group) == 1:
                found[group[0]] = _alone(data, group[0], column, segments, columns, where)
            else:
                read(group[: len(group) // 2])
                read(group[len(group) // 2 :])
            return
        parts = _split(together, column, segments)
        for name in group:
            cells = parts.get(name)
            found[name] = Experiment(name, cells) if cells else _alone(data, name, column, segments, columns, where)

    read(names)
    return ExperimentsRead(
        _with_origins([found[name] for name in names], data, column, table=table, query=query, where=where),
        source,
        column,
    )


@one_database()
def read_moment_experiments(
    data: DataSource,
    *,
    experiment: str | None = None,
    value: str | None = None,
    arm: str | None = None,
    cap: float | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> ExperimentsRead:
    """Read a table of experiments with a continuous metric: per-arm moments of each experiment's unit values.

    Each experiment is read in a pass of its own, so that its cap (``cap``)
    is the quantile of its own values; one at fault is refused with its reason.
    ``where`` keeps only the rows meeting a DuckDB SQL condition.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"experiment": ["e1"] * 4 + ["e2"] * 2, "arm": ["A", "B"] * 3,
    ...                       "revenue": [1.0, 2.0, 3.0, 5.0, 1.0, 1.0]})
    >>> found = read_moment_experiments(table, value="revenue")
    >>> [(e.name, e.cells is not None) for e in found.experiments]
    [('e1', True), ('e2', False)]
    """
    from abpool.data.moments import load_moments

    check_where_applies(data, where)
    if is_warehouse(data):
        return _read_warehouse_moments(
            data, experiment=experiment, value=value, arm=arm, cap=cap, table=table, query=query
        )
    place: dict[str, str | None] = {"table": table, "query": query}
    names, source, column = _experiment_names(data, experiment, place, where)
    found = []
    for name in names:
        mine = _experiment_rows(column, name, where)
        try:
            moments = load_moments(data, where=mine, arm=arm, value=value, cap=cap, **place)
            found.append(Experiment(name, moments))
        except InvalidDataError as exc:
            found.append(Experiment(name, None, f"experiment {name!r}: {exc}"))
    return ExperimentsRead(_with_origins(found, data, column, table=table, query=query, where=where), source, column)


@one_database()
def read_metric_experiments(
    data: DataSource,
    *,
    experiment: str | None = None,
    metrics: Sequence[str],
    metric_column: str | None = None,
    value: str | None = None,
    arm: str | None = None,
    cap: float | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
) -> ExperimentsRead:
    """Read several metrics of every experiment (see :mod:`abpool.data.metrics`): one scorecard's data each.

    Each metric's model is chosen once for the whole table, so every
    experiment analyses it alike; each metric is then read as a batch of its
    own. An experiment is refused when any of its metrics is (the reason names
    the metric) or has no rows. ``where`` keeps only the rows meeting a DuckDB
    SQL condition, for every metric.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"experiment": ["e1"] * 4 + ["e2"] * 4, "arm": ["A", "B"] * 4,
    ...                       "converted": [0, 1, 1, 1, 0, 0, 1, 0],
    ...                       "revenue": [0.0, 9.0, 3.0, 5.0, 1.0, None, 2.0, 4.0]})
    >>> found = read_metric_experiments(table, metrics=["converted", "revenue"])
    >>> found.experiments[0].cells.names
    ['converted', 'revenue']
    >>> found.experiments[1].refused  # doctest: +ELLIPSIS
    "experiment 'e2', metric 'revenue': value column 'revenue' must hold a finite number per user, but row 6 of ..."
    """
    from abpool.data.metrics import MetricsData, is_binary, metric_places

    place: dict[str, str | None] = {"table": table, "query": query}
    places = metric_places(data, metrics, metric_column=metric_column, value=value, where=where, **place)
    check_where_applies(data, where)
    if is_warehouse(data):
        from abpool.data.warehouse import experiment_names

        names, source, column = experiment_names(data, experiment=experiment, names=EXPERIMENT_NAMES, **place)
    else:
        names, source, column = _experiment_names(data, experiment, place, where)
    per_metric: dict[str, dict[str, Experiment]] = {}
    for metric in places:
        rows = both_conditions(where, metric.where)
        if is_binary(data, metric.column, where=rows, role=metric.role, **place):
            read = read_experiments(data, experiment=column, arm=arm, outcome=metric.column, where=rows, **place)
        else:
            read = read_moment_experiments(
                data, experiment=column, value=metric.column, arm=arm, cap=cap, where=rows, **place
            )
        per_metric[metric.name] = {item.name: item for item in read.experiments}
    found = []
    for name in names:
        parts, refused = {}, None
        for metric, experiments in per_metric.items():
            item = experiments.get(name)
            if item is None:
                refused = f"experiment {name!r} has no rows of metric {metric!r}"
            elif item.cells is None:
                reason = str(item.refused).removeprefix(f"experiment {name!r}: ")
                refused = f"experiment {name!r}, metric {metric!r}: {reason}"
            else:
                parts[metric] = item.cells
            if refused is not None:
                break
        if refused is None:
            try:
                found.append(Experiment(name, MetricsData(parts)))
            except InvalidDataError as exc:
                found.append(Experiment(name, None, f"experiment {name!r}: {exc}"))
        else:
            found.append(Experiment(name, None, refused))
    return ExperimentsRead(found, source, column)


def _with_origins(
    experiments: list[Experiment],
    data: Any,
    column: str,
    *,
    table: str | None,
    query: str | None,
    where: str | None,
) -> list[Experiment]:
    """Each experiment's data with the origin that reads it alone: the batch's source, and its own rows.

    A batch reads many experiments in one pass; a command that refits one of them (its report's
    ``reproduce``) must read that experiment's rows and no other's.
    """
    base = origin_of(data, table=table, query=query)
    named = []
    for item in experiments:
        if item.cells is not None:
            origin = dataclasses.replace(base, where=_experiment_rows(column, item.name, where), experiment=item.name)
            item = dataclasses.replace(item, cells=dataclasses.replace(item.cells, origin=origin))
        named.append(item)
    return named


def _experiment_rows(column: str, name: str, where: str | None) -> str:
    """The SQL condition keeping one experiment's rows (and ``where``'s): the names compared as text."""
    return str(both_conditions(where, f"CAST({_quote(column)} AS VARCHAR) = {_literal(name)}"))


def _alone(
    data: DataSource,
    name: str,
    column: str,
    segments: list[str],
    columns: dict[str, Any],
    where: str | None = None,
) -> Experiment:
    """One experiment read on its own: its cells, or its one-line reason naming the source's row."""
    mine = _experiment_rows(column, name, where)
    try:
        return Experiment(name, read_cells(data, where=mine, segment=segments or None, **columns))
    except InvalidDataError as exc:
        return Experiment(name, None, f"experiment {name!r}: {exc}")


def _split(everything: Cells, column: str, segments: list[str]) -> dict[str, Cells | None]:
    """Each experiment's cells out of the whole table's, by name; None for one that needs reading alone (a single arm).

    Every other check (counts, labels, empty cells) already held for the whole table, so for each of its parts.
    One pass groups the rows: filtering the table once per experiment would cost as much as every fit's summary.
    """
    table = everything.table
    rest = table.drop(columns=column)
    parts: dict[str, Cells | None] = {}
    for name, positions in table.groupby(column, sort=False).indices.items():
        mine = rest.take(positions).reset_index(drop=True)
        if mine["arm"].nunique() < 2:
            parts[name] = None
            continue
        rows = int(mine["trials"].sum()) if everything.form == "units" else len(mine)
        parts[name] = dataclasses.replace(everything, table=mine, segment_columns=tuple(segments), input_rows=rows)
    return parts


def _read_warehouse_moments(
    data: Any,
    *,
    experiment: str | None,
    value: str | None,
    arm: str | None,
    cap: float | None,
    table: str | None,
    query: str | None,
) -> ExperimentsRead:
    """Every experiment of a database table, each reduced to per-arm moments inside the database by its own query.

    Each experiment is its own ``GROUP BY`` (and, with ``cap``, its own quantile), as each file experiment is
    its own pass; one at fault is refused with its reason.
    """
    from abpool.data.warehouse import read_warehouse_experiment_moments

    read, source, column = read_warehouse_experiment_moments(
        data, table=table, query=query, experiment=experiment, names=EXPERIMENT_NAMES, arm=arm, value=value, cap=cap
    )
    found = [
        Experiment(name, moments) if reason is None else Experiment(name, None, f"experiment {name!r}: {reason}")
        for name, moments, reason in read
    ]
    return ExperimentsRead(_with_origins(found, data, column, table=table, query=query, where=None), source, column)


def _read_warehouse(data: Any, *, experiment: str | None, **columns: Any) -> ExperimentsRead:
    """Every experiment of a database table: one ``GROUP BY`` inside the database, then the cells checked here."""
    read = read_warehouse(data, experiment=experiment, experiment_names=EXPERIMENT_NAMES, **columns)
    column = str(read.experiment)
    if column in read.roles.segments:
        raise InvalidArgumentError(f"column {column!r} cannot be both the experiment and a segment")
    refused = [Experiment(name, None, reason) for name, reason in read.refused.items()]
    found: list[Experiment] = []
    if len(read.frame.frame):
        local = read_experiments(
            read.frame,
            experiment=column,
            segment=list(read.roles.segments) or None,
            arm=read.roles.arm,
            **read.count_columns,
        )
        found = [dataclasses.replace(e, cells=read.finish(e.cells)) if e.cells else e for e in local.experiments]
        found = _with_origins(found, data, column, table=columns.get("table"), query=columns.get("query"), where=None)
    ordered = sorted(found + refused, key=lambda e: _natural_key(e.name))
    return ExperimentsRead(ordered, read.frame.name, column)
