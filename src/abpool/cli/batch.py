"""``abpool batch``: every experiment of a table, with a results table, a report each and an index page.

Exit codes: 0 every experiment fitted and converged, 1 some were refused or did
not converge (each has its one-line reason), 2 the table itself is unusable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from abpool.cli._app import (
    AnyDrawsOpt,
    AnyPriorOpt,
    AnyRopeOpt,
    AnyThresholdOpt,
    ArmOpt,
    ControlOpt,
    Data,
    OutcomeOpt,
    QueryOpt,
    SeedOpt,
    SegmentOpt,
    SuccessesOpt,
    TableOpt,
    TrialsOpt,
    WhereOpt,
    app,
    fail,
    given,
    stderr,
)
from abpool.cli.metrics import LowerOpt, MarginOpt, MetricColumnOpt, PrimaryOpt, margins_option
from abpool.errors import AbpoolError

ExperimentOpt = Annotated[
    str | None,
    typer.Option(
        "--experiment", metavar="COLUMN", help="Experiment column [default: experiment/experiment_id/test/test_id]."
    ),
]
BatchOutOpt = Annotated[
    Path,
    typer.Option("--out", metavar="DIR", help="Directory for results.parquet, index.html and one run per experiment."),
]


@app.command()
def batch(
    data: Data,
    out: BatchOutOpt,
    experiment: ExperimentOpt = None,
    segment: SegmentOpt = None,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    value: Annotated[
        str | None,
        typer.Option(
            "--value",
            metavar="COLUMN",
            help="A continuous metric's column: fit the means model (with --metric-column: the value column).",
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            metavar="COLUMN",
            help="Several metrics per experiment, a scorecard each; repeat it. The first is the primary.",
        ),
    ] = None,
    metric_column: MetricColumnOpt = None,
    primary: PrimaryOpt = None,
    margin: MarginOpt = None,
    lower_is_better: LowerOpt = None,
    level: Annotated[
        float | None,
        typer.Option(
            "--level", metavar="P", help="With --metric: flag a guardrail when P(worse beyond its margin) > P [0.2]."
        ),
    ] = None,
    cap: Annotated[
        float | None,
        typer.Option(
            "--cap", metavar="QUANTILE", help="Cap continuous metrics at this quantile of each experiment's values."
        ),
    ] = None,
    control: ControlOpt = None,
    table: TableOpt = None,
    query: QueryOpt = None,
    where: WhereOpt = None,
    prior: AnyPriorOpt = None,
    draws: AnyDrawsOpt = None,
    threshold: AnyThresholdOpt = None,
    rope: AnyRopeOpt = None,
    seed: SeedOpt = None,
    workers: Annotated[
        int, typer.Option("--workers", metavar="N", help="Fit on N local processes (with --dask: N Dask workers).")
    ] = 1,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="SCHEDULER",
            help="Fit on Dask: 'local' starts a LocalCluster, or give a scheduler address (tcp://host:8786).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Refit experiments whose data and settings are unchanged.")
    ] = False,
    no_reports: Annotated[bool, typer.Option("--no-reports", help="Skip each experiment's HTML report.")] = False,
    no_runs: Annotated[
        bool,
        typer.Option(
            "--no-runs",
            help="Keep only the results table, the index and a record per experiment (no draws or reports): faster.",
        ),
    ] = False,
    results_table: Annotated[
        str | None,
        typer.Option(
            "--results-table",
            metavar="NAME",
            help="Also write the results table into the source database (DuckDB or PostgreSQL) as NAME.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Print a line per experiment as it finishes.")] = False,
) -> None:
    """Fit every experiment of a table: segments with --segment, means with --value, a scorecard with --metric.

    Otherwise the variants model. Example: abpool batch experiments.parquet --experiment test_id --out results/
    """
    from abpool.batch import analyze_batch
    from abpool.tuning import tune_process

    # Fits in this process too (the default engine): one BLAS thread, freed memory kept, as in the workers.
    tune_process()
    options = given(control=control, prior=prior, draws=draws, threshold=threshold, rope=rope, cap=cap)
    engine = "dask" if dask else ("pool" if workers > 1 else "process")
    show = stderr.is_terminal
    try:
        with _Progress(show, verbose) as report:
            done = analyze_batch(
                data,
                experiment=experiment,
                out=out,
                segment=segment,
                arm=arm,
                outcome=outcome,
                trials=trials,
                successes=successes,
                value=value,
                metrics=metric or None,
                metric_column=metric_column,
                primary=primary,
                margins=margins_option(margin),
                lower_is_better=lower_is_better or (),
                level=level,
                table=table,
                query=query,
                where=where,
                seed=seed,
                engine=engine,
                workers=workers,
                scheduler=dask,
                force=force,
                reports=not no_reports,
                runs=not no_runs,
                database_table=results_table,
                progress=report,
                **options,
            )
    except AbpoolError as exc:
        fail(exc)
    except OSError as exc:
        fail(AbpoolError(f"cannot write to '{out}' ({exc.strerror or exc}); choose another --out"))
    statuses = done.statuses()
    counts = statuses["status"].value_counts()
    summary = ", ".join(f"{count:,} {status}" for status, count in counts.items())
    print(
        f"{len(statuses):,} experiments: {summary}; fitted {done.fitted:,}, unchanged {done.reused:,} "
        f"in {done.seconds:,.1f} s"
    )
    for row in statuses.itertuples(index=False):
        if row.status != "ok":
            print(f"abpool: {row.status}: {row.experiment}: {row.reason}", file=sys.stderr)
    print(f"saved: {done.out / 'results.parquet'}, {done.out / 'index.html'}")
    if done.database_table is not None:
        print(f"results table: {done.database_table}")
    raise typer.Exit(code=done.exit_code)


class _Progress:
    """A progress bar over experiments on a terminal, and a line per experiment with ``--verbose``."""

    def __init__(self, show: bool, verbose: bool) -> None:
        self.show, self.verbose = show, verbose
        self.bar: Any = None
        self.done = 0

    def __enter__(self) -> Any:
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("experiments"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=stderr
            )
            self.bar.start()
            self.task = self.bar.add_task("batch", total=None)
        return self.report

    def report(self, record: dict[str, Any]) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        if self.verbose:
            reason = f": {record['reason']}" if record.get("reason") else ""
            seconds = " (unchanged)" if record.get("reused") else f" ({record.get('seconds', 0.0):.1f} s)"
            stderr.print(Text(f"{record['experiment']}: {record['status']}{seconds}{reason}"))

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
