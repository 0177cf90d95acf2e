"""``abpool variants`` and ``abpool analyze``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from abpool.api import analyze_variants
from abpool.cli._app import (
    ArmOpt,
    ChainsOpt,
    CiOpt,
    ControlOpt,
    Data,
    DrawsOpt,
    EngineOpt,
    JsonOpt,
    OutcomeOpt,
    OutOpt,
    PriorOpt,
    RopeOpt,
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
from abpool.cli._classical import ClassicalOpt, render_classical
from abpool.errors import AbpoolError
from abpool.report.format import pct
from abpool.results import VariantsResult

MAX_MATRIX_IN_TABLE = 12


def _fmt(value: float, digits: int = 3) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def render_variants(result: VariantsResult, console: Console, title: str | None = None) -> None:
    """Print a variants result as terminal tables."""
    summary = result.summary()
    level = f"{result.ci:.0%}"
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    control = result.control
    for column, justify in [
        ("variant", "left"),
        ("trials", "right"),
        ("successes", "right"),
        ("rate", "right"),
        ("mean", "right"),
        (f"{level} CI", "right"),
        ("shrinkage", "right"),
        ("P(best)", "right"),
        (f"lift vs {control}", "right"),
        (f"{level} CI of lift", "right"),
        (f"P(> {control})", "right"),
    ]:
        table.add_column(column, justify=justify, no_wrap=True)
    if result.rope is not None:
        table.add_column(f"P(|lift|<{result.rope:g})", justify="right", no_wrap=True)
    for row in summary.itertuples(index=False):
        cells = [
            str(row.variant),
            f"{row.trials:,}",
            f"{row.successes:,}",
            _fmt(row.observed_rate),
            _fmt(row.mean),
            f"{_fmt(row.ci_low)} – {_fmt(row.ci_high)}",
            _fmt(row.shrinkage, 2),
            pct(row.prob_best),
            "—" if row.lift != row.lift else f"{row.lift:+.3f}",
            "—" if row.lift != row.lift else f"{row.lift_ci_low:+.3f} – {row.lift_ci_high:+.3f}",
            pct(row.prob_beats_control),
        ]
        if result.rope is not None:
            cells.append(pct(row.prob_in_rope))
        table.add_row(*cells)
    console.print(table)
    names = result.names
    if len(names) <= MAX_MATRIX_IN_TABLE:
        matrix = result.prob_greater_matrix()
        pairs = Table(title="P(row beats column)", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
        pairs.add_column("")
        for name in names:
            pairs.add_column(name, justify="right")
        for name in names:
            pairs.add_row(name, *["" if other == name else pct(matrix.loc[name, other]) for other in names])
        console.print(pairs)
    hyper = result.hyperparameters()
    pm, conc = hyper["population_mean"], hyper["concentration"]
    console.print(
        f"grand rate {result.grand_rate:.4f}; population mean a/(a+b): median {pm['median']:.4f} "
        f"(95%: {pm['q025']:.4f} – {pm['q975']:.4f}); a+b: median {conc['median']:.3g} "
        f"(95%: {conc['q025']:.3g} – {conc['q975']:.3g})"
    )
    console.print(f"prior: {result.prior}")
    diag = result.diagnostics
    status = "[green]converged[/green]" if diag.converged else "[bold red]NOT CONVERGED[/bold red]"
    if result.engine == "exact":
        detail = f"{diag.draws:,} independent draws, {diag.grid_points:,} grid cells, edge mass {diag.edge_mass:.1e}"
    else:
        detail = (
            f"{diag.chains} chains × {diag.draws:,} draws, divergences {diag.divergences}, "
            f"max R-hat {diag.max_rhat:.3f}, min ESS {min(diag.min_ess_bulk, diag.min_ess_tail):.0f}"
        )
    console.print(f"engine: {result.engine} ({detail}); {status}; seed {result.seed}")
    for warning in diag.warnings:
        console.print(f"[bold red]warning:[/bold red] {warning}")


def _variants(
    data,
    arm,
    outcome,
    trials,
    successes,
    control,
    prior,
    engine,
    draws,
    chains,
    ci,
    rope,
    seed,
    as_json,
    out,
    allow_unconverged: bool = True,
    classical: bool = False,
) -> None:
    quiet_samplers()
    try:
        result = analyze_variants(
            data,
            arm=arm,
            outcome=outcome,
            trials=trials,
            successes=successes,
            control=control,
            prior=prior,
            engine=engine,
            draws=draws,
            chains=chains,
            ci=ci,
            rope=rope,
            seed=seed,
            progressbar=not as_json and stderr.is_terminal,
        )
        if out is not None:
            result.save(out)
    except AbpoolError as exc:
        fail(exc)

    def render() -> None:
        render_variants(result, stdout)
        if classical:
            render_classical(result, stdout)

    emit(result, render, as_json=as_json, out=out, allow_unconverged=allow_unconverged)


@app.command()
def variants(
    data: Data,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    control: ControlOpt = None,
    prior: PriorOpt = "bda",
    engine: EngineOpt = "exact",
    draws: DrawsOpt = None,
    chains: ChainsOpt = 2,
    ci: CiOpt = 0.95,
    rope: RopeOpt = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    allow_unconverged: Annotated[
        bool, typer.Option("--allow-unconverged", help="Exit 0 even if the fit did not converge.")
    ] = False,
    classical: ClassicalOpt = False,
) -> None:
    """Compare variants A/B/C/… with the hierarchical Beta-Binomial model.

    Example: abpool variants results.csv --control A --json
    """
    _variants(
        data,
        arm,
        outcome,
        trials,
        successes,
        control,
        prior,
        engine,
        draws,
        chains,
        ci,
        rope,
        seed,
        as_json,
        out,
        allow_unconverged,
        classical=classical,
    )


@app.command()
def analyze(
    data: Data,
    arm: ArmOpt = None,
    outcome: OutcomeOpt = None,
    trials: TrialsOpt = None,
    successes: SuccessesOpt = None,
    control: ControlOpt = None,
    segment: Annotated[list[str] | None, typer.Option("--segment", help="Segment column (repeatable).")] = None,
    prior: Annotated[
        str | None, typer.Option("--prior", help="Prior [default: bda for variants, article for segments].")
    ] = None,
    engine: EngineOpt = "exact",
    draws: DrawsOpt = None,
    chains: Annotated[
        int | None, typer.Option("--chains", help="MCMC chains [default: 2 variants, 4 segments].")
    ] = None,
    ci: CiOpt = 0.95,
    rope: RopeOpt = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    classical: ClassicalOpt = False,
    allow_unconverged: Annotated[
        bool, typer.Option("--allow-unconverged", help="Exit 0 even if the fit did not converge.")
    ] = False,
) -> None:
    """Analyse an experiment, picking the model from the data: segments with --segment, else variants.

    Example: abpool analyze results.csv
    """
    if segment:
        from abpool.cli.segments import run_segments

        run_segments(
            data,
            segment=segment,
            arm=arm,
            outcome=outcome,
            trials=trials,
            successes=successes,
            control=control,
            prior=prior or "article",
            prior_scale=None,
            correlated=False,
            sampler="nutpie",
            draws=draws or 1_000,
            tune=1_000,
            chains=chains or 4,
            ci=ci,
            seed=seed,
            as_json=as_json,
            out=out,
            allow_unconverged=allow_unconverged,
            classical=classical,
        )
        return
    prior = prior or "bda"
    chains = chains or 2
    _variants(
        data,
        arm,
        outcome,
        trials,
        successes,
        control,
        prior,
        engine,
        draws,
        chains,
        ci,
        rope,
        seed,
        as_json,
        out,
        classical=classical,
    )
