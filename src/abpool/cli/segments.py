"""``abpool segments``: the varying-intercept, varying-slope model per segment."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from abpool.api import analyze_segments
from abpool.cli._app import (
    ArmOpt,
    CiOpt,
    Data,
    JsonOpt,
    OutcomeOpt,
    OutOpt,
    SeedOpt,
    SuccessesOpt,
    TrialsOpt,
    app,
    emit,
    fail,
    quiet_samplers,
    stderr,
    stdout,
)
from abpool.errors import AbpoolError
from abpool.report.format import pct
from abpool.report.segments import chance
from abpool.segments_result import SegmentsResult

SegmentOpt = Annotated[
    list[str], typer.Option("--segment", help="Segment column; repeat it to combine columns (e.g. country × platform).")
]
SegPriorOpt = Annotated[
    str, typer.Option("--prior", help="Priors: article (StudentT(3,0,1), HalfNormal(1)), flat or conservative.")
]
PriorScaleOpt = Annotated[float | None, typer.Option("--prior-scale", help="HalfNormal scale of sigma_a, sigma_b.")]
CorrelatedOpt = Annotated[bool, typer.Option("--correlated", help="Correlated intercepts and slopes (LKJ prior).")]
SamplerOpt = Annotated[str, typer.Option("--sampler", help="nutpie (compiles once, fast refits) or pymc.")]
SegDrawsOpt = Annotated[int, typer.Option("--draws", help="Draws per chain.")]
TuneOpt = Annotated[int, typer.Option("--tune", help="Tuning steps per chain.")]
SegChainsOpt = Annotated[int, typer.Option("--chains", help="Chains, run in parallel on the available cores.")]
AllowOpt = Annotated[bool, typer.Option("--allow-unconverged", help="Exit 0 even if the fit did not converge.")]
SegControlOpt = Annotated[str | None, typer.Option("--control", help="Control arm [default: the first arm].")]
SegClassicalOpt = Annotated[
    bool,
    typer.Option("--classical", help="Also print per-segment two-proportion tests with adjusted p-values."),
]


def _rate(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} ({low:.3f} – {high:.3f})"


def decision_sentences(result: SegmentsResult) -> list[str]:
    """Plain-language decisions, one per segment and treatment arm."""
    summary = result.summary()
    several = len(result.layout.treatments) > 1
    sentences = []
    for row in summary.itertuples(index=False):
        arm = f"treatment {row.arm}" if several else "the treatment"
        sentences.append(f"There is {chance(row.prob_better)} {arm} improved conversion in {row.segment}.")
    return sentences


def render_segments(result: SegmentsResult, console: Console) -> None:
    """Print a segments result as terminal tables and sentences."""
    summary = result.summary()
    level = f"{result.ci:.0%}"
    table = Table(header_style="bold", box=box.SIMPLE_HEAD)
    columns = [
        ("segment", "left"),
        ("arm", "left"),
        ("control n/y", "right"),
        ("treatment n/y", "right"),
        (f"control ({level} CI)", "right"),
        (f"treatment ({level} CI)", "right"),
        (f"lift ({level} CI)", "right"),
        ("P(better)", "right"),
        ("exp. loss", "right"),
        ("pooling", "right"),
    ]
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    for row in summary.itertuples(index=False):
        table.add_row(
            str(row.segment),
            str(row.arm),
            f"{row.trials_control:,}/{row.successes_control:,}",
            f"{row.trials_treatment:,}/{row.successes_treatment:,}",
            _rate(row.control_rate, row.control_rate_ci_low, row.control_rate_ci_high),
            _rate(row.treatment_rate, row.treatment_rate_ci_low, row.treatment_rate_ci_high),
            f"{row.lift:+.3f} ({row.lift_ci_low:+.3f} – {row.lift_ci_high:+.3f})",
            pct(row.prob_better),
            f"{row.expected_loss:.4f}",
            f"{row.pooling:.2f}",
        )
    console.print(table)
    for sentence in decision_sentences(result):
        console.print(sentence)
    population = result.population()
    for arm in result.layout.treatments:
        mu = population["mu_b"][arm]
        sigma = population["sigma_b"][arm]
        new = population["new_segment"][arm]
        console.print(
            f"population, arm {arm}: mu_b {mu['mean']:+.3f} log-odds ({mu['ci_low']:+.3f} – {mu['ci_high']:+.3f}), "
            f"P(mu_b > 0) {pct(population['prob_mu_b_positive'][arm])}; sigma_b median {sigma['median']:.3f}; "
            f"a new segment's lift {new['lift']['mean']:+.3f} ({new['lift']['ci_low']:+.3f} – "
            f"{new['lift']['ci_high']:+.3f}), P(better) {pct(new['prob_better'])}"
        )
    console.print(f"prior: {result.prior}" + ("; correlated intercepts and slopes (LKJ)" if result.correlated else ""))
    diag = result.diagnostics
    status = "[green]converged[/green]" if diag.converged else "[bold red]NOT CONVERGED[/bold red]"
    console.print(
        f"sampler: {result.sampler} NUTS, {diag.chains} chains × {diag.draws:,} draws, target_accept "
        f"{diag.target_accept}, attempts {diag.attempts}; divergences {diag.divergences}, max R-hat "
        f"{diag.max_rhat:.3f}, min ESS bulk {diag.min_ess_bulk:.0f} / tail {diag.min_ess_tail:.0f}; {status}; "
        f"seed {result.seed}; {result.parameterisation} parameterisation"
    )
    for warning in diag.warnings:
        console.print(f"[bold red]warning:[/bold red] {warning}")


def render_segments_classical(result: SegmentsResult, console: Console) -> None:
    """Print the classical treatment-vs-control tests per segment beside ``P(better)``."""
    table = result.classical()
    out = Table(
        title="Classical tests per segment (two-sided; adjusted over all segments and arms) beside P(better)",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for column in (
        "segment",
        "arm",
        "rate",
        "control rate",
        "diff",
        "test",
        "p",
        "Bonferroni",
        "Holm",
        "BH",
        "P(better)",
    ):
        out.add_column(column, justify="left" if column in ("segment", "arm", "test") else "right", no_wrap=True)

    def p_text(value: float) -> str:
        return "<0.0001" if value < 1e-4 else f"{value:.4f}"

    for row in table.itertuples(index=False):
        out.add_row(
            str(row.segment),
            str(row.arm_i),
            f"{row.rate_i:.3f}",
            f"{row.rate_j:.3f}",
            f"{row.difference:+.3f}",
            row.test,
            p_text(row.p_value),
            p_text(row.p_bonferroni),
            p_text(row.p_holm),
            p_text(row.p_bh),
            pct(row.prob_greater),
        )
    console.print(out)


def run_segments(
    data: Path,
    *,
    segment: list[str],
    arm: str | None,
    outcome: str | None,
    trials: str | None,
    successes: str | None,
    control: str | None,
    prior: str,
    prior_scale: float | None,
    correlated: bool,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    ci: float,
    seed: int | None,
    as_json: bool,
    out: Path | None,
    allow_unconverged: bool,
    classical: bool = False,
) -> None:
    """Fit, print and save a segments analysis; shared by ``segments`` and ``analyze``."""
    quiet_samplers()
    spinner = (
        stderr.status("Fitting the segments model (the first fit of a model shape compiles it)…")
        if stderr.is_terminal and not as_json
        else contextlib.nullcontext()
    )
    try:
        with spinner:
            result = analyze_segments(
                data,
                segment=segment,
                arm=arm,
                outcome=outcome,
                trials=trials,
                successes=successes,
                control=control,
                prior=prior,
                prior_scale=prior_scale,
                correlated=correlated,
                sampler=sampler,
                draws=draws,
                tune=tune,
                chains=chains,
                ci=ci,
                seed=seed,
            )
        if out is not None:
            result.save(out)
    except AbpoolError as exc:
        fail(exc)

    def render() -> None:
        render_segments(result, stdout)
        if classical:
            render_segments_classical(result, stdout)

    emit(result, render, as_json=as_json, out=out, allow_unconverged=allow_unconverged)


@app.command()
def segments(
    data: Data,
    segment: SegmentOpt,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    control: SegControlOpt = None,
    prior: SegPriorOpt = "article",
    prior_scale: PriorScaleOpt = None,
    correlated: CorrelatedOpt = False,
    sampler: SamplerOpt = "nutpie",
    draws: SegDrawsOpt = 1_000,
    tune: TuneOpt = 1_000,
    chains: SegChainsOpt = 4,
    ci: CiOpt = 0.95,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    allow_unconverged: AllowOpt = False,
    classical: SegClassicalOpt = False,
) -> None:
    """Per-segment treatment effects with a varying-intercept, varying-slope logistic regression.

    Example: abpool segments users.csv --segment country --arm treated --outcome success --control 0
    """
    run_segments(
        data,
        segment=segment,
        arm=arm,
        outcome=outcome,
        trials=trials,
        successes=successes,
        control=control,
        prior=prior,
        prior_scale=prior_scale,
        correlated=correlated,
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        ci=ci,
        seed=seed,
        as_json=as_json,
        out=out,
        allow_unconverged=allow_unconverged,
        classical=classical,
    )
