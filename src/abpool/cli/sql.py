"""``abpool sql``: the query that reduces unit rows to abpool's sufficient statistics, for a warehouse to run."""

from __future__ import annotations

from typing import Annotated

import typer

from abpool.cli._app import ArmOpt, SegmentOpt, app, fail
from abpool.errors import AbpoolError

DialectArg = Annotated[
    str,
    typer.Argument(
        metavar="DIALECT",
        help="The warehouse's SQL dialect: bigquery, snowflake, databricks, postgres, duckdb, trino, redshift …",
        show_default=False,
    ),
]


@app.command()
def sql(
    dialect: DialectArg,
    table: Annotated[str, typer.Option("--table", metavar="NAME", help="The table of unit rows (schema.table).")],
    outcome: Annotated[str, typer.Option("--outcome", metavar="COLUMN", help="Its 0/1 outcome column.")],
    arm: ArmOpt = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", metavar="COLUMN", help="Its experiment column, for many at once.")
    ] = None,
    segment: SegmentOpt = None,
    outcome_type: Annotated[
        str,
        typer.Option(
            "--outcome-type", metavar="TYPE", help="The outcome's type there: integer, boolean, float, string."
        ),
    ] = "integer",
) -> None:
    """Print the SQL that turns unit rows into the sufficient-statistics table abpool reads.

    Run it in the warehouse (or as a dbt model) and give its result to abpool
    batch. Example: abpool sql bigquery --table analytics.events --experiment test_id --arm variant --outcome converted
    """
    from abpool.data.warehouse import sufficient_statistics_sql

    try:
        text = sufficient_statistics_sql(
            table,
            arm=arm or "variant",
            outcome=outcome,
            experiment=experiment,
            segment=segment,
            outcome_type=outcome_type,
            dialect=dialect,
        )
    except AbpoolError as exc:
        fail(exc)
    print(text.rstrip() + ";")
