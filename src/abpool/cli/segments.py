"""``abpool segments``: the varying-intercept, varying-slope model of an experiment by segment."""

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

MODEL = "segments"
RequiredSegmentOpt = Annotated[
    list[str],
    typer.Option(
        "--segment", metavar="COLUMN", help="Segment column; repeat it to combine columns (e.g. country × platform)."
    ),
]
PriorOpt = Annotated[
    str,
    typer.Option(
        "--prior", metavar="NAME", help="Priors: article (StudentT(3,0,1), HalfNormal(1)), flat or conservative."
    ),
]
PriorScaleOpt = Annotated[
    float | None, typer.Option("--prior-scale", metavar="SCALE", help="HalfNormal scale of sigma_a, sigma_b.")
]
CorrelatedOpt = Annotated[bool, typer.Option("--correlated", help="Correlated intercepts and slopes (LKJ prior).")]
FormOpt = Annotated[
    str | None,
    typer.Option(
        "--parameterisation", metavar="NAME", help="conditioned [default], centred or non-centred (same posterior)."
    ),
]
SamplerOpt = Annotated[
    str, typer.Option("--sampler", metavar="NAME", help="nutpie (compiles once, fast refits) or pymc.")
]
DrawsOpt = Annotated[
    int | None,
    typer.Option("--draws", metavar="N", help="Draws per chain [1,000; more for very many segments]."),
]
TuneOpt = Annotated[
    int | None,
    typer.Option("--tune", metavar="N", help="Tuning steps per chain [500; 1,000 correlated or not the default path]."),
]
ChainsOpt = Annotated[
    int, typer.Option("--chains", metavar="N", help="Chains, run in parallel on the available cores.")
]
AcceptOpt = Annotated[
    float | None,
    typer.Option(
        "--target-accept",
        metavar="P",
        help=(
            "NUTS target acceptance [0.95; 0.8 from 2,000 segments on the default path; "
            "0.99 on a refit after divergences]."
        ),
    ),
]


@app.command()
def segments(
    data: Data,
    segment: RequiredSegmentOpt,
    table: TableOpt = None,
    query: QueryOpt = None,
    where: WhereOpt = None,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    control: ControlOpt = None,
    prior: PriorOpt = "article",
    prior_scale: PriorScaleOpt = None,
    correlated: CorrelatedOpt = False,
    parameterisation: FormOpt = None,
    sampler: SamplerOpt = "nutpie",
    draws: DrawsOpt = None,
    tune: TuneOpt = None,
    chains: ChainsOpt = 4,
    target_accept: AcceptOpt = None,
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
    """Per-segment treatment effects with a varying-intercept, varying-slope logistic regression.

    Example: abpool segments users.csv --segment country --arm treated --outcome success --control 0
    """
    options = dict(
        segment=segment,
        arm=arm,
        outcome=outcome,
        trials=trials,
        successes=successes,
        control=control,
        prior=prior,
        prior_scale=prior_scale,
        correlated=correlated,
        parameterisation=parameterisation,
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
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
