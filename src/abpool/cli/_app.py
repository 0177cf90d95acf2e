"""The Typer application, consoles, shared options, and the one path every analysis takes to the user.

Exit codes: 0 success, 1 analysis refused (did not converge), 2 bad input.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from abpool._version import __version__
from abpool.errors import AbpoolError, ConvergenceError

app = typer.Typer(
    name="abpool",
    help="Analyse A/B/n experiments with hierarchical Bayesian models (partial pooling).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: option help uses square brackets for defaults.
    rich_markup_mode=None,
)

stdout = Console(highlight=False, soft_wrap=False)
if not stdout.is_terminal:
    # Piped output has no width to measure; keep tables on one line per row.
    stdout = Console(highlight=False, soft_wrap=False, width=160)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

Data = Annotated[
    Path, typer.Argument(help="CSV, TSV, Parquet or JSON file: unit rows or aggregated cells.", show_default=False)
]
ArmOpt = Annotated[str | None, typer.Option("--arm", help="Arm (variant) column [default: variant/arm/group].")]
OutcomeOpt = Annotated[str | None, typer.Option("--outcome", help="0/1 outcome column of unit rows.")]
TrialsOpt = Annotated[str | None, typer.Option("--trials", help="Trials column of aggregated cells.")]
SuccessesOpt = Annotated[str | None, typer.Option("--successes", help="Successes column of aggregated cells.")]
ControlOpt = Annotated[str | None, typer.Option("--control", help="Control arm [default: the first arm].")]
SegmentOpt = Annotated[
    list[str] | None,
    typer.Option("--segment", help="Segment column; repeat it to combine columns (e.g. country × platform)."),
]
CiOpt = Annotated[float, typer.Option("--ci", help="Credible level of every interval.")]
RopeOpt = Annotated[float | None, typer.Option("--rope", help="Half-width of a practically-nil lift, e.g. 0.01.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed [default: random, and reported].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Directory for posterior.nc, summary.json and report.html.")]
AllowOpt = Annotated[bool, typer.Option("--allow-unconverged", help="Exit 0 even if the fit did not converge.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Write --out into a directory that holds other files (they are kept).")
]
ClassicalOpt = Annotated[
    bool, typer.Option("--classical", help="Also print two-proportion tests with Bonferroni/Holm/BH-adjusted p-values.")
]


def fail(exc: AbpoolError) -> NoReturn:
    """Print ``exc`` as one line on stderr and exit 2 (bad input) or 1 (did not converge)."""
    from abpool._format import display

    message = display(" ".join(str(exc).split()))
    print(f"abpool: error: {message}", file=sys.stderr)
    raise typer.Exit(code=1 if isinstance(exc, ConvergenceError) else 2)


def analyse_and_emit(
    model: str,
    data: Path,
    options: dict[str, Any],
    *,
    as_json: bool,
    out: Path | None,
    allow_unconverged: bool,
    classical: bool,
    force: bool = False,
) -> None:
    """Fit ``model`` (through the registry) with keyword ``options``, then print, save and judge it.

    An unconverged fit is still printed, with its diagnostics, then the command
    exits 1 with a one-line reason unless ``--allow-unconverged`` was given.
    """
    from abpool._format import display
    from abpool.cli._render import render_result
    from abpool.result import model_entry

    spinner = (
        stderr.status(f"Fitting the {model} model…") if stderr.is_terminal and not as_json else contextlib.nullcontext()
    )
    try:
        if out is not None:
            from abpool.store import check_out

            # Before the fit: a bad --out should not cost a fit to find out.
            check_out(out, force=force)
        with spinner:
            # The CLI judges convergence itself, in one line, after printing the diagnostics.
            result = model_entry(model).fit(data, **options, on_unconverged="ignore")
        if out is not None:
            result.save(out, force=force)
    except AbpoolError as exc:
        fail(exc)
    except OSError as exc:
        fail(AbpoolError(f"cannot write to '{out}' ({exc.strerror or exc}); choose another --out"))
    if as_json:
        print(result.to_json())
    else:
        render_result(result, stdout, classical=classical)
        if out is not None:
            stdout.print(
                display(f"saved: {out / 'posterior.nc'}, {out / 'summary.json'}, {out / 'report.html'}"), markup=False
            )
    if not result.diagnostics.converged and not allow_unconverged:
        print(
            "abpool: error: the fit did not converge (see diagnostics); rerun with more --draws/--tune, "
            "or pass --allow-unconverged to accept it",
            file=sys.stderr,
        )
        raise typer.Exit(code=1)


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (those not left at ``None``)."""
    return {name: value for name, value in options.items() if value is not None}


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


def run(argv: list[str] | None = None) -> None:
    """Console entry point: run :data:`app`, turning usage errors into one line and exit code 2.

    The framework's own usage errors (a value of the wrong type, an unknown
    option, a missing argument) otherwise print a usage block over several lines.
    """
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = ["--help"]
    try:
        code = app(args=args, prog_name="abpool", standalone_mode=False)
    except Exception as exc:
        message = getattr(exc, "format_message", None)
        exit_code = getattr(exc, "exit_code", None)
        if message is None or not isinstance(exit_code, int):
            raise
        text = " ".join(str(message()).split())
        print(f"abpool: error: {text} (see 'abpool --help')", file=sys.stderr)
        raise SystemExit(exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)
