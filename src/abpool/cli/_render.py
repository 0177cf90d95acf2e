"""Printing a result in the terminal: the report's own tables and sentences, laid out by Rich.

The tables are :mod:`abpool.report.tables`' — the same cells, in the same
notation, as the HTML report. A table wider than the terminal is split into
parts that each fit (the label columns repeated), and a part too narrow even
for one number becomes one block per row: numbers and names are never cut.
User text (arm and segment names) is printed as text, never parsed as Rich
markup, with control characters shown as escapes.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from abpool._format import display
from abpool.report.blocks import Table
from abpool.report.tables import (
    SENSITIVITY_TITLE,
    calibration_table,
    classical_table,
    estimates_table,
    pairwise_table,
    population_table,
    sensitivity_decisions_table,
    sensitivity_table,
)
from abpool.result import Result


def _rich(table: Table, indices: list[int], title: str | None) -> RichTable:
    out = RichTable(
        title=None if title is None else Text(display(title), style="bold"),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for index in indices:
        header = Text("\n".join(display(part) for part in table.columns[index].split("\n")))
        if table.is_numeric(index):
            out.add_column(header, justify="right", no_wrap=True)
        else:
            # Labels may wrap; they are never cut.
            out.add_column(header, justify="left", overflow="fold")
    for row in table.rows:
        out.add_row(*(Text(display(row[index])) for index in indices))
    return out


def column_widths(table: Table) -> list[int]:
    """Terminal cells each column of ``table`` needs to print every cell and header line whole.

    Examples
    --------
    >>> from abpool.report.blocks import Table
    >>> column_widths(Table("t", ("arm", "P(best)"), (("control", "0.30"), ("中国", "0.31"))))
    [7, 7]
    """
    return [
        max(
            [cell_len(display(line)) for line in header.split("\n")]
            + [cell_len(display(row[index])) for row in table.rows]
        )
        for index, header in enumerate(table.columns)
    ]


def table_width(widths: list[int], indices: list[int]) -> int:
    """Width of the Rich table :func:`_rich` lays out from the columns ``indices``, unlimited by the console.

    Each column is padded by one cell on either side and followed by a one-cell rule, after a one-cell
    left edge (``box.SIMPLE_HEAD``). The sum is what Rich's ``Console.measure`` gives (tested), without
    laying the table out once for every trial split.

    Examples
    --------
    >>> table_width([7, 14], [0, 1]), table_width([7, 14], [0])
    (28, 11)
    """
    return sum(widths[index] for index in indices) + 3 * len(indices) + 1


def _label_columns(table: Table) -> list[int]:
    labels = []
    for index in range(len(table.columns)):
        if table.is_numeric(index):
            break
        labels.append(index)
    return labels or [0]


def print_table(table: Table, console: Console, *, title: str | None = None, wide: bool = False) -> None:
    """Print ``table``, split into parts that fit the console unless ``wide``."""
    heading = table.title if title is None else title
    everything = list(range(len(table.columns)))
    widths = column_widths(table)
    if wide or table_width(widths, everything) <= console.width:
        # The title on a line of its own: inside the table it would wrap at the table's width.
        console.print(Text(display(heading), style="bold"))
        console.print(_rich(table, everything, None), crop=False)
        return
    labels = _label_columns(table)
    rest = [i for i in everything if i not in labels]
    parts: list[list[int]] = []
    current: list[int] = []
    for index in rest:
        trial = [*labels, *current, index]
        if current and table_width(widths, trial) > console.width:
            parts.append(current)
            current = [index]
        else:
            current.append(index)
    parts.append(current)
    if any(table_width(widths, [*labels, *part]) > console.width for part in parts):
        _print_blocks(table, console, heading)
        return
    for number, part in enumerate(parts, start=1):
        suffix = f" ({number} of {len(parts)})" if len(parts) > 1 else ""
        console.print(Text(display(f"{heading}{suffix}"), style="bold"))
        console.print(_rich(table, [*labels, *part], None), crop=False)


def _print_blocks(table: Table, console: Console, heading: str) -> None:
    """One block per row, ``header: value`` per line: the layout of last resort for a very narrow terminal."""
    console.print(Text(display(heading), style="bold"))
    for row in table.rows:
        console.print(Text(display(" · ".join(row[i] for i in _label_columns(table))), style="bold"))
        for index, value in enumerate(row):
            if index not in _label_columns(table):
                console.print(Text(f"  {display(' '.join(table.columns[index].split()))}: {display(value)}"))


def status_text(result: Result) -> Text:
    """The diagnostics line, its verdict in colour."""
    diag = result.diagnostics
    line = Text(display(diag.describe().removesuffix(diag.status)))
    line.append(diag.status, style="green" if diag.converged else "bold red")
    line.append(f"; seed {result.seed}")
    return line


def print_headline(result: Result, console: Console) -> None:
    """What to act on, first: a sample-ratio-mismatch warning box, then the recommendation and its rule."""
    warnings = result.srm_sentences()
    if warnings:
        console.print(
            Panel(
                Text("\n".join(display(w) for w in warnings)),
                title=Text("Sample ratio mismatch", style="bold red"),
                title_align="left",
                border_style="red",
            )
        )
    for sentence in result.recommendation_sentences():
        console.print(Text(display(sentence), style="bold"))
    console.print(Text(display(result.decision_rule())))
    console.print(Text(display(f"Control: {result.control} ({result.control_reason}).")))


def print_sensitivity(found: dict[str, Any], console: Console, *, wide: bool = False) -> None:
    """The prior-sensitivity check: verdicts first, then the decision and the answers under each prior."""
    console.print()
    console.print(Text(SENSITIVITY_TITLE, style="bold underline"))
    for sentence in found["sentences"]:
        console.print(Text(display(sentence)))
    print_table(sensitivity_decisions_table(found), console, wide=wide)
    print_table(sensitivity_table(found), console, wide=wide)
    seconds = sum(found["seconds"].values())
    summary = f"{len(found['panel'])} priors in {seconds:,.1f} s; each prior is described in --json and the report."
    console.print(Text(summary))


def render_result(
    result: Result, console: Console, *, title: str | None = None, classical: bool = False, wide: bool = False
) -> None:
    """Print a result: headline, estimates, pairwise matrix, sentences, population, prior, diagnostics."""
    heading = title or f"{result.model}: {result.description}"
    console.print(Text(display(heading), style="bold underline"))
    print_headline(result, console)
    console.print()
    print_table(estimates_table(result), console, wide=wide)
    if not result.segmented:
        matrix = pairwise_table(result)
        if matrix is not None:
            print_table(matrix, console, wide=wide)
    for sentence in result.sentences():
        console.print(Text(display(sentence)))
    console.print()
    print_table(population_table(result), console, wide=wide)
    for label, value in result.prior_facts():
        console.print(Text(display(f"{label}: {value}")))
    console.print(status_text(result))
    for warning in result.diagnostics.warnings:
        console.print(Text("warning: ", style="bold red") + Text(display(warning)))
    if result.calibration:
        print_table(calibration_table(result.calibration), console, wide=wide)
    if result.prior_sensitivity:
        print_sensitivity(result.prior_sensitivity, console, wide=wide)
    if classical:
        skipped = result.classical_skipped()
        if skipped:
            console.print(Text(display(f"classical comparison left out: {skipped}")))
        table = None if skipped else classical_table(result)
        if table is not None:
            print_table(table, console, wide=wide)
