"""``abpool means``: the hierarchical normal model of a continuous metric (revenue per user, time on site…)."""

from __future__ import annotations

from typing import Annotated

import typer

from abpool.cli._app import (
    AllowOpt,
    ArmOpt,
    CiOpt,
    ControlOpt,
    ForceOpt,
    JsonOpt,
    OutOpt,
    PanelOpt,
    QueryOpt,
    SeedOpt,
    SensitivityOpt,
    SplitOpt,
    StrictOpt,
    TableOpt,
    WhereOpt,
    WideOpt,
    analyse_and_emit,
    app,
)

MODEL = "means"
Data = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help=(
            "Unit rows (one value per user) or per-arm statistics: a CSV, TSV, Parquet or JSON file, a glob of many, "
            "a DuckDB database or a PostgreSQL connection string (unit rows) with --table/--query."
        ),
        show_default=False,
    ),
]


def _column(flag: str, what: str) -> typer.models.OptionInfo:
    return typer.Option(flag, metavar="COLUMN", help=what)


ValueOpt = Annotated[
    str | None, _column("--value", "Numeric column of unit rows, one value per user [value/metric/revenue/amount].")
]
NOpt = Annotated[str | None, _column("--n", "Users column of per-arm statistics [n/users/count/visitors].")]
SumSqOpt = Annotated[str | None, _column("--sum-sq", "Sum-of-squares column of per-arm statistics (with --sum).")]
MeanOpt = Annotated[str | None, _column("--mean", "Mean column of per-arm statistics (with --sd or --std-error).")]
SdOpt = Annotated[str | None, _column("--sd", "Standard deviation column (divisor n − 1) of per-arm statistics.")]
StdErrorOpt = Annotated[str | None, _column("--std-error", "Standard error of the mean column of per-arm statistics.")]
CapOpt = Annotated[
    float | None,
    typer.Option(
        "--cap",
        metavar="QUANTILE",
        help="Lower unit values above this quantile of the whole experiment to it, e.g. 0.99 (heavy tails).",
    ),
]
PriorOpt = Annotated[
    str | None,
    typer.Option(
        "--prior",
        metavar="NAME",
        help="Prior on tau: flat (BDA3's), half-cauchy or half-normal [flat; half-cauchy with two arms].",
    ),
]
PriorScaleOpt = Annotated[
    float | None,
    typer.Option(
        "--prior-scale",
        metavar="SCALE",
        help="Scale of the half-cauchy/half-normal prior, in the metric's units [RMS of the standard errors].",
    ),
]
EngineOpt = Annotated[str, typer.Option("--engine", metavar="NAME", help="exact (grid over tau) or mcmc (NUTS).")]
DrawsOpt = Annotated[
    int | None, typer.Option("--draws", metavar="N", help="Exact: total draws [20,000]; mcmc: per chain [2,000].")
]
ChainsOpt = Annotated[int, typer.Option("--chains", metavar="N", help="MCMC chains.")]
TuneOpt = Annotated[int, typer.Option("--tune", metavar="N", help="MCMC tuning steps per chain.")]
RopeOpt = Annotated[
    float | None,
    typer.Option("--rope", metavar="WIDTH", help="Half-width of a practically-nil lift, in the metric's units."),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        metavar="LOSS",
        help="Threshold of caring, in the metric's units: ship an arm whose expected loss is below it "
        "[1% of the grand mean].",
    ),
]
ClassicalOpt = Annotated[
    bool, typer.Option("--classical", help="Also print Welch t-tests with Bonferroni/Holm/BH-adjusted p-values.")
]


@app.command()
def means(
    data: Data,
    table: TableOpt = None,
    query: QueryOpt = None,
    where: WhereOpt = None,
    arm: ArmOpt = None,
    value: ValueOpt = None,
    n: NOpt = None,
    sum_: Annotated[str | None, _column("--sum", "Sum-of-values column of per-arm statistics (with --sum-sq).")] = None,
    sum_sq: SumSqOpt = None,
    mean: MeanOpt = None,
    sd: SdOpt = None,
    std_error: StdErrorOpt = None,
    cap: CapOpt = None,
    control: ControlOpt = None,
    prior: PriorOpt = None,
    prior_scale: PriorScaleOpt = None,
    engine: EngineOpt = "exact",
    draws: DrawsOpt = None,
    chains: ChainsOpt = 4,
    tune: TuneOpt = 1_000,
    ci: CiOpt = 0.95,
    rope: RopeOpt = None,
    threshold: ThresholdOpt = None,
    split: SplitOpt = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    allow_unconverged: AllowOpt = False,
    strict: StrictOpt = False,
    classical: ClassicalOpt = False,
    sensitivity: SensitivityOpt = False,
    panel: PanelOpt = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
) -> None:
    """Compare arms on a continuous metric (revenue per user…) with the hierarchical normal model.

    Example: abpool means orders.csv --value revenue --cap 0.99
    """
    options = dict(
        arm=arm,
        value=value,
        n=n,
        sum=sum_,
        sum_sq=sum_sq,
        mean=mean,
        sd=sd,
        std_error=std_error,
        cap=cap,
        control=control,
        prior=prior,
        prior_scale=prior_scale,
        engine=engine,
        draws=draws,
        chains=chains,
        tune=tune,
        ci=ci,
        rope=rope,
        threshold=threshold,
        split=split,
        seed=seed,
    )
    analyse_and_emit(
        MODEL,
        data,
        options,
        table=table,
        query=query,
        where=where,
        as_json=as_json,
        out=out,
        allow_unconverged=allow_unconverged,
        classical=classical,
        force=force,
        strict=strict,
        sensitivity=sensitivity,
        panel=panel,
        wide=wide,
    )
