"""``abpool metrics``: several metrics of one experiment, a primary that decides and guardrails that may hold it."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer
from rich.text import Text

from abpool.cli._app import (
    AllowOpt,
    ArmOpt,
    CiOpt,
    ControlOpt,
    Data,
    JsonOpt,
    OutOpt,
    QueryOpt,
    SeedOpt,
    SplitOpt,
    TableOpt,
    WhereOpt,
    WideOpt,
    app,
    fail,
    parse_split,
    stderr,
    stdout,
)
from abpool.errors import AbpoolError

MetricOpt = Annotated[
    list[str],
    typer.Option(
        "--metric",
        metavar="COLUMN",
        help="A metric column; repeat it. 0/1 columns are conversions, other numbers continuous metrics. "
        "The first is the primary unless --primary names another.",
    ),
]
MetricColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--metric-column",
        metavar="COLUMN",
        help="A long table: the column naming each row's metric (--metric then names metrics, not columns).",
    ),
]
ValueOpt = Annotated[
    str | None,
    typer.Option("--value", metavar="COLUMN", help="The value column of a long table [value/metric/revenue/amount]."),
]
PrimaryOpt = Annotated[str | None, typer.Option("--primary", metavar="COLUMN", help="The metric that decides.")]
MarginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--margin",
        metavar="COLUMN=VALUE",
        help="A guardrail's margin in its own units (0.005 = 0.5 pp for a rate) [its threshold of caring].",
    ),
]
LowerOpt = Annotated[
    list[str] | None,
    typer.Option("--lower-is-better", metavar="COLUMN", help="A guardrail whose increase is the harm (latency…)."),
]
LevelOpt = Annotated[
    float,
    typer.Option("--level", metavar="P", help="Flag a guardrail when P(worse by more than its margin) exceeds this."),
]
CapOpt = Annotated[
    float | None,
    typer.Option("--cap", metavar="QUANTILE", help="Winsorise continuous metrics above this quantile, e.g. 0.99."),
]


def margins_option(items: list[str] | None) -> dict[str, float]:
    """``--margin COLUMN=VALUE`` options as a mapping; a malformed one is a one-line error."""
    margins = {}
    for item in items or []:
        name, equals, value = item.rpartition("=")
        try:
            margins[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not equals or not name.strip():
            raise AbpoolError(f"--margin must be COLUMN=VALUE, such as revenue=0.5, got {item!r}")
    return margins


@app.command()
def metrics(
    data: Data,
    metric: MetricOpt,
    table: TableOpt = None,
    query: QueryOpt = None,
    where: WhereOpt = None,
    metric_column: MetricColumnOpt = None,
    value: ValueOpt = None,
    arm: ArmOpt = None,
    primary: PrimaryOpt = None,
    margin: MarginOpt = None,
    lower_is_better: LowerOpt = None,
    level: LevelOpt = 0.2,
    control: ControlOpt = None,
    cap: CapOpt = None,
    ci: CiOpt = 0.95,
    split: SplitOpt = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    allow_unconverged: AllowOpt = False,
    wide: WideOpt = False,
) -> None:
    """Decide on a primary metric with guardrails: several metrics of one experiment, each with its model.

    Example: abpool metrics users.csv --metric converted --metric revenue --lower-is-better latency_ms
    """
    from abpool._format import display
    from abpool.cli._render import print_table, render_result, status_text
    from abpool.report.scorecard import guardrails_table
    from abpool.report.tables import estimates_table
    from abpool.scorecard import analyze_metrics

    spinner = stderr.status("Fitting every metric…") if stderr.is_terminal and not as_json else contextlib.nullcontext()
    try:
        with spinner:
            card = analyze_metrics(
                data,
                metrics=metric,
                metric_column=metric_column,
                value=value,
                arm=arm,
                primary=primary,
                margins=margins_option(margin),
                lower_is_better=lower_is_better or (),
                level=level,
                control=control,
                cap=cap,
                ci=ci,
                split=parse_split(split),
                seed=seed,
                table=table,
                query=query,
                where=where,
                on_unconverged="ignore",
            )
        if out is not None:
            card.save(out)
    except AbpoolError as exc:
        fail(exc)
    except OSError as exc:
        fail(AbpoolError(f"cannot write to '{out}' ({exc.strerror or exc}); choose another --out"))
    if as_json:
        print(card.to_json())
    else:
        stdout.print(Text("Decision and guardrails", style="bold underline"))
        for sentence in card.sentences():
            stdout.print(Text(display(sentence), style="bold" if sentence is card.sentences()[0] else ""))
        print_table(guardrails_table(card), stdout, wide=wide)
        for name, result in card.results.items():
            stdout.print()
            if name == card.primary:
                render_result(result, stdout, title=f"{name} (primary): {result.description}", wide=wide)
                continue
            # A guardrail's verdict is in the table above; its estimates and diagnostics follow.
            stdout.print(Text(display(f"{name} (guardrail): {result.description}"), style="bold underline"))
            print_table(estimates_table(result), stdout, wide=wide)
            stdout.print(status_text(result))
        if out is not None:
            print(display(f"saved: {out / 'summary.json'}, {out / 'report.html'}"))
    if not allow_unconverged and not all(r.diagnostics.converged for r in card.results.values()):
        print(
            "abpool: error: a metric's fit did not converge (see diagnostics); pass --allow-unconverged to accept it",
            file=sys.stderr,
        )
        raise typer.Exit(code=1)
