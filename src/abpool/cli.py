"""The ``abpool`` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 analysis refused (did not converge), 2 bad input.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from abpool import datasets
from abpool._version import __version__
from abpool.api import analyze_variants
from abpool.errors import AbpoolError, ConvergenceError
from abpool.results import VariantsResult

app = typer.Typer(
    name="abpool",
    help="Analyse A/B/n experiments with hierarchical Bayesian models (partial pooling).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_stdout = Console(highlight=False, soft_wrap=False)
if not _stdout.is_terminal:
    # Piped output has no width to measure; keep tables on one line per row.
    _stdout = Console(highlight=False, soft_wrap=False, width=160)
_stderr = Console(stderr=True, highlight=False, soft_wrap=True)

MAX_MATRIX_IN_TABLE = 12

Data = Annotated[
    Path, typer.Argument(help="CSV, TSV, Parquet or JSON file: unit rows or aggregated cells.", show_default=False)
]
ArmOpt = Annotated[str | None, typer.Option("--arm", help="Arm (variant) column [default: variant/arm/group].")]
OutcomeOpt = Annotated[str | None, typer.Option("--outcome", help="0/1 outcome column of unit rows.")]
TrialsOpt = Annotated[str | None, typer.Option("--trials", help="Trials column of aggregated cells.")]
SuccessesOpt = Annotated[str | None, typer.Option("--successes", help="Successes column of aggregated cells.")]
ControlOpt = Annotated[str | None, typer.Option("--control", help="Control arm [default: the first arm].")]
PriorOpt = Annotated[str, typer.Option("--prior", help="Hyperprior: bda (the article's) or lognormal (proper).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="exact (quadrature) or mcmc (PyMC NUTS).")]
DrawsOpt = Annotated[int | None, typer.Option("--draws", help="Exact: total draws; mcmc: draws per chain.")]
ChainsOpt = Annotated[int, typer.Option("--chains", help="MCMC chains (run in parallel).")]
CiOpt = Annotated[float, typer.Option("--ci", help="Credible level of intervals.")]
RopeOpt = Annotated[float | None, typer.Option("--rope", help="Half-width of a practically-nil lift, e.g. 0.01.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed [default: random, and reported].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Directory for posterior.nc and summary.json.")]


def _fail(exc: AbpoolError) -> None:
    message = str(exc).strip().replace("\n", " ")
    print(f"abpool: error: {message}", file=sys.stderr)
    raise typer.Exit(code=1 if isinstance(exc, ConvergenceError) else 2)


def _quiet_samplers() -> None:
    for name in ("pymc", "pymc.sampling", "pytensor"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fmt(value: float, digits: int = 3) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    if value != value:
        return "—"
    if value > 0.999:
        return ">99.9%"
    if value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"


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
            _pct(row.prob_best),
            "—" if row.lift != row.lift else f"{row.lift:+.3f}",
            "—" if row.lift != row.lift else f"{row.lift_ci_low:+.3f} – {row.lift_ci_high:+.3f}",
            _pct(row.prob_beats_control),
        ]
        if result.rope is not None:
            cells.append(_pct(row.prob_in_rope))
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
            pairs.add_row(name, *["" if other == name else _pct(matrix.loc[name, other]) for other in names])
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
) -> None:
    _quiet_samplers()
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
            progressbar=not as_json and _stderr.is_terminal,
        )
        if out is not None:
            result.save(out)
    except AbpoolError as exc:
        _fail(exc)
    if as_json:
        print(result.to_json())
    else:
        render_variants(result, _stdout)
        if out is not None:
            _stdout.print(f"saved: {out / 'posterior.nc'}, {out / 'summary.json'}")
    if not result.diagnostics.converged and not allow_unconverged:
        raise typer.Exit(code=1)


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
    prior: PriorOpt = "bda",
    engine: EngineOpt = "exact",
    draws: DrawsOpt = None,
    chains: ChainsOpt = 2,
    ci: CiOpt = 0.95,
    rope: RopeOpt = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Analyse an experiment, picking the model from the data (variants when no --segment).

    Example: abpool analyze results.csv
    """
    if segment:
        _fail(AbpoolError("the segments model is not available yet; omit --segment"))
    _variants(
        data, arm, outcome, trials, successes, control, prior, engine, draws, chains, ci, rope, seed, as_json, out
    )


@app.command()
def demo(
    seed: SeedOpt = 2016,
    as_json: JsonOpt = False,
) -> None:
    """Run the article's two scenarios: A with 100 trials, then A with only 10.

    With 100 trials A keeps most of its own estimate; with 10 it is pulled most of
    the way to the grand rate.
    """
    _quiet_samplers()
    scenarios = datasets.article_variants_scenarios()
    results = {}
    for label, frame in scenarios.items():
        try:
            results[label] = analyze_variants(frame, seed=seed)
        except AbpoolError as exc:  # pragma: no cover - embedded data is valid
            _fail(exc)
    if as_json:
        import json

        print(json.dumps({label: res.to_dict() for label, res in results.items()}, indent=2, ensure_ascii=False))
        return
    for label, res in results.items():
        render_variants(res, _stdout, title=f"Scenario: {label}")
        _stdout.print()
    first, second = results.values()
    a1, a2 = first.summary().iloc[0], second.summary().iloc[0]
    _stdout.print(
        f"[bold]Shrinkage of A[/bold]: observed {a1.observed_rate:.2f} → posterior mean {a1['mean']:.3f} with "
        f"{a1.trials} trials (shrinkage {a1.shrinkage:.2f}); observed {a2.observed_rate:.2f} → {a2['mean']:.3f} "
        f"with {a2.trials} trials (shrinkage {a2.shrinkage:.2f}). Grand rates: {first.grand_rate:.3f} and "
        f"{second.grand_rate:.3f}."
    )


def _version_callback(value: bool) -> None:
    if value:
        print(f"abpool {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Analyse A/B/n experiments with hierarchical Bayesian models (partial pooling)."""


if __name__ == "__main__":  # pragma: no cover
    app()
