"""Printing a result in the terminal: the report's own tables and sentences, laid out by Rich.

The tables are :mod:`abpool.report.tables`' — the same cells, in the same
notation, as the HTML report. User text (arm and segment names) is printed as
text, never parsed as Rich markup.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from abpool._format import display
from abpool.report.blocks import Table
from abpool.report.tables import classical_table, estimates_table, pairwise_table, population_table
from abpool.result import Result


def rich_table(table: Table, *, title: str | None = None) -> RichTable:
    """A report :class:`~abpool.report.blocks.Table` as a Rich table."""
    out = RichTable(
        title=Text(display(table.title if title is None else title), style="bold"),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for index, column in enumerate(table.columns):
        out.add_column(
            Text("\n".join(display(part) for part in column.split("\n"))),
            justify="right" if table.is_numeric(index) else "left",
            no_wrap=True,
        )
    for row in table.rows:
        out.add_row(*(Text(display(cell)) for cell in row))
    return out


def status_text(result: Result) -> Text:
    """The diagnostics line, its verdict in colour."""
    diag = result.diagnostics
    line = Text(display(diag.describe().removesuffix(diag.status)))
    line.append(diag.status, style="green" if diag.converged else "bold red")
    line.append(f"; seed {result.seed}")
    return line


def render_result(result: Result, console: Console, *, title: str | None = None, classical: bool = False) -> None:
    """Print a result: estimates, pairwise matrix, sentences, population, prior, diagnostics."""
    heading = title or f"{result.model}: {result.description}; control {result.control}"
    console.print(rich_table(estimates_table(result), title=heading))
    if not result.segmented:
        matrix = pairwise_table(result)
        if matrix is not None:
            console.print(rich_table(matrix))
    for sentence in result.sentences():
        console.print(Text(display(sentence)))
    console.print(rich_table(population_table(result)))
    for label, value in result.prior_facts():
        console.print(Text(display(f"{label}: {value}")))
    console.print(status_text(result))
    for warning in result.diagnostics.warnings:
        console.print(Text("warning: ", style="bold red") + Text(display(warning)))
    if classical:
        skipped = result.classical_skipped()
        if skipped:
            console.print(Text(display(f"classical comparison left out: {skipped}")))
        table = None if skipped else classical_table(result)
        if table is not None:
            console.print(rich_table(table))
