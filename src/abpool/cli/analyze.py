"""``abpool analyze``: the model the data call for, with only the options that apply to it."""

from __future__ import annotations

from typing import Annotated

import typer

from abpool._validation import check_applicable, flag
from abpool.api import choose_model
from abpool.cli._app import (
    AllowOpt,
    AnyDrawsOpt,
    AnyPriorOpt,
    AnyRopeOpt,
    AnyThresholdOpt,
    ArmOpt,
    CalibrateOpt,
    ClassicalOpt,
    ControlOpt,
    Data,
    ExperimentsOpt,
    ForceOpt,
    JsonOpt,
    OutcomeOpt,
    OutOpt,
    PanelOpt,
    QueryOpt,
    SeedOpt,
    SegmentOpt,
    SensitivityOpt,
    SplitOpt,
    StrictOpt,
    SuccessesOpt,
    TableOpt,
    TrialsOpt,
    WhereOpt,
    WideOpt,
    analyse_and_emit,
    app,
    fail,
    given,
)
from abpool.errors import AbpoolError
from abpool.result import model_entry


@app.command()
def analyze(
    data: Data,
    table: TableOpt = None,
    query: QueryOpt = None,
    where: WhereOpt = None,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    value: Annotated[
        str | None,
        typer.Option("--value", metavar="COLUMN", help="A continuous metric's column: fit the means model."),
    ] = None,
    cap: Annotated[
        float | None, typer.Option("--cap", metavar="QUANTILE", help="Means: cap values at this quantile.")
    ] = None,
    control: ControlOpt = None,
    segment: SegmentOpt = None,
    prior: AnyPriorOpt = None,
    engine: Annotated[
        str | None, typer.Option("--engine", metavar="NAME", help="Variants: exact or mcmc [exact].")
    ] = None,
    prior_scale: Annotated[
        float | None, typer.Option("--prior-scale", metavar="SCALE", help="Segments: HalfNormal scale [1].")
    ] = None,
    correlated: Annotated[
        bool, typer.Option("--correlated", help="Segments: correlated intercepts and slopes.")
    ] = False,
    sampler: Annotated[
        str | None, typer.Option("--sampler", metavar="NAME", help="Segments: nutpie or pymc [nutpie].")
    ] = None,
    draws: AnyDrawsOpt = None,
    chains: Annotated[
        int | None, typer.Option("--chains", metavar="N", help="MCMC chains [2 variants, 4 segments].")
    ] = None,
    tune: Annotated[
        int | None,
        typer.Option("--tune", metavar="N", help="MCMC tuning steps per chain [1,000; segments' default path 500]."),
    ] = None,
    ci: Annotated[
        float | None, typer.Option("--ci", metavar="LEVEL", help="Credible level of every interval [0.95].")
    ] = None,
    rope: AnyRopeOpt = None,
    threshold: AnyThresholdOpt = None,
    split: SplitOpt = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    allow_unconverged: AllowOpt = False,
    strict: StrictOpt = False,
    classical: ClassicalOpt = False,
    calibrate: CalibrateOpt = False,
    experiments: ExperimentsOpt = None,
    sensitivity: SensitivityOpt = False,
    panel: PanelOpt = None,
    wide: WideOpt = False,
    force: ForceOpt = False,
) -> None:
    """Analyse an experiment, picking the model: means with --value, segments with --segment, else variants.

    An option that does not apply to the chosen model is an error, never ignored.

    Example: abpool analyze results.csv
    """
    try:
        model = choose_model(segment=segment, value=value)
    except AbpoolError as exc:
        fail(exc)
    options = given(
        cap=cap,
        prior=prior,
        engine=engine,
        prior_scale=prior_scale,
        correlated=correlated or None,
        sampler=sampler,
        draws=draws,
        chains=chains,
        tune=tune,
        ci=ci,
        rope=rope,
        threshold=threshold,
        split=split,
        seed=seed,
    )
    try:
        check_applicable(options, model_entry(model).options, model, spell=flag)
    except AbpoolError as exc:
        fail(exc)
    columns = given(
        arm=arm, outcome=outcome, trials=trials, successes=successes, value=value, control=control, segment=segment
    )
    analyse_and_emit(
        model,
        data,
        {**columns, **options},
        table=table,
        query=query,
        where=where,
        as_json=as_json,
        out=out,
        allow_unconverged=allow_unconverged,
        classical=classical,
        force=force,
        strict=strict,
        calibrate=calibrate,
        experiments=experiments,
        sensitivity=sensitivity,
        panel=panel,
        wide=wide,
    )
