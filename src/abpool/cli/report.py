"""``abpool report DIR``: re-render a saved result's report without refitting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from abpool._format import display
from abpool.cli._app import app, fail
from abpool.errors import AbpoolError

ResultDir = Annotated[
    Path,
    typer.Argument(
        metavar="DIR",
        help="Directory written by --out (posterior.nc, summary.json, manifest.json).",
        show_default=False,
    ),
]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", metavar="FILE", help="Where to write the report [default: DIR/report.html].")
]


@app.command()
def report(directory: ResultDir, html: HtmlOpt = None) -> None:
    """Re-render the HTML report of a saved result, without refitting.

    Example: abpool report run1/
    """
    from abpool.report import write_report
    from abpool.store import load, update_report

    target = html if html is not None else directory / "report.html"
    try:
        result = load(directory)
        write_report(target, result)
        update_report(directory, target)
    except AbpoolError as exc:
        fail(exc)
    except OSError as exc:
        fail(AbpoolError(f"cannot write '{target}' ({exc.strerror or exc}); check the path"))
    print(display(f"report: {target}"))
