"""The Typer application, consoles, shared options, and the one path every analysis takes to the user.

Exit codes: 0 success, 1 analysis refused (did not converge), 2 bad input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console

from abpool._version import __version__
from abpool.errors import AbpoolError, ConvergenceError
from abpool.panel import is_no_pooling
from abpool.tuning import keep_freed_memory

# Typer shows a required argument as "{DATA}" in the usage line and appends its type ("DATA <path>") in the
# help; the usage conventions are a bare DATA, and the argument's help already says what it is.
typer.core.TyperArgument._usage_display_name = lambda self: (  # type: ignore[method-assign]
    self.display_name_raw if self.required else f"[{self.display_name_raw}]"
)
typer.core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]

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
if not stdout.is_terminal and "COLUMNS" not in os.environ:
    # Piped output has no width to measure: lay tables out for a wide page (COLUMNS chooses another).
    stdout = Console(highlight=False, soft_wrap=False, width=160)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

Data = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help=(
            "Unit rows or aggregated cells: a CSV, TSV, Parquet or JSON file, a glob of many ('days/*.parquet'), "
            "a DuckDB database or a PostgreSQL connection string (postgresql://USER@HOST/DB) with --table/--query."
        ),
        show_default=False,
    ),
]
TableOpt = Annotated[
    str | None,
    typer.Option("--table", metavar="NAME", help="With a DuckDB database or PostgreSQL: the table to read."),
]
WhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where",
        metavar="SQL",
        help="With a file or DuckDB database: only the rows meeting this DuckDB SQL condition (\"country = 'DE'\").",
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        metavar="SQL",
        help="With a DuckDB database or PostgreSQL: a query, run there, whose rows are the data.",
    ),
]
ArmOpt = Annotated[
    str | None, typer.Option("--arm", metavar="COLUMN", help="Arm (variant) column [default: variant/arm/group].")
]
OutcomeOpt = Annotated[str | None, typer.Option("--outcome", metavar="COLUMN", help="0/1 outcome column of unit rows.")]
TrialsOpt = Annotated[str | None, typer.Option("--trials", metavar="COLUMN", help="Trials column of aggregated cells.")]
SuccessesOpt = Annotated[
    str | None, typer.Option("--successes", metavar="COLUMN", help="Successes column of aggregated cells.")
]
ControlOpt = Annotated[
    str | None,
    typer.Option(
        "--control",
        metavar="ARM",
        help="Control arm [default: one named control, ctrl, baseline, A, 0 or false; else the first in sorted order].",
    ),
]
SegmentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--segment", metavar="COLUMN", help="Segment column; repeat it to combine columns (e.g. country × platform)."
    ),
]
CiOpt = Annotated[float, typer.Option("--ci", metavar="LEVEL", help="Credible level of every interval.")]
RopeOpt = Annotated[
    float | None,
    typer.Option("--rope", metavar="WIDTH", help="Half-width of a practically-nil lift, e.g. 0.01 [the threshold]."),
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", metavar="N", help="Random seed [default: random, and reported].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", metavar="DIR", help="Directory for posterior.nc, summary.json, report.html, manifest.json."),
]
AllowOpt = Annotated[bool, typer.Option("--allow-unconverged", help="Exit 0 even if the fit did not converge.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Write --out into a directory that holds other files (they are kept).")
]
ThresholdOpt = Annotated[
    float,
    typer.Option(
        "--threshold",
        metavar="LOSS",
        help="Threshold of caring: ship an arm whose expected loss is below it (absolute rate; 0.001 = 0.1 pp).",
    ),
]
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        metavar="SHARES",
        help="Intended split for the sample-ratio-mismatch check: A=50,B=50, or 50,50 in the order the arms "
        "are listed [equal].",
    ),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 1 when a sample ratio mismatch is flagged.")]
CalibrateOpt = Annotated[
    bool,
    typer.Option(
        "--calibrate",
        help="Also simulate A/A experiments of this design: how often would P(beats control) ≥ 95% be a false winner?",
    ),
]
ExperimentsOpt = Annotated[
    int | None,
    typer.Option("--experiments", metavar="N", help="A/A experiments for --calibrate [500 variants, 100 segments]."),
]
# The options of the commands that pick the model from the data (analyze, batch): any model's, optional.
AnyPriorOpt = Annotated[
    str | None,
    typer.Option("--prior", metavar="NAME", help="Prior [default: bda for variants, article for segments]."),
]
AnyDrawsOpt = Annotated[int | None, typer.Option("--draws", metavar="N", help="Draws [the model's default].")]
AnyRopeOpt = Annotated[
    float | None, typer.Option("--rope", metavar="WIDTH", help="Half-width of a practically-nil lift.")
]
AnyThresholdOpt = Annotated[
    float | None,
    typer.Option("--threshold", metavar="LOSS", help="Threshold of caring of the recommendation [0.001]."),
]
SensitivityOpt = Annotated[
    bool,
    typer.Option(
        "--sensitivity",
        help="Also refit under a panel of reasonable priors: would a different prior change the decision?",
    ),
]
PanelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--panel",
        metavar="PRIOR",
        help="A prior of the --sensitivity panel, NAME or NAME:key=value,... (e.g. lognormal:loc=4); repeat it "
        "[the model's panel].",
    ),
]
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Print each table in one piece, however wide (for wide windows or files).")
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


def parse_split(text: str | None) -> dict[str, float] | list[float] | None:
    """``--split``: ``A=50,B=50`` (by arm) or ``50,50`` (in the order the arms are listed)."""
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if all("=" in part for part in parts):
            return {name.strip(): float(weight) for name, weight in (part.rsplit("=", 1) for part in parts)}
        return [float(part) for part in parts]
    except ValueError:
        raise AbpoolError(f"--split must be weights such as A=50,B=50 or 50,50, got {text!r}") from None


# The columns a means fit reads, by option name (the rest of its options are the model's).
MOMENT_ROLES = ("arm", "value", "n", "sum", "sum_sq", "mean", "sd", "std_error", "control", "cap")


def _read_database(
    data: str,
    options: dict[str, Any],
    *,
    table: str | None,
    query: str | None,
    where: str | None = None,
    model: str = "variants",
) -> Any:
    """A database (DuckDB file or PostgreSQL), or the rows meeting --where, read to cells here; else ``data``."""
    from abpool.data import read_cells
    from abpool.data.warehouse import is_warehouse

    if table is None and query is None and where is None and not is_warehouse(data):
        return data
    if model == "means":
        from abpool.data import read_moments

        return read_moments(
            data,
            table=table,
            query=query,
            where=where,
            **{k: options[k] for k in MOMENT_ROLES if options.get(k) is not None},
        )
    roles = ("arm", "outcome", "trials", "successes", "segment", "control")
    return read_cells(
        data, table=table, query=query, where=where, **{k: options[k] for k in roles if options.get(k) is not None}
    )


def analyse_and_emit(
    model: str,
    data: str,
    options: dict[str, Any],
    *,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
    as_json: bool,
    out: Path | None,
    allow_unconverged: bool,
    classical: bool,
    force: bool = False,
    strict: bool = False,
    calibrate: bool = False,
    experiments: int | None = None,
    sensitivity: bool = False,
    panel: list[str] | None = None,
    wide: bool = False,
) -> None:
    """Fit ``model`` (through the registry) with keyword ``options``, then print, save and judge it.

    An unconverged fit is still printed, with its diagnostics, then the command
    exits 1 with a one-line reason unless ``--allow-unconverged`` was given; a
    flagged sample ratio mismatch does the same with ``--strict``.
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
        if experiments is not None and not calibrate:
            raise AbpoolError("--experiments sets the size of --calibrate; add --calibrate or leave it out")
        if panel and not sensitivity:
            raise AbpoolError("--panel sets the priors of --sensitivity; add --sensitivity or leave it out")
        if panel:
            # Before the fit: a bad panel entry should not cost a fit to find out.
            for item in panel:
                if not is_no_pooling(item):
                    model_entry(model).result_type.panel_entry(item)
        if "split" in options:
            options = {**options, "split": parse_split(options["split"])}
        with spinner:
            data = _read_database(data, options, table=table, query=query, where=where, model=model)
            # The CLI judges convergence itself, in one line, after printing the diagnostics.
            result = model_entry(model).fit(data, **options, on_unconverged="ignore")
        if calibrate:
            result = _calibrate(result, experiments, show=not as_json and stderr.is_terminal)
        if sensitivity:
            result = _sensitivity(result, panel, show=not as_json and stderr.is_terminal)
        if out is not None:
            result.save(out, force=force)
    except AbpoolError as exc:
        fail(exc)
    except OSError as exc:
        fail(AbpoolError(f"cannot write to '{out}' ({exc.strerror or exc}); choose another --out"))
    if as_json:
        print(result.to_json())
    else:
        render_result(result, stdout, classical=classical, wide=wide)
        if out is not None:
            # Plain print: a path must not be wrapped across lines.
            print(display(f"saved: {out / 'posterior.nc'}, {out / 'summary.json'}, {out / 'report.html'}"))
    if not result.diagnostics.converged and not allow_unconverged:
        print(
            "abpool: error: the fit did not converge (see diagnostics); rerun with more --draws/--tune, "
            "or pass --allow-unconverged to accept it",
            file=sys.stderr,
        )
        raise typer.Exit(code=1)
    if strict and result.srm_flagged():
        print(
            "abpool: error: sample ratio mismatch flagged (see the warning); the assignment may be broken — "
            "rerun without --strict to accept the analysis",
            file=sys.stderr,
        )
        raise typer.Exit(code=1)


def _calibrate(result: Any, experiments: int | None, *, show: bool) -> Any:
    """Run the design's A/A calibration with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from abpool.calibration.aa import default_experiments

    if not show:
        return result.calibrate(experiments=experiments)
    columns = (TextColumn("calibrating (A/A)"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("calibrate", total=experiments or default_experiments(result.model))
        return result.calibrate(experiments=experiments, progress=lambda done: bar.advance(task, done))


def _sensitivity(result: Any, panel: list[str] | None, *, show: bool) -> Any:
    """Refit under the prior panel, with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from abpool.sensitivity import resolve_panel

    if not show:
        return result.with_sensitivity(panel)
    columns = (TextColumn("refitting under each prior"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("sensitivity", total=len(resolve_panel(result, panel)))
        return result.with_sensitivity(panel, progress=lambda done: bar.advance(task, done))


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


def _show_notices() -> None:
    """Print the ``abpool`` logger's notices (such as a one-time compilation) on standard error."""
    logger = logging.getLogger("abpool")
    if not any(getattr(handler, "abpool_cli", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("abpool: %(message)s"))
        handler.abpool_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def run(argv: list[str] | None = None) -> None:
    """Console entry point: run :data:`app`, turning usage errors into one line and exit code 2.

    The framework's own usage errors (a value of the wrong type, an unknown
    option, a missing argument) otherwise print a usage block over several lines.
    """
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = ["--help"]
    _show_notices()
    keep_freed_memory()
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
