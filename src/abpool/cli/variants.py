"""``abpool variants``: the hierarchical Beta-Binomial model of an A/B/n test."""

from __future__ import annotations

from typing import Annotated

import typer

from abpool.cli._app import (
    AllowOpt,
    ArmOpt,
    CalibrateOpt,
    CiOpt,
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
    RopeOpt,
    SeedOpt,
    SensitivityOpt,
    SplitOpt,
    StrictOpt,
    SuccessesOpt,
    TableOpt,
    ThresholdOpt,
    TrialsOpt,
    WhereOpt,
    WideOpt,
    analyse_and_emit,
    app,
)
from abpool.decisions import DEFAULT_THRESHOLD

MODEL = "variants"
PriorOpt = Annotated[
    str, typer.Option("--prior", metavar="NAME", help="Hyperprior: bda (the article's) or lognormal (proper).")
]
EngineOpt = Annotated[str, typer.Option("--engine", metavar="NAME", help="exact (quadrature) or mcmc (PyMC NUTS).")]
DrawsOpt = Annotated[
    int | None,
    typer.Option("--draws", metavar="N", help="Exact: total draws [20,000]; mcmc: draws per chain [2,000]."),
]
ChainsOpt = Annotated[int, typer.Option("--chains", metavar="N", help="MCMC chains (run in parallel).")]
TuneOpt = Annotated[int, typer.Option("--tune", metavar="N", help="MCMC tuning steps per chain.")]


@app.command()
def variants(
    data: Data,
    table: TableOpt = None,
    query: QueryOpt = None,
    where: WhereOpt = None,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    control: ControlOpt = None,
    prior: PriorOpt = "bda",
    engine: EngineOpt = "exact",
    draws: DrawsOpt = None,
    chains: ChainsOpt = 2,
    tune: TuneOpt = 1_000,
    ci: CiOpt = 0.95,
    rope: RopeOpt = None,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
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
    """Compare variants A/B/C/… with the hierarchical Beta-Binomial model.

    Example: abpool variants results.csv --control A --json
    """
    options = dict(
        arm=arm,
        outcome=outcome,
        trials=trials,
        successes=successes,
        control=control,
        prior=prior,
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
        calibrate=calibrate,
        experiments=experiments,
        sensitivity=sensitivity,
        panel=panel,
        wide=wide,
    )
